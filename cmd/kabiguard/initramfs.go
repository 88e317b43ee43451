package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/initramfs"
)

// initramfsCmd groups the image commands.
type initramfsCmd struct {
	Ls      initramfsLsCmd      `cmd:"" help:"List an initramfs image, like lsinitrd; with --kernel, each module's state against the kernel's tree."`
	Verify  initramfsVerifyCmd  `cmd:"" help:"Check that an image's modules are the builds the kernel's tree resolves to now."`
	Refresh initramfsRefreshCmd `cmd:"" help:"Replace stale module copies in an image in place (seconds), or say it needs a full rebuild."`
}

type imageArgs struct {
	Root  string `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot and etc." type:"path"`
	Image string `arg:"" help:"The image file (any compression, early cpio included)." type:"path"`
}

type initramfsLsCmd struct {
	imageArgs
	Kernel string `short:"k" placeholder:"RELEASE" help:"Also show each module of RELEASE as current, stale or not-in-tree."`
	JSON   bool   `help:"Print JSON: {entries: [{name, mode, size, target}], modules: [...]}."`
}

func (initramfsLsCmd) Help() string {
	return `Lists every file the kernel would unpack (all segments, later records winning), with mode,
size and symlink target. Reads gzip, zstd, xz, lz4 (legacy) and uncompressed images.

Examples:
  kabiguard initramfs ls /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs ls -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64 | grep '\.ko'`
}

func (c *initramfsLsCmd) Run(e *env) error {
	im, err := initramfs.Open(c.Image)
	if err != nil {
		return err
	}
	defer im.Close()
	states := map[string]string{}
	var rep *hooks.VerifyReport
	if c.Kernel != "" {
		cfg, err := config.Load(c.Root)
		if err != nil {
			return err
		}
		if rep, err = hooks.Verify(c.Root, c.Kernel, c.Image, cfg); err != nil {
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
		out := struct {
			Entries []entry             `json:"entries"`
			Verify  *hooks.VerifyReport `json:"verify,omitempty"`
		}{Entries: []entry{}, Verify: rep}
		for _, en := range im.Entries() {
			out.Entries = append(out.Entries, entry{en.Name, en.FileMode().String(), en.Size, en.LinkTarget, states[en.Name]})
		}
		return writeJSON(e.stdout, out)
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
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

type initramfsVerifyCmd struct {
	imageArgs
	Kernel string `required:"" short:"k" placeholder:"RELEASE" help:"The kernel the image boots."`
	JSON   bool   `help:"Print JSON: {image, kernel, compression, modules: [{name, in_image, tree, state}], missing_early}."`
}

func (initramfsVerifyCmd) Help() string {
	return `Every module file of RELEASE in the image must equal, decompressed, the file RELEASE's tree
resolves it to now (modules.dep, weak-updates links followed), and every 'early' module of
/etc/kabiguard/required.d must be inside. Exit 1 with the list otherwise.

Examples:
  kabiguard initramfs verify -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs verify -k "$(uname -r)" --json /boot/initramfs-$(uname -r).img`
}

func (c *initramfsVerifyCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	rep, err := hooks.Verify(c.Root, c.Kernel, c.Image, cfg)
	if err != nil {
		return err
	}
	if c.JSON {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		bad := 0
		for _, m := range rep.Modules {
			if m.State == hooks.ModCurrent {
				continue
			}
			bad++
			fmt.Fprintf(w, "%s\t%s\t%s\tkernel tree: %s\n", m.Name, m.State, m.InImage, orNone(m.Tree))
		}
		for _, n := range rep.MissingEarly {
			fmt.Fprintf(w, "%s\tmissing\t(required early)\t\n", n)
		}
		w.Flush()
		if bad == 0 && len(rep.MissingEarly) == 0 {
			fmt.Fprintf(e.stdout, "%s: %d modules of %s, all current\n", c.Image, len(rep.Modules), c.Kernel)
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
	Kernel string `required:"" short:"k" placeholder:"RELEASE" help:"The kernel the image boots."`
	DryRun bool   `help:"Say what would be replaced; change nothing."`
}

func (initramfsRefreshCmd) Help() string {
	return `Replaces the module files whose resolved build changed with the tree's builds (compressed as
the copies were), runs the real depmod over the image's module tree, and rewrites the image
in its own compression, early cpio kept, atomically (the old image stays whole until the new
one is complete). When that cannot make the image right (a required early module or a new
dependency is not in it) it says so and exits 1: rebuild with 'dracut --force --kver RELEASE'.

Examples:
  kabiguard initramfs refresh -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64
  kabiguard initramfs refresh --dry-run -k 6.1.0-54-amd64 /boot/initrd.img-6.1.0-54-amd64`
}

func (c *initramfsRefreshCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	res, err := hooks.Refresh(c.Root, c.Kernel, c.Image, cfg, c.DryRun)
	if errors.Is(err, hooks.ErrNeedsRebuild) {
		fmt.Fprintf(e.stderr, "kabiguard: %v: run 'dracut --force --kver %s'\n", err, c.Kernel)
		return problemError{}
	}
	if err != nil {
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
		fmt.Fprintf(e.stdout, "%s: %s; modules.dep regenerated by depmod\n", c.Image, strings.Join(parts, "; "))
	}
	return nil
}
