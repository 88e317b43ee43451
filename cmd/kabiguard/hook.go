package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/kabi"
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

func (c *hookAddCmd) Run(e *env) error { return c.sync(e, nil) }

func (c *hookRemoveCmd) Run(e *env) error {
	err := c.sync(e, []string{c.Kernel})
	var ie initramfsError
	switch {
	case errors.As(err, &ie):
		// The links are right; an image that could not be refreshed must not make the
		// package manager fail the kernel's removal. Say so and go on.
		fmt.Fprintf(e.stderr, "kabiguard: warning: %v\n", ie.err)
		err = nil
	case err != nil && !weakupdates.OnlyIncomplete(err):
		return err
	}
	// err is now nil or what could not be planned (another kernel): reported after the
	// kernel's own leftovers are gone.
	if c.DryRun {
		return err
	}
	// Leave nothing of ours behind, so the package manager can remove the directory.
	dir := kabi.ModulesDir(c.Root, c.Kernel)
	os.Remove(filepath.Join(dir, ".kabiguard-depmod-pending"))
	os.Remove(filepath.Join(dir, "weak-updates"))
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
	log := func(s string) {
		if verbose {
			fmt.Fprintln(w, "kabiguard: "+s)
		}
	}
	res, err := weakupdates.Sync(cfg, weakupdates.SyncOptions{Root: c.Root, Removing: removing, DryRun: c.DryRun, Log: log})
	if err != nil && !weakupdates.OnlyIncomplete(err) {
		return err
	}
	undecided := err // a kernel or build that could not be planned: reported after the images
	if verbose && len(res.Changes) == 0 && undecided == nil {
		fmt.Fprintln(w, "kabiguard: weak-updates links are up to date")
	}
	if c.NoInitramfs {
		return undecided
	}
	// The kernel being installed gets its image from the generator right after this plugin;
	// the one being removed needs none. Other kernels whose links changed are refreshed.
	var others []string
	for _, k := range res.Changed {
		if k != c.Kernel {
			others = append(others, k)
		}
	}
	if err := refreshImages(c.Root, cfg, others, c.DryRun, func(s string) { fmt.Fprintln(w, "kabiguard: "+s) }); err != nil {
		if undecided != nil {
			fmt.Fprintf(e.stderr, "kabiguard: %v\n", err)
			return undecided
		}
		return initramfsError{err}
	}
	return undecided
}

// initramfsError marks a failure of the initramfs step, after the links were made.
type initramfsError struct{ err error }

func (e initramfsError) Error() string { return e.err.Error() }

// refreshImages brings the existing initramfs images of kernels up to date with their trees:
// stale module copies replaced in place, a generator run only when that cannot do.
func refreshImages(root string, cfg *config.Config, kernels []string, dryRun bool, log func(string)) error {
	if dryRun {
		// A dry run changed no link: a refresh computed from the tree on disk would describe
		// the old state and fail on the links the real run removes. Name the images instead.
		for _, k := range kernels {
			if img := hooks.FindImage(root, k); img != "" {
				log(fmt.Sprintf("%s: would refresh %s", k, img))
			}
		}
		return nil
	}
	u := &hooks.RefreshUpdater{Root: root, Config: cfg, DryRun: dryRun, Log: log, Total: len(kernels)}
	var errs []error
	for _, k := range kernels {
		if err := u.Update(k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
