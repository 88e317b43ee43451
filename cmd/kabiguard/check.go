package main

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"golang.org/x/sys/unix"
)

type checkCmd struct {
	Kernel  []string `short:"k" placeholder:"RELEASE" help:"Kernel release to check against (repeatable; default: the running kernel); its symvers is found under --root."`
	Root    string   `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot and usr/src." type:"path"`
	Symvers []string `placeholder:"FILE" help:"A Module.symvers or symvers-K.gz file to check against instead of an installed kernel (repeatable)." type:"path"`
	With    []string `placeholder:"MODULE" help:"Modules installed alongside that export symbols to the checked ones; trusted to load (repeatable)." type:"path"`
	JSON    bool     `help:"Print JSON: [{module, name, kernel, symvers, compatible, problems: [{symbol, kind, want, have}]}]."`
	Reasons int      `default:"3" help:"How many reasons to print per incompatible module (text output)."`
	Modules []string `arg:"" name:"module" help:"Module files to check. Modules checked together may use each other's exports." type:"path"`
}

func (checkCmd) Help() string {
	return `A module is compatible when the kernel's loader would accept it: every symbol version
it carries (module_layout included) matches the CRC the kernel, or a module given
alongside, exports; namespaced symbols are imported; vermagic flags and the size of
struct module agree. A module built without modversions is reported as such: it loads
only into the exact release it was built for.

Exit status: 0 all compatible, 1 some module is incompatible, 2 error.

Examples:
  kabiguard check --kernel 6.1.0-54-amd64 /lib/modules/6.1.0-50-amd64/extra/drbd.ko
  kabiguard check -k 6.1.0-53-amd64 -k 6.1.0-54-amd64 --root /srv/image drbd.ko drbd_transport_tcp.ko
  kabiguard check --symvers /boot/symvers-5.14.0-427.el9.x86_64.gz --json kmod-foo/*.ko.xz`
}

func (c *checkCmd) Run(e *env) error {
	if len(c.Kernel) == 0 && len(c.Symvers) == 0 {
		// Like modprobe and modinfo: the running kernel, but only for the running system.
		if filepath.Clean(c.Root) != "/" {
			return fmt.Errorf("say which kernel of %s to check against: --kernel RELEASE or --symvers FILE", c.Root)
		}
		rel, err := runningRelease()
		if err != nil {
			return fmt.Errorf("cannot tell the running kernel (%v): say --kernel RELEASE or --symvers FILE", err)
		}
		c.Kernel = []string{rel}
	}
	mods, err := openModules(c.Modules)
	if err != nil {
		return err
	}
	with, err := openModules(c.With)
	if err != nil {
		return err
	}
	need := kabi.SymbolsNeeded(append(append([]*module.Module{}, mods...), with...)...)
	var targets []kabi.Target
	for _, rel := range c.Kernel {
		targets = append(targets, kabi.Target{Root: c.Root, Release: rel, Wanted: need})
	}
	for _, p := range c.Symvers {
		targets = append(targets, kabi.Target{Symvers: p, Wanted: need})
	}
	kernels, errs := kabi.LoadAll(targets)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	var all []kabi.Verdict
	for _, k := range kernels {
		all = append(all, kabi.Check(k, mods, with)...)
	}
	if c.JSON {
		if err := writeJSON(e.stdout, all); err != nil {
			return err
		}
	} else {
		c.printText(e, kernels, all)
	}
	for _, v := range all {
		if !v.Compatible {
			return problemError{}
		}
	}
	return nil
}

func (c *checkCmd) printText(e *env, kernels []*kabi.Kernel, all []kabi.Verdict) {
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	for _, k := range kernels {
		if k.Release != "" { // a bare --symvers target is already named by its path
			fmt.Fprintf(w, "%s: %s\n", k.Name(), exportsSource(k))
		}
	}
	for _, v := range all {
		mod := filepath.Base(v.Module)
		if v.Compatible {
			note := ""
			if v.Unversioned {
				note = " (no modversions: built for this exact release)"
			}
			fmt.Fprintf(w, "%s: compatible with %s%s\n", mod, v.Kernel, note)
			continue
		}
		reasons := make([]string, 0, c.Reasons)
		for i, p := range v.Problems {
			if i == c.Reasons {
				reasons = append(reasons, fmt.Sprintf("(+%d more)", len(v.Problems)-c.Reasons))
				break
			}
			reasons = append(reasons, p.String())
		}
		fmt.Fprintf(w, "%s: INCOMPATIBLE with %s: %s\n", mod, v.Kernel, strings.Join(reasons, "; "))
	}
}

func openModules(paths []string) ([]*module.Module, error) {
	mods := make([]*module.Module, 0, len(paths))
	for _, p := range paths {
		m, err := module.Open(p)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// runningRelease is uname -r.
func runningRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
