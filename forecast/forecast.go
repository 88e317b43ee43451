package forecast

import (
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Module is what a kernel from the package would do with one of the host's external or
// required modules.
type Module struct {
	Module   string            `json:"module"`
	Required bool              `json:"required"`
	Early    bool              `json:"early,omitempty"`
	State    weakupdates.State `json:"state"`          // native, weak, incompatible, missing, excluded, unreadable, blocked, admin
	From     string            `json:"from,omitempty"` // the installed kernel whose build a weak link would use
	Path     string            `json:"path,omitempty"` // that build, or the package's own file (PACKAGE:PATH)
	Reason   string            `json:"reason,omitempty"`
	Problems []kabi.Problem    `json:"problems,omitempty"` // of the best build refused: symbol, wanted and found CRC
	// DKMS names the DKMS module ("name/version") that will build it for the kernel, from
	// the kernel's headers, when it is installed (see DKMSBuilds).
	DKMS string `json:"dkms,omitempty"`
}

// Loads reports whether the module would load into the kernel.
func (m Module) Loads() bool {
	return m.State == weakupdates.Native || m.State == weakupdates.Weak || m.State == weakupdates.Admin || m.DKMS != ""
}

// Report is the forecast for one kernel of a package.
type Report struct {
	Package string   `json:"package"` // "NAME VERSION (FILE)"
	Kernel  string   `json:"kernel"`
	Exports string   `json:"exports"` // where the kernel's exports came from
	Modules []Module `json:"modules"`
	// Gate is what the install-time gate would answer: "pass", "refuse" or "warn" (refuse
	// turned into a warning by on_missing_required = warn).
	Gate string `json:"gate"`
	// Lost names the required modules the kernel would boot without.
	Lost []string `json:"lost,omitempty"`

	onMissing string // on_missing_required
}

// Keeps reports whether the kernel keeps every required module.
func (r *Report) Keeps() bool { return len(r.Lost) == 0 }

// Options say what a forecast judges against: the host under Root (its installed kernels,
// their external modules, its configuration).
type Options struct {
	Root   string
	Config *config.Config
	// Removing are installed kernels the same transaction removes (dnf's installonly_limit
	// drops the oldest while installing the newest): they get no links, and their DKMS builds
	// are not offered (weakupdates.BuildsThatStay); a kmod package's builds in them stay.
	Removing []string
}

// Run reads the package at pkgPath and judges each kernel it holds against the host.
func Run(pkgPath string, opt Options) ([]*Report, error) {
	return RunTogether([]string{pkgPath}, opt)
}

// RunTogether reads packages installed together (ReadTogether: a kernel split into several
// packages, kmod packages for it) and judges each kernel they hold against the host.
func RunTogether(pkgPaths []string, opt Options) ([]*Report, error) {
	var pkgs []*pkgfile.Package
	for _, p := range pkgPaths {
		pkg, err := pkgfile.Open(p)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, pkg)
	}
	inv, err := inventory.Scan(opt.Root)
	if err != nil {
		return nil, err
	}
	kernels, err := ReadTogether(pkgs, wantedSymbols(inv))
	if err != nil {
		return nil, err
	}
	pol := weakupdates.PolicyFrom(opt.Config, opt.Removing, nil)
	pol.Stay = weakupdates.BuildsThatStay(inv, pol.Removing)
	installed := weakupdates.LoadKernels(inv, pol)
	var out []*Report
	for _, k := range kernels {
		out = append(out, judge(k.home, k, inv, pol, installed, opt.Config, hostDKMS(opt.Root)))
	}
	return out, nil
}

// wantedSymbols are the symbols the planner may look up in a kernel's exports: those the
// host's external builds need (only they are ever checked against a kernel; see
// weakupdates.LoadKernels).
func wantedSymbols(inv *inventory.Inventory) map[string]bool {
	var builds []*module.Module
	for _, t := range inv.Trees {
		for _, b := range t.Builds {
			if b.Module != nil {
				builds = append(builds, b.Module)
			}
		}
	}
	return kabi.SymbolsNeeded(builds...)
}

// judge plans the host with k installed, as the planner would once it is, and reads k's
// decisions. dkms is what DKMS will build for a release when the kernel is installed (nil
// unless its headers are there): see DKMSBuilds.
func judge(pkg *pkgfile.Package, k *Kernel, inv *inventory.Inventory, pol weakupdates.Policy, installed map[string]*weakupdates.KernelPlan, cfg *config.Config, dkms func(release string) map[string]string) *Report {
	tree := packageTree(pkg, k, inv)
	with := &inventory.Inventory{Root: inv.Root}
	for _, t := range inv.Trees {
		if t.Release != k.Release {
			with.Trees = append(with.Trees, t)
		}
	}
	with.Trees = append(with.Trees, tree)
	sort.SliceStable(with.Trees, func(i, j int) bool { return kabi.CompareReleases(with.Trees[i].Release, with.Trees[j].Release) < 0 })

	kernels := map[string]*weakupdates.KernelPlan{}
	for r, kp := range installed {
		kernels[r] = kp
	}
	kp := &weakupdates.KernelPlan{Release: k.Release, Admin: map[string]*weakupdates.AdminLink{},
		Kernel: &kabi.Kernel{Release: k.Release, Dir: tree.Dir, Symvers: k.Symvers, Reference: k.Reference}}
	if old := installed[k.Release]; old != nil {
		kp.Admin = old.Admin // the admin's links in weak-updates/ stay through an upgrade
	}
	kernels[k.Release] = kp
	plan := weakupdates.MakePlan(with, pol, kernels).Kernel(k.Release)

	rep := &Report{Package: k.Packages(), Kernel: k.Release, Exports: k.Provenance, onMissing: cfg.OnMissingRequired}
	required := cfg.RequiredNames()
	for _, name := range moduleNames(inv, required) {
		m := verdict(name, k, tree, plan, pkg)
		req, isReq := required[name]
		m.Required, m.Early = isReq, req.Early
		rep.Modules = append(rep.Modules, m)
	}
	if builds := dkms(k.Release); builds != nil {
		rep.ExpectDKMS(builds) // its headers are installed already
	}
	rep.settle()
	return rep
}

