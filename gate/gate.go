package gate

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Options says what to check.
type Options struct {
	Root   string
	Kernel string
	Config *config.Config
	// Initrds are the images the kernel will boot with (kernel-install's INITRD arguments).
	Initrds []string
	// StagingArea is kernel-install's $KERNEL_INSTALL_STAGING_AREA: its initrd* files are
	// images too (85-initrd links Debian's /boot/initrd.img-K there, 50-dracut writes one).
	StagingArea string
	// NoInitrd skips the initramfs check: the Debian hook that runs before the generator.
	NoInitrd bool
	// BootRoot is kernel-install's $KERNEL_INSTALL_BOOT_ROOT: its loader/entries is looked
	// into for the kernel's boot entries besides /boot's and the ESP's (package bls).
	BootRoot string
}

// Module is the verdict for one required module.
type Module struct {
	Name     string         `json:"name"`
	Early    bool           `json:"early"`
	Source   string         `json:"source"`         // where it was declared required (file:line)
	State    string         `json:"state"`          // as in `kabiguard status`
	From     string         `json:"from,omitempty"` // release whose build a weak link uses
	Path     string         `json:"path,omitempty"` // the file modprobe would load
	Depends  []string       `json:"depends,omitempty"`
	Initrd   string         `json:"initrd"` // "yes", "no", "not checked", "not required"
	OK       bool           `json:"ok"`
	Reason   string         `json:"reason,omitempty"`   // one line, when not OK
	Problems []kabi.Problem `json:"problems,omitempty"` // of the best refused build
}

// Gate actions.
const (
	Pass   = "pass"   // every required module resolves
	Refuse = "refuse" // something does not, and the configuration says refuse
	Warn   = "warn"   // something does not, and on_missing_required = warn
)

// Result is the gate's answer.
type Result struct {
	Kernel  string   `json:"kernel"`
	OK      bool     `json:"ok"`
	Action  string   `json:"action"`
	Initrds []string `json:"initrds"` // images looked into for early modules
	Modules []Module `json:"modules"`
	// BootEntries are the kernel's BLS entries (/boot/loader/entries/*-K.conf) that exist
	// now: the ones a refusal cannot keep the boot loader from offering (BootEntryNote).
	BootEntries []string `json:"boot_entries"`
}

// Failed returns the modules that did not pass.
func (r *Result) Failed() []Module {
	var out []Module
	for _, m := range r.Modules {
		if !m.OK {
			out = append(out, m)
		}
	}
	return out
}

// Check decides whether opt.Kernel may become bootable. An error means the gate could not
// decide at all (unreadable configuration or module trees); callers treat it as a refusal.
func Check(opt Options) (*Result, error) {
	cfg := opt.Config
	res := &Result{Kernel: opt.Kernel, OK: true, Action: Pass, Initrds: []string{}, Modules: []Module{}}
	if len(cfg.Required) == 0 {
		res.BootEntries = []string{}
		return res, nil
	}
	// The entries only inform the refusal's message: one that cannot be read must not keep
	// the gate from deciding (an error here would refuse the kernel).
	entries, err := bootEntries(opt.Root, opt.Kernel, opt.BootRoot)
	if err != nil {
		entries = []string{}
	}
	res.BootEntries = entries
	prev, err := weakupdates.Preview(cfg, opt.Root, nil, nil)
	if err != nil {
		return nil, err
	}
	rows, _ := weakupdates.Status(prev, cfg)
	byName := map[string]weakupdates.Row{}
	for _, r := range rows {
		if r.Kernel == opt.Kernel {
			byName[r.Module] = r
		}
	}
	kp := prev.Plan.Kernel(opt.Kernel)
	dep, depErr := kmod.ReadDep(opt.Root, opt.Kernel)
	if errors.Is(depErr, fs.ErrNotExist) {
		depErr = errors.New("missing")
	}
	lc := &loadCheck{root: opt.Root, kernel: opt.Kernel, inv: prev.Inventory, rows: byName}

	for _, req := range cfg.Required {
		m := Module{Name: req.Name, Early: req.Early, Source: req.Source, Initrd: "not required"}
		if req.Early {
			m.Initrd = "not checked"
		}
		row, ok := byName[req.Name]
		tree := prev.Inventory.Tree(opt.Kernel)
		switch {
		case kp == nil:
			m.State = weakupdates.Missing.String()
			m.Reason = fmt.Sprintf("%s: %s is not an installed kernel under %s (no module tree)", req.Name, opt.Kernel, kmod.ModulesDir(opt.Root, ""))
		case !ok && tree != nil && tree.Native[req.Name] != "":
			// The kernel's own module: in-tree (kernel/) or built for it (extra/, updates/).
			m.State, m.Path = weakupdates.Native.String(), tree.Native[req.Name]
		case !ok:
			m.State = weakupdates.Missing.String()
			m.Reason = noBuild(req.Name, opt.Kernel)
		default:
			m.State, m.From, m.Path = row.State.String(), row.From, row.Path
			m.Reason, m.Problems = explain(req.Name, opt.Kernel, row, kp, prev.Inventory)
		}
		if m.Reason == "" {
			m.Reason, m.Path, m.Depends = checkIndexed(opt.Root, opt.Kernel, req.Name, dep, depErr)
		}
		if m.Reason == "" {
			m.Reason, m.Problems = lc.check(req.Name, m.Path, m.Depends, dep)
		}
		m.OK = m.Reason == ""
		res.Modules = append(res.Modules, m)
	}

	if !opt.NoInitrd && anyEarly(res.Modules) {
		checkInitrds(opt, res)
	}
	for _, m := range res.Modules {
		if !m.OK {
			res.OK = false
		}
	}
	if !res.OK {
		res.Action = Refuse
		if cfg.OnMissingRequired == "warn" {
			res.Action = Warn
		}
	}
	return res, nil
}

