// Package weakupdates decides and applies the weak-updates links of every installed kernel.
//
// Plan is a pure function of an inventory and a policy: for each installed kernel and each
// external module name it lacks natively, it picks the best build from another release
// directory that the kernel's loader would accept (kabi.Check), keeping the reason for every
// build it refuses. Modules of one directory that export symbols to each other form a group
// that is linked whole or not at all; nothing else is grouped, so one incompatible module never
// blocks an unrelated one (RHEL's weak-modules defect R5). Apply then makes the tree match.
package weakupdates

import (
	"path/filepath"
	"sort"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
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
}

// State of a module for a kernel.
type State string

// States, as `kabiguard status` shows them.
const (
	Native       State = "native"       // the kernel has its own build
	Weak         State = "weak"         // linked from another kernel's build
	Incompatible State = "incompatible" // builds exist, none loads into this kernel
	Excluded     State = "excluded"     // policy says never link it weakly
)

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
	Link     string           `json:"link,omitempty"`     // path below weak-updates/
	Rejected []Rejection      `json:"rejected,omitempty"` // builds refused, best first
}

// KernelPlan is the planned state of one kernel.
type KernelPlan struct {
	Release   string
	Kernel    *kabi.Kernel // nil when it could not be loaded (Err says why)
	Err       error
	Decisions map[string]*Decision // by module name
	Links     map[string]string    // path below weak-updates/ -> host path of the build
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
		out[t.Release] = &KernelPlan{Release: t.Release, Kernel: kernels[i], Err: errs[i]}
	}
	return out
}

// group is a set of builds of one directory that use each other's exports.
type group struct {
	from   string
	builds []*inventory.Build
}

// MakePlan computes the plan; kernels is LoadKernels' result (loaded once, planned often).
func MakePlan(inv *inventory.Inventory, pol Policy, kernels map[string]*KernelPlan) *Plan {
	groups := makeGroups(inv, pol)
	plan := &Plan{}
	for _, t := range inv.Trees {
		kp, ok := kernels[t.Release]
		if !ok {
			continue
		}
		kp = &KernelPlan{Release: kp.Release, Kernel: kp.Kernel, Err: kp.Err,
			Decisions: map[string]*Decision{}, Links: map[string]string{}}
		plan.Kernels = append(plan.Kernels, kp)
		planKernel(t, kp, groups, pol)
	}
	return plan
}

func planKernel(t *inventory.Tree, kp *KernelPlan, groups []group, pol Policy) {
	for _, b := range t.Builds {
		if !pol.Gone[b.Path] {
			kp.Decisions[b.Name] = &Decision{Module: b.Name, State: Native, Build: b, From: t.Release}
		}
	}
	// Candidate groups for this kernel: same series and flavour unless shared freely, and only
	// the members this kernel lacks natively.
	var cands []group
	for _, g := range groups {
		if g.from == t.Release || !pol.ShareAny && !shareable(g.from, t.Release) {
			continue
		}
		var need []*inventory.Build
		for _, b := range g.builds {
			if p, native := t.Native[b.Name]; native && !pol.Gone[p] {
				continue
			}
			if pol.Never[b.Name] {
				if kp.Decisions[b.Name] == nil {
					kp.Decisions[b.Name] = &Decision{Module: b.Name, State: Excluded}
				}
				continue
			}
			need = append(need, b)
		}
		if len(need) > 0 {
			cands = append(cands, group{g.from, need})
		}
	}
	for _, g := range cands {
		for _, b := range g.builds {
			if kp.Decisions[b.Name] == nil {
				kp.Decisions[b.Name] = &Decision{Module: b.Name, State: Incompatible}
			}
		}
	}
	if kp.Kernel == nil {
		return // no symvers: nothing can be decided; the error is reported per kernel
	}
	// The kernel's own external modules export to weak ones (a kmod built for this kernel
	// that another package's module uses).
	var native []*module.Module
	for _, b := range t.Builds {
		if b.Module != nil && !pol.Gone[b.Path] {
			native = append(native, b.Module)
		}
	}
	// Candidates are ranked newest source kernel first (groups are built in that order);
	// a group is taken whole or not at all, and only while none of its names is chosen yet.
	// Passes repeat until nothing changes, so a group that needs another group's exports
	// is accepted once that one is chosen.
	chosen := map[string]*inventory.Build{}
	for changed := true; changed; {
		changed = false
		for _, g := range cands {
			if anyChosen(g, chosen) {
				continue
			}
			mods := make([]*module.Module, len(g.builds))
			for i, b := range g.builds {
				mods[i] = b.Module
			}
			with := append([]*module.Module(nil), native...)
			for _, b := range chosen {
				with = append(with, b.Module)
			}
			verdicts := kabi.Check(kp.Kernel, mods, with)
			ok := true
			for _, v := range verdicts {
				ok = ok && v.Compatible
			}
			if !ok {
				continue
			}
			for _, b := range g.builds {
				chosen[b.Name] = b
				d := kp.Decisions[b.Name]
				d.State, d.Build, d.From, d.Link = Weak, b, b.Kernel, b.Sub
				kp.Links[b.Sub] = b.Path
			}
			changed = true
		}
	}
	// Explain every refused candidate of the names still without a build, and of the chosen
	// ones the better-ranked builds that were passed over.
	for _, g := range cands {
		mods := make([]*module.Module, len(g.builds))
		for i, b := range g.builds {
			mods[i] = b.Module
		}
		with := append([]*module.Module(nil), native...)
		for _, b := range chosen {
			with = append(with, b.Module)
		}
		for i, v := range kabi.Check(kp.Kernel, mods, with) {
			b := g.builds[i]
			d := kp.Decisions[b.Name]
			if d.Build == b {
				continue
			}
			if v.Compatible {
				// Refused only because a sibling in its group is not.
				v.Problems = append(v.Problems, groupProblem(g, b, kp.Kernel, with))
			}
			if d.State == Weak && kabi.CompareReleases(b.Kernel, d.From) < 0 {
				continue // an older build than the chosen one: not worth listing
			}
			d.Rejected = append(d.Rejected, Rejection{Build: b.Path, From: b.Kernel, Problems: v.Problems})
		}
	}
}