// ExpectDKMS counts the modules DKMS will build for the kernel (builds: DKMSBuilds) as loading:
// the kernel's headers are installed, or come in the same transaction.
func (r *Report) ExpectDKMS(builds map[string]string) {
	for i, m := range r.Modules {
		if src := builds[m.Module]; src != "" && !m.Loads() {
			r.Modules[i].DKMS = src
			r.Modules[i].Reason = fmt.Sprintf("DKMS builds it (%s) from the kernel's headers when the kernel is installed; until then: %s", src, m.Reason)
		}
	}
	r.settle()
}

// settle derives Lost and Gate from the modules.
func (r *Report) settle() {
	r.Lost, r.Gate = nil, "pass"
	for _, m := range r.Modules {
		if m.Required && !m.Loads() {
			r.Lost = append(r.Lost, m.Module)
		}
	}
	if len(r.Lost) > 0 {
		r.Gate = "refuse"
		if r.onMissing == "warn" {
			r.Gate = "warn"
		}
	}
}

// packageTree is k's module directory as it will be once the package is installed: the
// package's own modules (kernel/ and any other directory it ships) and, when that release is
// installed already, the external builds there that the package does not own (DKMS's).
func packageTree(pkg *pkgfile.Package, k *Kernel, inv *inventory.Inventory) *inventory.Tree {
	t := &inventory.Tree{Release: k.Release, Dir: kmod.ModulesDir(inv.Root, k.Release), Installed: true, Native: k.packageNative(pkg)}
	if old := inv.Tree(k.Release); old != nil {
		t.Builds, t.Links, t.Others = old.Builds, old.Links, old.Others
		var kept map[string]string // the package's own modules win over the old tree's
		for n, p := range old.Native {
			if _, own := t.Native[n]; !own && !strings.HasPrefix(p, t.Dir+"/kernel/") {
				if kept == nil {
					kept = maps.Clone(t.Native)
				}
				kept[n] = p
			}
		}
		if kept != nil {
			t.Native = kept
		}
	}
	return t
}

// moduleNames are the host's external modules and the required ones, sorted.
func moduleNames(inv *inventory.Inventory, required map[string]config.Required) []string {
	seen := map[string]bool{}
	for n := range required {
		seen[n] = true
	}
	for _, t := range inv.Trees {
		for _, b := range t.Builds {
			seen[b.Name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// verdict reads one module's fate from the plan of the package's kernel.
func verdict(name string, k *Kernel, tree *inventory.Tree, kp *weakupdates.KernelPlan, pkg *pkgfile.Package) Module {
	m := Module{Module: name}
	if d := kp.Decisions[name]; d != nil {
		m.State, m.From = d.State, d.From
		if d.Build != nil {
			m.Path = d.Build.Path
		}
		if d.State == weakupdates.Incompatible && len(d.Rejected) > 0 {
			rej := d.Rejected[0]
			m.Problems = rej.Problems
			m.Reason = fmt.Sprintf("the build from %s (%s) is refused: %s", rej.From, rej.Build, problemText(rej.Problems))
		}
		if d.State == weakupdates.Excluded {
			m.Reason = "never_weak in " + config.MainFile
		}
		if d.State == weakupdates.Unreadable {
			m.Reason = unreadableReason(d)
		}
		return m
	}
	switch {
	case tree.Native[name] != "":
		m.State, m.Path = weakupdates.Native, tree.Native[name]
		for _, from := range k.from {
			if strings.HasPrefix(m.Path, from.Path+":") {
				m.Reason = "shipped in the package (" + path.Base(m.Path) + ")"
				if from != pkg {
					m.Reason = "shipped in " + from.String() + " (" + path.Base(m.Path) + ")"
				}
				break
			}
		}
	case k.Builtin[name]:
		m.State, m.Reason = weakupdates.Native, "built into the kernel (modules.builtin)"
	default:
		m.State = weakupdates.Missing
		m.Reason = fmt.Sprintf("no build of %s is offered to %s (the package has none; builds are shared within a kernel series and flavour unless share_builds = any)", name, k.Release)
	}
	return m
}

// unreadableReason names the build that cannot be read and why: the kernel's own, or the
// first refused one.
func unreadableReason(d *weakupdates.Decision) string {
	if d.Build != nil && d.Build.Err != nil {
		return fmt.Sprintf("%s cannot be read: %v", d.Build.Path, d.Build.Err)
	}
	for _, rej := range d.Rejected {
		if len(rej.Problems) > 0 {
			return fmt.Sprintf("the build from %s: %s", rej.From, problemText(rej.Problems)) // the problem names the file
		}
	}
	return "its build cannot be read"
}

func problemText(ps []kabi.Problem) string {
	const most = 3
	var parts []string
	for i, p := range ps {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-most))
			break
		}
		parts = append(parts, p.String())
	}
	return strings.Join(parts, "; ")
}