func anyEarly(mods []Module) bool {
	for _, m := range mods {
		if m.Early {
			return true
		}
	}
	return false
}

func noBuild(name, kernel string) string {
	return fmt.Sprintf("no build of %s is compatible with any installed kernel: none is installed, and %s has none of its own", name, kernel)
}

// maxProblems bounds the symbols named in one reason line; --json has them all.
const maxProblems = 3

// explain returns why a module's row is not usable, "" when it is (native or weak).
func explain(name, kernel string, row weakupdates.Row, kp *weakupdates.KernelPlan, inv *inventory.Inventory) (string, []kabi.Problem) {
	switch row.State {
	case weakupdates.Native, weakupdates.Weak, weakupdates.Admin:
		return "", nil // then checkIndexed and loadCheck look at the file modprobe would load
	case weakupdates.Unreadable:
		if row.Path != "" { // the reason names the file
			return fmt.Sprintf("%s: %s", name, row.Reason), nil
		}
		return fmt.Sprintf("%s: no build usable by %s: %s", name, kernel, row.Reason), nil
	case weakupdates.Blocked:
		return fmt.Sprintf("%s: not linked into %s: %s", name, kernel, row.Reason), nil
	case weakupdates.Undecided:
		return fmt.Sprintf("%s: cannot tell whether any build loads into %s: %v", name, kernel, kp.Err), nil
	case weakupdates.Incompatible:
		if kp.Kernel == nil {
			return fmt.Sprintf("%s: cannot tell whether any build loads into %s: %v", name, kernel, kp.Err), nil
		}
		d := kp.Decisions[name]
		if d == nil || len(d.Rejected) == 0 {
			return fmt.Sprintf("no build of %s loads into %s: %s", name, kernel, row.Reason), nil
		}
		rej := d.Rejected[0] // the best-ranked build: newest source kernel
		var parts []string
		for i, p := range rej.Problems {
			if i == maxProblems {
				parts = append(parts, fmt.Sprintf("and %d more", len(rej.Problems)-maxProblems))
				break
			}
			parts = append(parts, p.String())
		}
		more := ""
		if n := len(d.Rejected) - 1; n > 0 {
			more = fmt.Sprintf(" (%d older build(s) refused as well)", n)
		}
		return fmt.Sprintf("%s does not load into %s: the build from %s (%s) is refused: %s%s",
			name, kernel, rej.From, rej.Build, strings.Join(parts, "; "), more), rej.Problems
	case weakupdates.Pending:
		return fmt.Sprintf("%s: a compatible build from %s is not linked into %s/weak-updates yet: run 'kabiguard link'", name, row.From, kernel), nil
	case weakupdates.Dangling:
		return fmt.Sprintf("%s: its weak-updates link %s %s: run 'kabiguard link'", name, row.Path, row.Reason), nil
	case weakupdates.Stale:
		return fmt.Sprintf("%s: %s", name, row.Reason), nil
	case weakupdates.Excluded:
		return fmt.Sprintf("%s: %s has no build of its own and never_weak (%s) forbids a weak link", name, kernel, config.MainFile), nil
	}
	// missing
	for _, t := range inv.Trees {
		for _, b := range t.Builds {
			if b.Name == name {
				return fmt.Sprintf("%s: no build usable by %s: %s", name, kernel, row.Reason), nil
			}
		}
	}
	if strings.HasPrefix(row.Reason, "cannot decide") {
		return fmt.Sprintf("%s: %s", name, row.Reason), nil
	}
	return noBuild(name, kernel), nil
}

