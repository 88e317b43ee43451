package main

import (
	"bufio"
	"fmt"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/status"
	"github.com/kabiguard/kabiguard/weakupdates"
)

type linkCmd struct {
	Root        string   `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
	Kernel      []string `short:"k" placeholder:"RELEASE" help:"Change links only in these kernels (repeatable); dangling links are removed everywhere regardless."`
	DryRun      bool     `help:"Print what would change; change nothing, run nothing."`
	JSON        bool     `help:"Print the changes as JSON: [{kernel, op, link, old, target, why}]."`
	NoInitramfs bool     `name:"no-initramfs" help:"Do not refresh the initramfs images of kernels whose links changed."`
}

func (linkCmd) Help() string {
	return `For every installed kernel and every external module (extra/, updates/, ...) it lacks,
links the best kABI-compatible build of another kernel into its weak-updates/ (newest
source kernel first); re-points links that dangle or point at a build that is no longer
the right one; removes links nothing justifies (only its own, see 'kabiguard status': an
admin's link stays). A module that uses another's symbols is linked only when the build
chosen for that other module (its own, in-tree or linked) exports them with the CRCs it
wants; a provider is linked whatever its users do. The real depmod then runs once per changed kernel, and
each changed kernel's initramfs is refreshed in place (a full generator run only when a
required early module or a dependency is missing from it).
Builds are offered only to kernels of the same series and flavour unless share_builds =
any in /etc/kabiguard/kabiguard.conf; never_weak there excludes modules.

Examples:
  kabiguard link --dry-run
  kabiguard link --kernel 6.1.0-54-amd64
  kabiguard link --root /srv/image --json`
}

func (c *linkCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	log := func(s string) {
		if !c.JSON {
			fmt.Fprintln(w, s)
		}
	}
	// Also after a failed Sync: the images of kernels whose links did change, and those an
	// earlier run left owed, are refreshed now (a kernel whose depmod failed stays owed).
	res, err := hooks.Run(hooks.Options{Root: c.Root, Config: cfg, Only: c.Kernel, DryRun: c.DryRun, NoInitramfs: c.NoInitramfs,
		Log: log, Progress: log, SayUpToDate: !c.JSON,
		Losses: e.stderr, Prefix: "kabiguard: ", MarkDryRun: true,
		AfterSync: func(res *weakupdates.Result) error {
			if !c.JSON {
				return nil
			}
			changes := res.Changes
			if changes == nil {
				changes = []weakupdates.Change{}
			}
			return writeJSON(w, changes)
		},
		// Deferred, not cancelled: the markers Sync wrote keep the images owed.
		Deferred: func(owed []string) { sayImagesOwed(w, owed, "") }})
	if err != nil {
		return err
	}
	return lossProblem(res.Sync)
}

// lossProblem is exit 1 when the run stripped a kernel staying installed of a required module
// (already reported at error level by reportLosses).
func lossProblem(res *weakupdates.Result) error {
	if res != nil && len(res.Losses) > 0 {
		return problemError{}
	}
	return nil
}

type statusCmd struct {
	Root string `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
	JSON bool   `help:"Print JSON: [{kernel, module, required, state, from, path, reason}]."`
}

func (statusCmd) Help() string {
	return `One line per installed kernel and external or required module:
  native        the kernel has its own build (extra/, updates/, ...)
  weak          linked from another kernel's build (FROM)
  pending       a compatible build exists but is not linked yet: run 'kabiguard link'
  incompatible  builds exist, none loads into this kernel (first reason shown)
  undecided     the kernel's exports cannot be read (no symvers file and no readable
                vmlinuz): whether a build loads cannot be told
  missing       no build for this kernel's series and flavour
  dangling      a weak-updates link points at nothing
  stale         a link points at a build that is not the planned one
  excluded      never_weak in /etc/kabiguard/kabiguard.conf
  unreadable    the build cannot be read (corrupt or truncated file; the error is shown):
                never linked, and a kernel whose own build it is cannot load it
  blocked       a compatible build cannot be linked: a file kabiguard did not create holds
                its link path in weak-updates/ (shown; left alone)
  admin         an admin's own link in weak-updates/ provides it: kept, not managed
Required modules (/etc/kabiguard/required.d) are marked with '*'. A weak build from a
module directory without a kernel (DKMS built it for headers alone) is said to be one.
Then one line per kernel's initramfs, verified against its tree as 'kabiguard initramfs
verify' does: current, stale (copies of other builds, or of modules the tree no longer
has), lacks-early (a required early module is not in it), no-image, unreadable. In --json
each row also carries "image" and "initrd" (the state of that module's copy there).
On a host with Boot Loader Specification entries (/boot/loader/entries), a last table
names each kernel's entry ("boot_entries" in --json), and, for a kernel the gate refuses,
whether an entry still boots it or kernel-install will write none.
Exit status: 0 every required module is native or weak everywhere and every early one has a
current copy in its kernel's image (what the gate checks), 1 otherwise, 2 error.

Examples:
  kabiguard status
  kabiguard status --json | jq '.[] | select(.required and .state != "weak" and .state != "native")'`
}

func (c *statusCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	rep, err := status.Collect(c.Root, cfg, nil, nil)
	if err != nil {
		return err
	}
	rows, errs, images := rep.Rows, rep.Errs, rep.Images
	boot, err := bootStates(c.Root, rep.Kernels, rows, rep.Ready)
	if err != nil {
		return err
	}
	exports := kernelExports(rep.Plan) // status_exports.go
	if c.JSON {
		if err := writeJSON(e.stdout, statusRows(rows, exports)); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "KERNEL\tMODULE\tSTATE\tDETAIL")
		for _, r := range rows {
			name := r.Module
			if r.Required {
				name += "*"
			}
			detail := r.Reason
			if r.State == weakupdates.Weak {
				detail = "<- " + r.From
				if r.FromNoKernel {
					detail += " (no kernel installed there: only its module builds)"
				}
			} else if r.State == weakupdates.Native {
				detail = r.Path
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Kernel, name, r.State, detail)
		}
		tw.Flush()
		fmt.Fprintln(e.stdout)
		printExports(e.stdout, rep.Plan, exports)
		fmt.Fprintln(e.stdout)
		printImages(e.stdout, images)
		printBoot(e.stdout, boot)
	}
	for _, err := range errs {
		fmt.Fprintf(e.stderr, "kabiguard: %v\n", err)
	}
	noteImagesOwed(e.stderr, c.Root, "kabiguard: ") // hook.go
	if !rep.OK() {
		return problemError{}
	}
	return nil
}