// groupProblem names the sibling that kept a compatible build out.
func groupProblem(g group, b *inventory.Build, k *kabi.Kernel, with []*module.Module) kabi.Problem {
	for _, s := range g.builds {
		if s != b && !kabi.Check(k, []*module.Module{s.Module}, append(with, moduleList(g)...))[0].Compatible {
			return kabi.Problem{Kind: kabi.KindGroup, Want: s.Name, Have: "incompatible"}
		}
	}
	return kabi.Problem{Kind: kabi.KindGroup, Want: "a sibling", Have: "incompatible"}
}

func moduleList(g group) []*module.Module {
	out := make([]*module.Module, 0, len(g.builds))
	for _, b := range g.builds {
		out = append(out, b.Module)
	}
	return out
}

func anyChosen(g group, chosen map[string]*inventory.Build) bool {
	for _, b := range g.builds {
		if chosen[b.Name] != nil {
			return true
		}
	}
	return false
}

func shareable(a, b string) bool {
	return kabi.Series(a) == kabi.Series(b) && kabi.Flavour(a) == kabi.Flavour(b)
}

// makeGroups splits each directory's parsed builds into groups connected by symbol use, newest
// directory first, then by path.
func makeGroups(inv *inventory.Inventory, pol Policy) []group {
	var out []group
	trees := append([]*inventory.Tree(nil), inv.Trees...)
	sort.SliceStable(trees, func(i, j int) bool { return kabi.CompareReleases(trees[i].Release, trees[j].Release) > 0 })
	for _, t := range trees {
		if pol.Removing[t.Release] {
			continue
		}
		var builds []*inventory.Build
		for _, b := range t.Builds {
			if b.Err == nil && !pol.Gone[b.Path] {
				builds = append(builds, b)
			}
		}
		sort.Slice(builds, func(i, j int) bool { return builds[i].Path < builds[j].Path })
		for _, comp := range components(builds) {
			out = append(out, group{from: t.Release, builds: comp})
		}
	}
	return out
}

// components returns the connected components of builds under "uses an export of".
func components(builds []*inventory.Build) [][]*inventory.Build {
	exporter := map[string]int{}
	for i, b := range builds {
		for _, e := range b.Module.Exports {
			exporter[e.Name] = i
		}
	}
	parent := make([]int, len(builds))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for i, b := range builds {
		for _, u := range b.Module.Undefined {
			if j, ok := exporter[u.Name]; ok && j != i {
				parent[find(i)] = find(j)
			}
		}
	}
	byRoot := map[int][]*inventory.Build{}
	var order []int
	for i, b := range builds {
		r := find(i)
		if byRoot[r] == nil {
			order = append(order, r)
		}
		byRoot[r] = append(byRoot[r], b)
	}
	out := make([][]*inventory.Build, 0, len(order))
	for _, r := range order {
		out = append(out, byRoot[r])
	}
	return out
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
