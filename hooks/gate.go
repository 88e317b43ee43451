package hooks

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// The install-time gate: before a kernel gets a boot entry (kernel-install's 86- plugin, the
// Debian postinst.d hooks), every required module (config.Required) must resolve for it —
// native or through a weak-updates link, indexed by depmod with every dependency present — and
// every required early module must also be inside the initramfs the kernel will boot with.

// GateOptions says what to check.
type GateOptions struct {
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
}

// GateModule is the verdict for one required module.
type GateModule struct {
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
	GatePass   = "pass"   // every required module resolves
	GateRefuse = "refuse" // something does not, and the configuration says refuse
	GateWarn   = "warn"   // something does not, and on_missing_required = warn
)

// GateResult is the gate's answer.
type GateResult struct {
	Kernel  string       `json:"kernel"`
	OK      bool         `json:"ok"`
	Action  string       `json:"action"`
	Initrds []string     `json:"initrds"` // images looked into for early modules
	Modules []GateModule `json:"modules"`
}

// Failed returns the modules that did not pass.
func (r *GateResult) Failed() []GateModule {
	var out []GateModule
	for _, m := range r.Modules {
		if !m.OK {
			out = append(out, m)
		}
	}
	return out
}

// Gate decides whether opt.Kernel may become bootable. An error means the gate could not
// decide at all (unreadable configuration or module trees); callers treat it as a refusal.
func Gate(opt GateOptions) (*GateResult, error) {
	cfg := opt.Config
	res := &GateResult{Kernel: opt.Kernel, OK: true, Action: GatePass, Initrds: []string{}, Modules: []GateModule{}}
	if len(cfg.Required) == 0 {
		return res, nil
	}
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
		m := GateModule{Name: req.Name, Early: req.Early, Source: req.Source, Initrd: "not required"}
		if req.Early {
			m.Initrd = "not checked"
		}
		row, ok := byName[req.Name]
		tree := prev.Inventory.Tree(opt.Kernel)
		switch {
		case kp == nil:
			m.State = "missing"
			m.Reason = fmt.Sprintf("%s: %s is not an installed kernel under %s (no module tree)", req.Name, opt.Kernel, kmod.ModulesDir(opt.Root, ""))
		case !ok && tree != nil && tree.Native[req.Name] != "":
			// The kernel's own module: in-tree (kernel/) or built for it (extra/, updates/).
			m.State, m.Path = string(weakupdates.Native), tree.Native[req.Name]
		case !ok:
			m.State = "missing"
			m.Reason = noBuild(req.Name, opt.Kernel)
		default:
			m.State, m.From, m.Path = row.State, row.From, row.Path
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
		res.Action = GateRefuse
		if cfg.OnMissingRequired == "warn" {
			res.Action = GateWarn
		}
	}
	return res, nil
}

func anyEarly(mods []GateModule) bool {
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
	case string(weakupdates.Native), string(weakupdates.Weak), string(weakupdates.Admin):
		return "", nil // then checkIndexed and loadCheck look at the file modprobe would load
	case string(weakupdates.Unreadable):
		if row.Path != "" { // the reason names the file
			return fmt.Sprintf("%s: %s", name, row.Reason), nil
		}
		return fmt.Sprintf("%s: no build usable by %s: %s", name, kernel, row.Reason), nil
	case string(weakupdates.Blocked):
		return fmt.Sprintf("%s: not linked into %s: %s", name, kernel, row.Reason), nil
	case string(weakupdates.Incompatible):
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
	case "pending":
		return fmt.Sprintf("%s: a compatible build from %s is not linked into %s/weak-updates yet: run 'kabiguard link'", name, row.From, kernel), nil
	case "dangling":
		return fmt.Sprintf("%s: its weak-updates link %s %s: run 'kabiguard link'", name, row.Path, row.Reason), nil
	case "stale":
		return fmt.Sprintf("%s: %s", name, row.Reason), nil
	case string(weakupdates.Excluded):
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
					if r, ok := lc.rows[b.Name]; ok && r.State != string(weakupdates.Native) && r.State != string(weakupdates.Weak) {
						why = r.State
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

// GateImages lists the initramfs images the kernel will boot with: the explicit ones, the
// initrd* files of the staging area, else the distribution's usual path under the root.
func GateImages(opt GateOptions) []string {
	imgs := append([]string(nil), opt.Initrds...)
	if opt.StagingArea != "" {
		staged, _ := filepath.Glob(filepath.Join(opt.StagingArea, "initrd*"))
		sort.Strings(staged)
		imgs = append(imgs, staged...)
	}
	if len(imgs) == 0 {
		if img := FindImage(opt.Root, opt.Kernel); img != "" {
			imgs = append(imgs, img)
		}
	}
	return imgs
}

// checkInitrds marks every early module that is not (with its dependencies) in one of the
// kernel's images.
func checkInitrds(opt GateOptions, res *GateResult) {
	imgs := GateImages(opt)
	res.Initrds = append(res.Initrds, imgs...)
	have := map[string]bool{}
	var readErrs []string
	for _, p := range imgs {
		names, err := imageModules(p, opt.Kernel)
		if err != nil {
			readErrs = append(readErrs, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		for n := range names {
			have[n] = true
		}
	}
	where := strings.Join(imgs, ", ")
	for i := range res.Modules {
		m := &res.Modules[i]
		if !m.Early {
			continue
		}
		switch {
		case len(imgs) == 0:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but %s has no initramfs to look in (none given, none in the staging area, none of /%s)",
					m.Name, opt.Kernel, strings.Join(ImagePaths(opt.Kernel), ", /"))
			}
		case len(readErrs) > 0:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but the initramfs cannot be read: %s", m.Name, strings.Join(readErrs, "; "))
			}
		case !have[m.Name]:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but the initramfs (%s) does not contain it", m.Name, where)
			}
		default:
			m.Initrd = "yes"
			for _, d := range m.Depends {
				if !have[d] && m.OK {
					m.Initrd = "no"
					m.Reason = fmt.Sprintf("%s is required early and is in the initramfs (%s), but its dependency %s is not", m.Name, where, d)
				}
			}
		}
		m.OK = m.Reason == ""
	}
}

