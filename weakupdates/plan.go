package weakupdates

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
)

// Policy is what the configuration decides.
type Policy struct {
	Never map[string]bool // module names never linked weakly (DKMS's NO_WEAK_MODULES)
	// ShareAny lets builds cross kernel series and flavours. Off by default: a build is offered
	// only to kernels of its own series (6.1) and flavour (amd64, rt-amd64, x86_64+debug).
	ShareAny bool
	// Removing lists releases being removed: they get no links and offer no builds, even if
	// their files are still on disk (kernel-install remove runs before the files go).
	Removing map[string]bool
	// Gone lists build files being removed (weak-modules --remove-modules): never offered, and
	// links to them are re-pointed or removed whether or not the files still exist.
	Gone map[string]bool
	// Stay lists the builds in kernels being removed that outlive the removal and so are still
	// offered (BuildsThatStay: a kmod package's files; DKMS's go with the kernel).
	Stay map[string]bool
}

// Rejection is a build that was considered for a kernel and refused.
type Rejection struct {
	Build    string         `json:"build"`
	From     string         `json:"from"`
	Problems []kabi.Problem `json:"problems"`
}

// Decision is the planned state of one module name for one kernel.
type Decision struct {
	Module   string           `json:"module"`
	State    State            `json:"state"`
	Build    *inventory.Build `json:"-"`
	From     string           `json:"from,omitempty"`     // release the chosen build belongs to
	Link     string           `json:"link,omitempty"`     // path below weak-updates/ (Admin: the admin's link)
	Rejected []Rejection      `json:"rejected,omitempty"` // builds refused, best first
}

// KernelPlan is the planned state of one kernel.
type KernelPlan struct {
	Release   string
	Kernel    *kabi.Kernel // nil when it could not be loaded (Err says why)
	Err       error
	Decisions map[string]*Decision // by module name
	Links     map[string]string    // path below weak-updates/ -> host path of the build
	// Admin holds the modules the admin's own links provide (see Managed), read by LoadKernels
	// so their exports serve the weak builds that use them, by module name.
	Admin map[string]*AdminLink
}

// AdminLink is a link in weak-updates that kabiguard does not manage, and what it points at.
type AdminLink struct {
	Link   *inventory.Link
	Module *module.Module // nil when Err
	Err    error          // the target cannot be read as a module
}

// Plan is the desired state of every installed kernel, by release.
type Plan struct {
	Kernels []*KernelPlan
}

// Kernel returns the plan of release, or nil.
func (p *Plan) Kernel(release string) *KernelPlan {
	for _, k := range p.Kernels {
		if k.Release == release {
			return k
		}
	}
	return nil
}

// LoadKernels loads the kabi view (symvers, reference module) of every installed kernel of
// inv that is not being removed. A kernel that cannot be loaded is kept with its error.
func LoadKernels(inv *inventory.Inventory, pol Policy) map[string]*KernelPlan {
	// Only the external builds are ever checked against a kernel's exports.
	var builds []*module.Module
	for _, t := range inv.Trees {
		for _, b := range t.Builds {
			if b.Module != nil {
				builds = append(builds, b.Module)
			}
		}
	}
	need := kabi.SymbolsNeeded(builds...)
	var targets []kabi.Target
	for _, t := range inv.Trees {
		if t.Installed && !pol.Removing[t.Release] {
			targets = append(targets, kabi.Target{Root: inv.Root, Release: t.Release, Wanted: need})
		}
	}
	kernels, errs := kabi.LoadAll(targets)
	out := map[string]*KernelPlan{}
	for i, t := range targets {
		out[t.Release] = &KernelPlan{Release: t.Release, Kernel: kernels[i], Err: errs[i], Admin: adminLinks(inv, inv.Tree(t.Release))}
	}
	return out
}

// adminLinks reads the module behind each of t's links that kabiguard does not manage.
func adminLinks(inv *inventory.Inventory, t *inventory.Tree) map[string]*AdminLink {
	out := map[string]*AdminLink{}
	for _, l := range t.Links {
		if l.Dangling || !kmod.IsModule(l.Sub) || Managed(inv.Root, l) {
			continue
		}
		a := &AdminLink{Link: l}
		a.Module, a.Err = readModule(inv.Root, l.Path)
		name := kmod.ModuleName(l.Sub)
		if a.Module != nil && a.Module.Name != "" {
			name = a.Module.Name
		}
		out[name] = a
	}
	return out
}

