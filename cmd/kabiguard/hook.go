package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// hookCmd is what the host's kernel hooks call when a kernel comes or goes:
// install.d/45-kabiguard.install and /etc/kernel/{postinst,postrm}.d/dkms-kabiguard.
type hookCmd struct {
	Add    hookAddCmd    `cmd:"" help:"A kernel was installed: link its weak-updates, repair every other kernel's, run depmod."`
	Remove hookRemoveCmd `cmd:"" help:"A kernel is being removed: drop its weak-updates, re-point or remove other kernels' links into its tree, run depmod."`
}

func (hookCmd) Help() string {
	return `The kernel-install plugin and the Debian kernel hooks call these; the arguments after the
kernel release are the ones those hosts pass (entry directory, image, initrds) and are ignored.
Output only with --verbose or $KERNEL_INSTALL_VERBOSE=1, errors always.

Examples:
  kabiguard hook add 6.1.0-54-amd64
  kabiguard hook remove 6.1.0-50-amd64 --verbose`
}

type hookArgs struct {
	Root        string   `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
	Verbose     bool     `short:"v" help:"Print every change (also when $$KERNEL_INSTALL_VERBOSE is 1)."`
	DryRun      bool     `help:"Print what would change; change nothing, run nothing."`
	NoInitramfs bool     `name:"no-initramfs" help:"Do not refresh the initramfs of other kernels whose links changed."`
	Kernel      string   `arg:"" placeholder:"RELEASE" help:"The kernel being installed or removed."`
	Rest        []string `arg:"" optional:"" placeholder:"ARG" help:"Further hook arguments (ignored)."`

	lost int // required modules that kernels staying installed lost by this run (sync)
}

type hookAddCmd struct{ hookArgs }

type hookRemoveCmd struct{ hookArgs }

func (hookAddCmd) Help() string {
	return `Same as 'kabiguard link' over every kernel (the new one gets links to the best compatible
builds, the others are repaired), quiet unless verbose.

Examples:
  kabiguard hook add 6.1.0-54-amd64
  kabiguard hook add 6.1.0-54-amd64 /boot/efi/TOKEN/6.1.0-54-amd64 /boot/vmlinuz-6.1.0-54-amd64`
}

func (hookRemoveCmd) Help() string {
	return `The kernel's builds (extra/, updates/, ...) are no longer offered even while its files are
still on disk: links of other kernels that point into its tree are re-pointed at another
compatible build or removed, and depmod runs for those kernels. The kernel's own
weak-updates links go, and its weak-updates directory if that leaves it empty.

Examples:
  kabiguard hook remove 6.1.0-50-amd64
  kabiguard link --dry-run   # afterwards: nothing left to change`
}

func (c *hookAddCmd) Run(e *env) error {
	// A kernel's installation that strips another kernel of a required module (reported by
	// sync) is a problem found: exit 1. A removal only says it (see hookRemoveCmd).
	if err := c.sync(e, nil); err != nil || c.lost == 0 {
		return err
	}
	return problemError{}
}

func (c *hookRemoveCmd) Run(e *env) error {
	err := c.sync(e, []string{c.Kernel})
	if err != nil && hooks.OnlyImageFailures(err) {
		// The links are right; an image that could not be refreshed stays owed (the next run
		// retries) and must not make the package manager fail the kernel's removal.
		fmt.Fprintf(e.stderr, "kabiguard: warning: %v\n", err)
		err = nil
	}
	if c.DryRun {
		return err
	}
	// Leave nothing of ours behind, so the package manager can remove the directory; what
	// could not be decided (err) is reported after that.
	weakupdates.ClearImageOwed(c.Root, c.Kernel) // a kernel going away owes no image
	removeOurLeftovers(c.Root, c.Kernel)
	return err
}

func (c *hookArgs) sync(e *env, removing []string) error {
	if c.Kernel == "" || c.Kernel == "." || c.Kernel == ".." || filepath.Base(c.Kernel) != c.Kernel {
		return fmt.Errorf("invalid kernel release %q", c.Kernel)
	}
	verbose := c.Verbose || os.Getenv("KERNEL_INSTALL_VERBOSE") == "1" || c.DryRun
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	say := func(s string) { fmt.Fprintln(w, "kabiguard: "+s) }
	log := func(s string) {
		if verbose {
			say(s)
		}
	}
	opt := hooks.Options{Root: c.Root, Config: cfg, Removing: removing, DryRun: c.DryRun, NoInitramfs: c.NoInitramfs,
		Log: log, SayUpToDate: verbose,
		// Image work is slow and rare: always said, as a generator run would be.
		Progress: say,
		Losses:   e.stderr, Prefix: "kabiguard: ", MarkDryRun: true,
		Deferred: func(owed []string) {
			if verbose {
				sayImagesOwed(w, owed, "kabiguard: ")
			}
		}}
	// The kernel being installed gets its image from the generator right after this plugin;
	// the one being removed needs none. Other kernels whose links changed, now or in an
	// earlier run that did not finish the work, are refreshed.
	if removing == nil {
		opt.Installing = []string{c.Kernel}
	}
	res, err := hooks.Run(opt)
	c.lost = res.Lost()
	if res != nil && res.Sync != nil && (verbose || c.lost > 0) {
		// What the verdicts stood on: a symvers file, or exports derived from an image.
		to := log
		if !verbose {
			to = func(s string) { fmt.Fprintln(e.stderr, "kabiguard: "+s) }
		}
		exports := kernelExports(res.Sync.Plan) // status_exports.go
		for _, kp := range res.Sync.Plan.Kernels {
			if s := exports[kp.Release]; s != "" {
				to(kp.Release + ": " + s)
			}
		}
	}
	return err
}

// removeOurLeftovers removes, inside the root, kabiguard's depmod marker of a kernel being
// removed (a regular file) and its weak-updates directory once empty (a directory, never an
// admin's symlink or file of that name), so the package manager can remove the kernel's
// directory. Nothing else is touched.
func removeOurLeftovers(root, kernel string) {
	r, err := rootfs.At(root)
	if err != nil {
		return
	}
	dir := kmod.ModulesDir(root, kernel)
	for _, leftover := range []struct {
		name string
		dir  bool
	}{{kmod.DepmodPendingMarker, false}, {"weak-updates", true}} {
		p := filepath.Join(dir, leftover.name)
		if fi, err := r.Lstat(p); err == nil && fi.IsDir() == leftover.dir && (leftover.dir || fi.Mode().IsRegular()) {
			r.Remove(p) // a directory only when empty
		}
	}
}

// noteImagesOwed says which kernels' images are owed a refresh (their links changed since the
// image was made, and no run has refreshed it yet), one line on w.
func noteImagesOwed(w io.Writer, root, prefix string) {
	sayImagesOwed(w, imagesync.OwedImages(root), prefix)
}

// sayImagesOwed is noteImagesOwed's line for the kernels owed.
func sayImagesOwed(w io.Writer, owed []string, prefix string) {
	if len(owed) > 0 {
		fmt.Fprintf(w, "%sthe initramfs of %s is owed a refresh (links changed since it was made); 'kabiguard link' or the next kernel hook refreshes it\n", prefix, strings.Join(owed, ", "))
	}
}