// imageModules returns the names of the modules of release inside the image at path.
func imageModules(path, release string) (map[string]bool, error) {
	im, err := initramfs.Open(path)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	kms, err := im.Modules()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, km := range kms {
		if km.Release != release {
			continue
		}
		for _, m := range km.Modules {
			out[m.Name] = true
		}
	}
	return out, nil
}

// GateAdvice is what the admin can do when the gate refuses a kernel: only the ways out that
// work on the host under root (a DKMS rebuild only where DKMS and the kernel's headers are; the
// image rebuild of the generator the host has; the package manager's removal of the kernel).
func GateAdvice(res *GateResult, root, mainFile string) []string {
	k := res.Kernel
	h := hostOf(root, k)
	var out []string
	rebuild, image := false, false
	for _, m := range res.Failed() {
		loads := m.State == string(weakupdates.Native) || m.State == string(weakupdates.Weak)
		if loads && m.Early && m.Initrd == "no" {
			image = true // it loads: only its copy in the initramfs is missing
		} else {
			rebuild = true
		}
	}
	if rebuild {
		switch {
		case h.dkms && h.headers:
			out = append(out, fmt.Sprintf("rebuild the module for %s: 'dkms autoinstall -k %s'", k, k))
		case h.dkms && h.headersPkg == "":
			out = append(out, fmt.Sprintf("install the headers of %s, then rebuild the module with DKMS, if it builds for that kernel (dkms autoinstall -k %s)", k, k))
		case h.dkms:
			// Two steps, never one that fails alone: without the headers DKMS cannot build.
			out = append(out, fmt.Sprintf("install the headers of %s and rebuild the module with DKMS, if it builds for that kernel: '%s && dkms autoinstall -k %s'", k, h.headersPkg, k))
		}
		if h.akmods {
			out = append(out, fmt.Sprintf("rebuild the module for %s: 'akmods --kernels %s'", k, k))
		}
		out = append(out, fmt.Sprintf("install a kmod package built for %s", k))
	}
	if image {
		switch {
		case h.initramfsTools:
			out = append(out, fmt.Sprintf("rebuild the initramfs: 'update-initramfs -u -k %s' (kabiguard's initramfs-tools hook adds the early modules)", k))
		case h.dracut:
			out = append(out, fmt.Sprintf("rebuild the initramfs: 'dracut --force --kver %s' (kabiguard's dracut module adds the early modules)", k))
		default:
			out = append(out, fmt.Sprintf("rebuild the initramfs of %s with the early modules in it", k))
		}
	}
	if h.removeKernel != "" {
		out = append(out, fmt.Sprintf("or do not boot this kernel: remove it ('%s')", h.removeKernel))
	}
	for _, m := range res.Failed() {
		if m.Source != "" {
			line := m.Name
			if m.Early {
				line += " early"
			}
			out = append(out, fmt.Sprintf("or drop the requirement: the line %q at %s", line, m.Source))
		}
	}
	out = append(out, fmt.Sprintf("or accept the risk: on_missing_required = warn in %s", mainFile))
	out = append(out, "then install the kernel again (kernel-install add, or 'dpkg --configure -a' on Debian)")
	for i := 1; i < len(out)-2; i++ {
		if !strings.HasPrefix(out[i], "or ") {
			out[i] = "or " + out[i]
		}
	}
	return out
}

// host is what GateAdvice may advise on the host under a root.
type host struct {
	dkms, akmods, headers, initramfsTools, dracut bool
	headersPkg, removeKernel                      string
}

func hostOf(root, k string) host {
	r, err := rootfs.At(root)
	if err != nil {
		return host{}
	}
	exists := func(rel string) bool {
		_, err := r.Stat(r.Path(rel))
		return err == nil
	}
	h := host{
		dkms:           exists("usr/sbin/dkms"),
		akmods:         exists("usr/sbin/akmods"),
		headers:        exists("lib/modules/" + k + "/build/Makefile"),
		initramfsTools: exists("usr/sbin/update-initramfs"),
		dracut:         exists("usr/bin/dracut"),
	}
	switch {
	case exists("var/lib/dpkg/status"):
		h.headersPkg = "apt-get install linux-headers-" + k
		pkg := "linux-image-" + k
		for _, p := range []string{pkg, pkg + "-unsigned"} {
			if exists("var/lib/dpkg/info/" + p + ".list") {
				pkg = p
			}
		}
		h.removeKernel = "apt-get purge " + pkg
	case exists("var/lib/rpm") || exists("usr/lib/sysimage/rpm"):
		h.headersPkg = "dnf install kernel-devel-" + k
		h.removeKernel = "dnf remove kernel-core-" + k
	}
	return h
}