// readModule parses the regular file p inside root (symlinks followed inside it).
func readModule(root, p string) (*module.Module, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	raw, err := r.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return module.Parse(p, raw)
}

// MakePlan computes the plan; kernels is LoadKernels' result (loaded once, planned often).
func MakePlan(inv *inventory.Inventory, pol Policy, kernels map[string]*KernelPlan) *Plan {
	offered := offers(inv, pol)
	plan := &Plan{}
	for _, t := range inv.Trees {
		kp, ok := kernels[t.Release]
		if !ok {
			continue
		}
		kp = &KernelPlan{Release: kp.Release, Kernel: kp.Kernel, Err: kp.Err, Admin: kp.Admin,
			Decisions: map[string]*Decision{}, Links: map[string]string{}}
		plan.Kernels = append(plan.Kernels, kp)
		planKernel(inv.Root, t, kp, offered, pol)
	}
	return plan
}

// offers lists every build a directory offers to other kernels, best first: newest source
// kernel, then path. Unreadable builds are listed too (never chosen, but named in reasons).
func offers(inv *inventory.Inventory, pol Policy) []*inventory.Build {
	var out []*inventory.Build
	for _, t := range inv.Trees {
		for _, b := range t.Builds {
			if !pol.Gone[b.Path] && (!pol.Removing[t.Release] || pol.Stay[b.Path]) {
				out = append(out, b)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if c := kabi.CompareReleases(out[i].Kernel, out[j].Kernel); c != 0 {
			return c > 0
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// planKernel decides every module name of kernel t into kp: the kernel's own builds, the
// admin's links, then for each name it lacks the best offered build that loads, and why the
// better ones do not.
func planKernel(root string, t *inventory.Tree, kp *KernelPlan, offered []*inventory.Build, pol Policy) {
	native := decideOwn(t, kp, pol)
	native = append(native, decideAdmin(kp)...)
	cands := candidates(t, kp, offered, pol)
	names := markIncompatible(kp, cands)
	if kp.Kernel == nil { // no exports: nothing can be decided; the error is reported per kernel
		for _, n := range names {
			kp.Decisions[n].State = Undecided
		}
		return
	}
	chosen := choose(kp.Kernel, names, usable(root, t, names, cands), native)
	for n, b := range chosen {
		d := kp.Decisions[n]
		d.State, d.Build, d.From, d.Link = Weak, b, b.Kernel, b.Sub
		kp.Links[b.Sub] = b.Path
	}
	explainRefusals(root, t, kp, names, cands, chosen, native, offered)
}

// decideOwn records the kernel's own external builds (Native, or Unreadable) and returns the
// modules they are: what they export serves the weak builds.
func decideOwn(t *inventory.Tree, kp *KernelPlan, pol Policy) []*module.Module {
	var native []*module.Module
	for _, b := range t.Builds {
		if pol.Gone[b.Path] {
			continue
		}
		d := &Decision{Module: b.Name, State: Native, Build: b, From: t.Release}
		if b.Err != nil {
			d.State = Unreadable
		} else {
			native = append(native, b.Module)
		}
		kp.Decisions[b.Name] = d
	}
	return native
}

// decideAdmin records the names the admin's links provide (Admin) and returns their readable
// modules: their exports serve weak builds like the kernel's own.
func decideAdmin(kp *KernelPlan) []*module.Module {
	var mods []*module.Module
	for _, n := range adminNames(kp) {
		if kp.Decisions[n] != nil {
			continue // the kernel's own build wins over a link in weak-updates (depmod's order)
		}
		kp.Decisions[n] = &Decision{Module: n, State: Admin, Link: kp.Admin[n].Link.Sub}
		if m := kp.Admin[n].Module; m != nil {
			mods = append(mods, m)
		}
	}
	return mods
}

// markIncompatible records every candidate name as Incompatible until a build is chosen, and
// returns the names in order.
func markIncompatible(kp *KernelPlan, cands map[string][]*inventory.Build) []string {
	names := make([]string, 0, len(cands))
	for n := range cands {
		names = append(names, n)
		kp.Decisions[n] = &Decision{Module: n, State: Incompatible}
	}
	sort.Strings(names)
	return names
}

// usable keeps, by name, the candidates that can be read and whose link path is free.
func usable(root string, t *inventory.Tree, names []string, cands map[string][]*inventory.Build) map[string][]*inventory.Build {
	out := map[string][]*inventory.Build{}
	for _, n := range names {
		for _, b := range cands[n] {
			if b.Err == nil && blocker(root, t, b.Sub) == "" {
				out[n] = append(out[n], b)
			}
		}
	}
	return out
}

func adminNames(kp *KernelPlan) []string {
	out := make([]string, 0, len(kp.Admin))
	for n := range kp.Admin {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// candidates returns, by module name, the builds of other directories that kernel t may link
// (its own series and flavour unless shared freely), best first, for every name t lacks: not
// its own build, no admin's link, not excluded by never_weak (recorded as Excluded).
func candidates(t *inventory.Tree, kp *KernelPlan, offered []*inventory.Build, pol Policy) map[string][]*inventory.Build {
	out := map[string][]*inventory.Build{}
	for _, b := range offered {
		if b.Kernel == t.Release || !pol.ShareAny && !shareable(b.Kernel, t.Release) {
			continue
		}
		if p, native := t.Native[b.Name]; native && !pol.Gone[p] {
			continue
		}
		if d := kp.Decisions[b.Name]; d != nil && d.State == Admin {
			continue
		}
		if pol.Never[b.Name] {
			kp.Decisions[b.Name] = &Decision{Module: b.Name, State: Excluded}
			continue
		}
		out[b.Name] = append(out[b.Name], b)
	}
	return out
}

// choose picks, for each name, the best usable build that loads into k together with the
// kernel's own modules and the builds chosen for the other names. Each pass re-decides every
// name against the others' current picks; since module dependencies form no cycle (the loader
// refuses one), providers settle first and their users one pass later, so the passes stop
// after at most one per dependency level.
func choose(k *kabi.Kernel, names []string, usable map[string][]*inventory.Build, native []*module.Module) map[string]*inventory.Build {
	chosen := map[string]*inventory.Build{}
	for pass := 0; pass <= len(names); pass++ {
		changed := false
		for _, n := range names {
			var best *inventory.Build
			with := withOthers(native, chosen, n)
			for _, b := range usable[n] {
				if kabi.Check(k, []*module.Module{b.Module}, with)[0].Compatible {
					best = b
					break
				}
			}
			if chosen[n] != best {
				changed = true
				if best == nil {
					delete(chosen, n)
				} else {
					chosen[n] = best
				}
			}
		}
		if !changed {
			break
		}
	}
	// The picks must load together: drop any that does not (and, through Check's fixpoint,
	// its users), should the passes have stopped on a pick whose provider changed last.
	picked := sortedNames(chosen)
	mods := make([]*module.Module, len(picked))
	for i, n := range picked {
		mods[i] = chosen[n].Module
	}
	for i, v := range kabi.Check(k, mods, native) {
		if !v.Compatible {
			delete(chosen, picked[i])
		}
	}
	return chosen
}

// withOthers is what a build of name loads with: the kernel's own modules, then the builds
// chosen for every other name (in name order, so the first exporter of a symbol is stable).
func withOthers(native []*module.Module, chosen map[string]*inventory.Build, name string) []*module.Module {
	with := append([]*module.Module(nil), native...)
	for _, n := range sortedNames(chosen) {
		if n != name {
			with = append(with, chosen[n].Module)
		}
	}
	return with
}

func sortedNames(m map[string]*inventory.Build) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// blocker returns the file that keeps a link at weak-updates/sub from being made in t: a
// file that is not a symlink (kabiguard never replaces one) at the link path or at one of its
// parent directories, or an admin's link (not managed) at the link path. "" when free.
func blocker(root string, t *inventory.Tree, sub string) string {
	p := filepath.Join(t.Dir, "weak-updates", sub)
	for _, o := range t.Others {
		if o == p || strings.HasPrefix(p, o+"/") {
			return o
		}
	}
	for _, l := range t.Links {
		if l.Path == p && !l.Dangling && !Managed(root, l) {
			return l.Path
		}
	}
	return ""
}

func shareable(a, b string) bool {
	return kabi.Series(a) == kabi.Series(b) && kabi.Flavour(a) == kabi.Flavour(b)
}

// LinkTarget is the symlink content for a link at weak-updates/sub in kernel dir kdir pointing
// at build: relative, so it resolves the same under --root, depmod -b and dracut.
func LinkTarget(kdir, sub, build string) string {
	linkDir := filepath.Dir(filepath.Join(kdir, "weak-updates", sub))
	rel, err := filepath.Rel(linkDir, build)
	if err != nil {
		return build
	}
	return rel
}
