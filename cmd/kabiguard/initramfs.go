package main

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// initramfsCmd groups the image commands.
type initramfsCmd struct {
	Ls      initramfsLsCmd      `cmd:"" help:"List an initramfs image, like lsinitrd; with --kernel, each module's state against the kernel's tree."`
	Verify  initramfsVerifyCmd  `cmd:"" help:"Check that an image's modules are the builds the kernel's tree resolves to now."`
	Refresh initramfsRefreshCmd `cmd:"" help:"Replace stale module copies in an image in place (seconds); rebuild it with the generator when only that can make it right."`
}

type imageArgs struct {
	Root  string `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot and etc." type:"path"`
	Image string `arg:"" help:"The image file (any compression, early cpio included)." type:"path"`
}

type initramfsLsCmd struct {
	imageArgs
	Kernel string `short:"k" placeholder:"RELEASE" help:"Show each module of RELEASE as current, stale or not-in-tree against RELEASE's tree under --root (default: the one kernel the image holds modules of, when that kernel is under --root)."`
	JSON   bool   `help:"Print JSON: {image, size, segments: [{offset, length, compression, size, entries}], entries: [{name, mode, size, target, state}], verify}."`
}

func (initramfsLsCmd) Help() string {
	return `Lists every file the kernel would unpack (all segments, later records winning), with mode,
size and symlink target, after a header naming each segment (offset, compression, sizes), like
lsinitrd. Reads gzip, zstd, xz, lz4 (legacy), bzip2 and uncompressed images, with or
without an early (microcode) cpio in front. Module files are marked [current], [stale] or
[not-in-tree] against the kernel's tree (see 'initramfs verify').

Examples:
  kabiguard initramfs ls /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs ls -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64 | grep '\.ko'
  kabiguard initramfs ls --root /mnt/sysimage /mnt/sysimage/boot/initramfs-5.14.0-427.el9.x86_64.img`
}

// lsKernel is the kernel whose tree ls compares modules with: --kernel, else the only kernel
// the image holds modules of when root has its modules.dep, else none.
func (c *initramfsLsCmd) lsKernel(im *initramfs.Image) string {
	if c.Kernel != "" {
		return c.Kernel
	}
	all, err := imagesync.Modules(im)
	if err != nil || len(all) == 0 {
		return ""
	}
	// dracut keeps a weak-updates link with the file it points at, which may sit under
	// another kernel's directory: the image's kernel is the one with a modules.dep.
	var withDep []string
	for _, km := range all {
		if km.Dep != nil {
			withDep = append(withDep, km.Release)
		}
	}
	if len(withDep) != 1 {
		return ""
	}
	r, err := rootfs.At(c.Root)
	if err != nil {
		return ""
	}
	if _, err := r.Stat(filepath.Join(kmod.ModulesDir(c.Root, withDep[0]), "modules.dep")); err != nil {
		return ""
	}
	return withDep[0]
}