// checkIndexed makes sure depmod indexed the module for the kernel (modprobe finds it) and every
// module it depends on exists. It returns a reason or "", the file and the dependencies.
func checkIndexed(root, kernel, name string, dep *kmod.Dep, depErr error) (string, string, []string) {
	dir := kmod.ModulesDir(root, kernel)
	if depErr != nil {
		return fmt.Sprintf("%s: cannot read %s/modules.dep (%v): run '%s'", name, dir, depErr, kmod.DepmodAdvice(root, kernel)), "", nil
	}
	m, ok := dep.Lookup(name)
	if !ok {
		return fmt.Sprintf("%s: not in %s/modules.dep, so modprobe cannot find it: run '%s'", name, dir, kmod.DepmodAdvice(root, kernel)), "", nil
	}
	path := kmod.DepPath(root, kernel, m.Path)
	if err := regularIn(root, path); err != nil {
		return fmt.Sprintf("%s: %s is in modules.dep but cannot be opened: %v", name, path, err), path, nil
	}
	var deps []string
	for _, d := range m.Needs {
		dp := kmod.DepPath(root, kernel, d)
		deps = append(deps, kmod.ModuleName(d))
		if err := regularIn(root, dp); err != nil {
			return fmt.Sprintf("%s: depends on %s, which cannot be opened: %v", name, dp, err), path, deps
		}
	}
	return "", path, deps
}

// loadCheck decides, by the loader's rules, whether the file modprobe would load for a
// required module loads into the kernel together with the modules modules.dep makes modprobe
// load first: depmod indexes a module whose symbol nobody exports (it only warns "needs unknown
// symbol"), so an indexed module with existing dependencies may still be refused at boot.
type loadCheck struct {
	root, kernel string
	inv          *inventory.Inventory
	rows         map[string]weakupdates.Row
	k            *kabi.Kernel // every export of the kernel, loaded on first use
	kerr         error
}

// check returns a reason (and the problems) when the module at path does not load, "" when it
// does. In-tree modules (kernel/) are the kernel's own and are not checked.
func (lc *loadCheck) check(name, path string, deps []string, dep *kmod.Dep) (string, []kabi.Problem) {
	dir := kmod.ModulesDir(lc.root, lc.kernel)
	if strings.HasPrefix(path, filepath.Join(dir, "kernel")+"/") {
		return "", nil
	}
	if lc.k == nil && lc.kerr == nil {
		lc.k, lc.kerr = kabi.LoadKernel(lc.root, lc.kernel)
	}
	if lc.kerr != nil {
		return fmt.Sprintf("%s: cannot tell whether %s loads into %s: %v", name, path, lc.kernel, lc.kerr), nil
	}
	mod, err := lc.parse(path)
	if err != nil {
		return fmt.Sprintf("%s: %s cannot be read: %v", name, path, err), nil
	}
	var with []*module.Module
	for _, d := range deps {
		line, _ := dep.Lookup(d)
		p := kmod.DepPath(lc.root, lc.kernel, line.Path)
		dm, err := lc.parse(p)
		if err != nil {
			return fmt.Sprintf("%s: its dependency %s cannot be read: %v", name, p, err), nil
		}
		with = append(with, dm)
	}
	v := kabi.Check(lc.k, []*module.Module{mod}, with)[0]
	if v.Compatible {
		return "", nil
	}
	var parts []string
	for i, p := range v.Problems {
		if i == maxProblems {
			parts = append(parts, fmt.Sprintf("and %d more", len(v.Problems)-maxProblems))
			break
		}
		parts = append(parts, lc.describe(p))
	}
	return fmt.Sprintf("%s: %s does not load into %s with the modules modprobe loads first (%s): %s",
		name, path, lc.kernel, dependsList(deps), strings.Join(parts, "; ")), v.Problems
}

// describe is p, with the module whose build exports a missing symbol named, and why the
// kernel does not have it.
func (lc *loadCheck) describe(p kabi.Problem) string {
	if p.Kind != kabi.KindMissing {
		return p.String()
	}
	for _, t := range lc.inv.Trees {
		for _, b := range t.Builds {
			if b.Module == nil {
				continue
			}
			for _, e := range b.Module.Exports {
				if e.Name == p.Symbol {
					why := "it is not in modules.dep"
					if r, ok := lc.rows[b.Name]; ok && r.State != weakupdates.Native && r.State != weakupdates.Weak {
						why = r.State.String()
						if r.Reason != "" {
							why += ": " + r.Reason
						}
					}
					return fmt.Sprintf("%s: exported by %s, which %s does not get (%s)", p.Symbol, b.Name, lc.kernel, why)
				}
			}
		}
	}
	return p.String()
}

func dependsList(deps []string) string {
	if len(deps) == 0 {
		return "none"
	}
	return strings.Join(deps, ", ")
}

// parse reads the regular file p inside the root and parses it as a module.
func (lc *loadCheck) parse(p string) (*module.Module, error) {
	r, err := rootfs.At(lc.root)
	if err != nil {
		return nil, err
	}
	raw, err := r.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m, err := module.Parse(p, raw)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), p+": "))
	}
	return m, nil
}

// regularIn checks that p, followed inside root, is a regular file modprobe can load.
func regularIn(root, p string) error {
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	fi, err := r.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w (%s)", rootfs.ErrNotRegular, rootfs.Kind(fi.Mode()))
	}
	return nil
}