func (c *initramfsLsCmd) Run(e *env) error {
	im, closeImage, err := imagesync.OpenImage(c.Root, c.Image)
	if err != nil {
		return err
	}
	defer closeImage()
	states := map[string]string{}
	var rep *imagesync.VerifyReport
	if kernel := c.lsKernel(im); kernel != "" {
		cfg, err := config.Load(c.Root)
		if err != nil {
			return err
		}
		if rep, err = imagesync.Verify(c.Root, kernel, c.Image, cfg); err != nil {
			return err
		}
		for _, m := range rep.Modules {
			states[m.InImage] = m.State
		}
	}
	if c.JSON {
		type entry struct {
			Name   string `json:"name"`
			Mode   string `json:"mode"`
			Size   int64  `json:"size"`
			Target string `json:"target,omitempty"`
			State  string `json:"state,omitempty"`
		}
		type segment struct {
			Offset      int64  `json:"offset"`
			Length      int64  `json:"length"`
			Compression string `json:"compression"`
			Size        int64  `json:"size"`
			Entries     int    `json:"entries"`
		}
		out := struct {
			Image    string                  `json:"image"`
			Size     int64                   `json:"size"`
			Segments []segment               `json:"segments"`
			Entries  []entry                 `json:"entries"`
			Verify   *imagesync.VerifyReport `json:"verify,omitempty"`
		}{Image: c.Image, Size: im.Size, Segments: []segment{}, Entries: []entry{}, Verify: rep}
		for _, s := range im.Segments {
			out.Segments = append(out.Segments, segment{s.Offset, s.Length, string(s.Compression), s.Size, len(s.Entries)})
		}
		for _, en := range im.Entries() {
			out.Entries = append(out.Entries, entry{en.Name, en.FileMode().String(), en.Size, en.LinkTarget, states[en.Name]})
		}
		return writeJSON(e.stdout, out)
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	fmt.Fprintf(w, "Image: %s: %s\n", c.Image, humanSize(im.Size))
	for i, s := range im.Segments {
		what := string(s.Compression) + ", " + humanSize(s.Length) + " -> " + humanSize(s.Size) + " cpio"
		if s.Compression == "none" {
			what = "uncompressed cpio, " + humanSize(s.Length)
		}
		if i < len(im.Segments)-1 && s.Compression == "none" {
			what += " (early)"
		}
		fmt.Fprintf(w, "Segment %d at %d: %s, %d entries\n", i+1, s.Offset, what, len(s.Entries))
	}
	if rep != nil {
		fmt.Fprintf(w, "Modules of %s checked against %s\n", rep.Kernel, kmod.ModulesDir(c.Root, rep.Kernel))
	}
	fmt.Fprintln(w, strings.Repeat("=", 72))
	for _, en := range im.Entries() {
		line := fmt.Sprintf("%s %10d %s", en.FileMode(), en.Size, en.Name)
		if en.LinkTarget != "" {
			line += " -> " + en.LinkTarget
		}
		if s := states[en.Name]; s != "" {
			line += "  [" + s + "]"
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

type initramfsVerifyCmd struct {
	imageArgs
	Kernel string `required:"" short:"k" placeholder:"RELEASE" help:"The kernel the image boots."`
	JSON   bool   `help:"Print JSON: {image, kernel, compression, modules: [{name, in_image, tree, state}], missing_early}."`
}

func (initramfsVerifyCmd) Help() string {
	return `Every module file of RELEASE in the image must equal, decompressed, the file RELEASE's tree
resolves it to now (its modules.dep under --root, path relative to lib/modules/RELEASE,
weak-updates links followed; a copy dracut stripped of debug information counts as the same
build), and every 'early' module of etc/kabiguard/required.d/*.conf must be inside. Exit 0
when so; exit 1 with the list otherwise; exit 2 when the image or the tree cannot be read
(a damaged image is named with the segment and offset of the defect).

States: current (the tree's build), stale (another build: run 'initramfs refresh'),
not-in-tree (modules.dep no longer lists the module: refresh drops it, unless its file is still
in the tree, which means depmod has not run since it came: then refresh refuses and says so),
missing (a required early module the image lacks: refresh rebuilds the image with the
generator).

Examples:
  kabiguard initramfs verify -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs verify -k "$(uname -r)" --json /boot/initramfs-$(uname -r).img

  $ kabiguard initramfs verify -k 6.1.0-53-amd64 /boot/initrd.img-6.1.0-53-amd64
  kabidemo  stale  usr/lib/modules/6.1.0-53-amd64/weak-updates/kabidemo/kabidemo.ko  kernel tree: /lib/modules/6.1.0-50-amd64/extra/kabidemo/kabidemo.ko
  /boot/initrd.img-6.1.0-53-amd64: 1 of 3 modules stale, 0 required early modules missing; run 'kabiguard initramfs refresh -k 6.1.0-53-amd64 /boot/initrd.img-6.1.0-53-amd64'`
}

func (c *initramfsVerifyCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	rep, err := imagesync.Verify(c.Root, c.Kernel, c.Image, cfg)
	if err != nil {
		return err
	}
	if c.JSON {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		bad, unlisted := 0, false
		for _, m := range rep.Modules {
			if m.State == imagesync.ModCurrent {
				continue
			}
			bad++
			unlisted = unlisted || m.Unlisted != ""
			tree := orNone(m.Tree)
			if m.Unlisted != "" {
				tree = fmt.Sprintf("(none: %s exists but modules.dep does not list it)", m.Unlisted)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\tkernel tree: %s\n", m.Name, m.State, m.InImage, tree)
		}
		for _, n := range rep.MissingEarly {
			fmt.Fprintf(w, "%s\tmissing\t(required early)\t\n", n)
		}
		w.Flush()
		if bad == 0 && len(rep.MissingEarly) == 0 {
			fmt.Fprintf(e.stdout, "%s: %d modules of %s, all current\n", c.Image, len(rep.Modules), c.Kernel)
		} else if unlisted {
			fmt.Fprintf(e.stdout, "%s: %d of %d modules stale, %d required early modules missing; the kernel's modules.dep is out of date: run '%s', then verify again\n",
				c.Image, bad, len(rep.Modules), len(rep.MissingEarly), kmod.DepmodAdvice(c.Root, c.Kernel))
		} else {
			fmt.Fprintf(e.stdout, "%s: %d of %d modules stale, %d required early modules missing; run 'kabiguard initramfs refresh -k %s %s'\n",
				c.Image, bad, len(rep.Modules), len(rep.MissingEarly), c.Kernel, c.Image)
		}
	}
	if !rep.OK() {
		return problemError{}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

type initramfsRefreshCmd struct {
	imageArgs
	Kernel    string `required:"" short:"k" placeholder:"RELEASE" help:"The kernel the image boots."`
	DryRun    bool   `help:"Say what would be replaced or rebuilt; change nothing."`
	NoRebuild bool   `help:"When only a full rebuild can make the image right, say so and exit 1 instead of running the generator."`
}

func (initramfsRefreshCmd) Help() string {
	return `Replaces the module files whose resolved build changed with the tree's builds (compressed as
the copies were; where dracut kept a weak-updates symlink, the link stays and the file it
leads to gets the build, as on the host), drops copies of modules the tree no longer has, runs
the real depmod over the image's module tree, and rewrites the image in its own compression
(zstd at its fastest level, gzip at the default one, xz in 1 MiB blocks; gzip and xz on every
core) with its early cpio kept byte for byte and every other record as it was, atomically (the
old image stays whole until the new one is complete). Takes one or two seconds where a full
dracut run takes a minute (xz images: about ten). KABIGUARD_TRACE=1 prints each step's time.

A module copy whose file is in the tree but not in its modules.dep (depmod has not run since
the file came) is never dropped: refresh refuses and names the depmod to run.

When replacing files cannot make the image right (a required early module, or a module a new
build depends on, is not in it) it says so and rebuilds the image with the generator:
'dracut --force --kver RELEASE' (KERNEL_INSTALL_INITRD_GENERATOR names another program with
dracut's options; "none" refuses), into a temporary file renamed over the image when complete.

Examples:
  kabiguard initramfs refresh -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs refresh --dry-run -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64
  KERNEL_INSTALL_INITRD_GENERATOR=/usr/local/bin/my-dracut kabiguard initramfs refresh -k "$(uname -r)" /boot/initramfs-$(uname -r).img`
}

func (c *initramfsRefreshCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	if !c.DryRun {
		// Under the lock that link holds while it changes links and refreshes images: a
		// refresh computed from the tree as it was cannot replace an image written from the
		// tree as a concurrent link left it.
		unlock, err := lockTree(c.Root)
		if err != nil {
			return err
		}
		defer unlock()
		imagesync.RemoveLeftovers(c.Root, func(s string) { fmt.Fprintln(e.stderr, "kabiguard: "+s) }, c.Image)
	}
	if err := c.refresh(e, cfg); err != nil {
		return err
	}
	if !c.DryRun {
		settleOwed(c.Root, c.Kernel, c.Image)
	}
	return nil
}

// lockTree takes the tree lock of root (weakupdates.Lock); a root without lib/modules has no
// tree to lock, and the refresh then fails reading the kernel's modules.dep.
func lockTree(root string) (func(), error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	if fi, err := r.Stat(r.Path(kmod.ModulesRel)); err != nil || !fi.IsDir() {
		return func() {}, nil
	}
	return weakupdates.Lock(root)
}

// settleOwed drops kernel's image debt (weakupdates.MarkImageOwed) once image, just made
// current, is the kernel's own image under root, and depmod has indexed its links.
func settleOwed(root, kernel, image string) {
	own, err := imagesync.LocateImage(root, kernel)
	if err != nil || own == "" || !weakupdates.ImageOwed(root, kernel) || weakupdates.DepmodPending(root, kernel) {
		return
	}
	if imagesync.SameImage(root, own, image) {
		weakupdates.ClearImageOwed(root, kernel)
	}
}

func (c *initramfsRefreshCmd) refresh(e *env, cfg *config.Config) error {
	start := time.Now()
	progress := fmt.Sprintf("%s (kernel 1 of 1)", c.Kernel)
	res, err := imagesync.UpdateImage(c.Root, c.Kernel, c.Image, cfg, c.DryRun, func(why error) error {
		argv := imagesync.RebuildCommand(c.Root, c.Kernel, c.Image)
		switch {
		case c.NoRebuild:
			fmt.Fprintf(e.stderr, "kabiguard: %v: run '%s'\n", why, strings.Join(argv, " "))
			return problemError{}
		case c.DryRun:
			fmt.Fprintf(e.stdout, "%s: %v; would rebuild: %s\n", progress, why, strings.Join(argv, " "))
			return nil
		}
		fmt.Fprintf(e.stderr, "kabiguard: %s: %v; rebuilding: %s (this takes a minute)\n", progress, why, strings.Join(argv, " "))
		if err := imagesync.Rebuild(c.Root, c.Kernel, c.Image); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: %s rebuilt in %v\n", progress, c.Image, time.Since(start).Round(100*time.Millisecond))
		return nil
	})
	if err != nil || res == nil { // res nil: rebuilt (or would be) instead
		return err
	}
	for _, n := range res.Unavailable {
		fmt.Fprintf(e.stderr, "kabiguard: warning: required module %s has no build for %s; no image can carry it\n", n, c.Kernel)
	}
	verb := map[bool][2]string{true: {"would replace", "would drop"}, false: {"replaced", "dropped"}}[c.DryRun]
	var parts []string
	if len(res.Replaced) > 0 {
		parts = append(parts, verb[0]+" "+strings.Join(res.Replaced, ", "))
	}
	if len(res.Removed) > 0 {
		parts = append(parts, verb[1]+" (no longer in the kernel's tree) "+strings.Join(res.Removed, ", "))
	}
	switch {
	case len(parts) == 0:
		fmt.Fprintf(e.stdout, "%s: up to date\n", c.Image)
	case c.DryRun:
		fmt.Fprintf(e.stdout, "%s: %s\n", c.Image, strings.Join(parts, "; "))
	default:
		fmt.Fprintf(e.stdout, "%s: %s; modules.dep regenerated by depmod; %v\n", c.Image, strings.Join(parts, "; "), time.Since(start).Round(time.Millisecond))
	}
	return nil
}
