package weakupdates

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kmod"
)

// PolicyFrom turns configuration into a planning policy.
func PolicyFrom(c *config.Config, removing, gone []string) Policy {
	p := Policy{Never: map[string]bool{}, ShareAny: c.ShareBuilds == "any", Removing: map[string]bool{}, Gone: map[string]bool{}}
	for _, g := range gone {
		p.Gone[g] = true
	}
	for _, n := range c.NeverWeak {
		p.Never[n] = true
	}
	for _, k := range removing {
		p.Removing[k] = true
	}
	return p
}

// SyncOptions of Sync.
type SyncOptions struct {
	Root     string
	Only     []string // change links only in these kernels (dangling links are removed everywhere)
	Removing []string // kernels being removed: their links go, their DKMS builds are not offered (BuildsThatStay)
	Gone     []string // build files being removed: not offered, links to them re-pointed
	DryRun   bool
	Depmod   string
	Log      func(string)
}

// Result is what Sync saw, decided and did.
type Result struct {
	Inventory *inventory.Inventory
	Plan      *Plan
	Policy    Policy // what the plan was made with
	Changes   []Change
	Changed   []string // kernels whose module set changed (depmod ran, initramfs is stale)
	Losses    []Loss   // required modules that kernels staying installed lose by this change
	// Failed are the kernels some of whose link changes (or whose depmod) failed: their
	// images stay owed, never refreshed from a tree that is not yet what was planned.
	Failed []string
}

// Sync brings every installed kernel's weak-updates tree to the planned state under the lock.
func Sync(c *config.Config, opt SyncOptions) (*Result, error) {
	unlock, err := lockUnlessDry(opt.Root, opt.DryRun)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res, err := Preview(c, opt.Root, opt.Removing, opt.Gone)
	if err != nil {
		return nil, err
	}
	res.Losses = Losses(res, c, res.Policy)
	changes := res.Changes
	if len(opt.Only) > 0 {
		only := map[string]bool{}
		for _, k := range opt.Only {
			only[k] = true
		}
		changes = changes[:0:0]
		for _, ch := range res.Changes {
			if only[ch.Kernel] || ch.Why.Reason == ReasonDangling || ch.Op == Remove && isTemp(ch.Link) {
				changes = append(changes, ch)
			}
		}
		res.Changes = changes
		var losses []Loss
		for _, l := range res.Losses {
			if only[l.Kernel] {
				losses = append(losses, l)
			}
		}
		res.Losses = losses
	}
	noDepmod := map[string]bool{}
	for _, k := range opt.Removing {
		noDepmod[k] = true
	}
	res.Changed, res.Failed, err = Apply(opt.Root, changes, Options{DryRun: opt.DryRun, Depmod: opt.Depmod, Log: opt.Log, NoDepmod: noDepmod})
	if u := Unplanned(res, opt); u != nil {
		if err == nil {
			err = u // alone, so callers can tell "links made, something undecided" (OnlyIncomplete)
		} else {
			err = errors.Join(err, u)
		}
	}
	return res, err
}

// ErrIncomplete is wrapped by Sync's error when a kernel in scope could not be planned (no or
// a broken symvers) or a build cannot be read: the links of everything else were still made,
// and the caller goes on (depmod ran, images may be refreshed) but must exit non-zero.
var ErrIncomplete = errors.New("weak-updates links could not be decided for everything")

// IncompleteError lists what could not be planned, one line per kernel or build.
type IncompleteError struct{ Problems []string }

func (e *IncompleteError) Error() string {
	return ErrIncomplete.Error() + ":\n  " + strings.Join(e.Problems, "\n  ")
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

// OnlyIncomplete reports whether err is Sync's IncompleteError alone: every link change was
// made and depmod ran, so the caller still refreshes images before it reports err.
func OnlyIncomplete(err error) bool {
	ie, ok := err.(*IncompleteError)
	return ok && ie != nil
}

// Unplanned returns what Sync could not decide: each kernel in scope (opt.Only, else every
// installed kernel not being removed) whose kabi view could not be loaded, each kernel of
// opt.Only that is not an installed kernel, and each unreadable build (never linked anywhere,
// and a kernel that has it as its own build cannot load it). nil when everything was decided.
func Unplanned(res *Result, opt SyncOptions) error {
	var problems []string
	inScope := func(string) bool { return true }
	if len(opt.Only) > 0 {
		only := map[string]bool{}
		for _, k := range opt.Only {
			only[k] = true
			if res.Plan.Kernel(k) == nil {
				why := "not an installed kernel (no kernel/, modules.order or vmlinuz)"
				if _, err := kabi.LoadKernel(opt.Root, k); err != nil {
					why = err.Error()
				}
				problems = append(problems, fmt.Sprintf("kernel %s: %s", k, why))
			}
		}
		inScope = func(k string) bool { return only[k] }
	}
	for _, kp := range res.Plan.Kernels {
		if kp.Err != nil && inScope(kp.Release) {
			problems = append(problems, fmt.Sprintf("kernel %s: its links cannot be planned: %v", kp.Release, kp.Err))
		}
	}
	removing, gone := map[string]bool{}, map[string]bool{}
	for _, k := range opt.Removing {
		removing[k] = true
	}
	for _, g := range opt.Gone {
		gone[g] = true
	}
	for _, t := range res.Inventory.Trees {
		if removing[t.Release] {
			continue
		}
		for _, b := range t.Builds {
			if b.Err != nil && !gone[b.Path] {
				problems = append(problems, fmt.Sprintf("%s: cannot be read, so it is linked nowhere and %s cannot load it: %s", b.Path, t.Release, readError(b)))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &IncompleteError{Problems: problems}
}

// Preview scans, plans and diffs without changing anything and without the lock.
func Preview(c *config.Config, root string, removing, gone []string) (*Result, error) {
	inv, err := inventory.Scan(root)
	if err != nil {
		return nil, err
	}
	pol := PolicyFrom(c, removing, gone)
	pol.Stay = BuildsThatStay(inv, pol.Removing)
	plan := MakePlan(inv, pol, LoadKernels(inv, pol))
	return &Result{Inventory: inv, Plan: plan, Changes: Diff(inv, plan, pol), Policy: pol}, nil
}

// Row is one (kernel, module) cell of the status table.
type Row struct {
	Kernel   string `json:"kernel"`
	Module   string `json:"module"`
	Required bool   `json:"required"`
	State    State  `json:"state"`
	From     string `json:"from,omitempty"`
	Path     string `json:"path,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// FromNoKernel: the weak link's build lives in a module directory without a kernel (a
	// DKMS build for a kernel that is not installed, e.g. made for its headers alone).
	FromNoKernel bool `json:"from_no_kernel,omitempty"`
	// Image and Initrd, filled in by `kabiguard status`: the kernel's initramfs and the state
	// of this module's copy in it (current, stale, not-in-tree, not-in-image, no-image,
	// unreadable), for the modules it holds and the required early ones.
	Image  string `json:"image,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	// BootEntries, filled in by `kabiguard status` too: the kernel's BLS entries (package bls).
	BootEntries []string `json:"boot_entries,omitempty"`
}

// Status describes, for every installed kernel and every external or required module, what is
// on disk now and what the plan says; Pending means `kabiguard link` would change it.
func Status(res *Result, c *config.Config) ([]Row, []error) {
	var rows []Row
	var errs []error
	required := c.RequiredNames()
	names := map[string]bool{}
	for n := range required {
		names[n] = true
	}
	for _, t := range res.Inventory.Trees {
		for _, b := range t.Builds {
			names[b.Name] = true
		}
		for _, l := range t.Links {
			if l.Dangling && kmod.IsModule(l.Sub) {
				names[kmod.ModuleName(l.Sub)] = true // its build is gone everywhere: the link is all that is left
			}
		}
	}
	for _, kp := range res.Plan.Kernels {
		for n := range kp.Decisions {
			names[n] = true // an admin's link's module, too
		}
	}
	anywhere := map[string]string{} // module name -> a release that has a build of it
	for _, t := range res.Inventory.Trees {
		for _, b := range t.Builds {
			anywhere[b.Name] = t.Release
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	for _, kp := range res.Plan.Kernels {
		t := res.Inventory.Tree(kp.Release)
		if kp.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kp.Release, kp.Err))
		}
		links := map[string]*inventory.Link{}
		for _, l := range t.Links {
			links[kmod.ModuleName(l.Sub)] = l
		}
		for _, n := range sorted {
			_, req := required[n]
			r := Row{Kernel: kp.Release, Module: n, Required: req}
			d := kp.Decisions[n]
			l := links[n]
			switch {
			case d != nil && d.State == Native:
				r.State, r.Path = Native, d.Build.Path
			case d == nil && t.Native[n] != "":
				r.State, r.Path = Native, t.Native[n] // in-tree (kernel/), e.g. a required xfs
			case d != nil && d.State == Unreadable && d.Build != nil:
				r.State, r.Path = Unreadable, d.Build.Path
				r.Reason = fmt.Sprintf("the kernel's own build %s cannot be read: %s", d.Build.Path, readError(d.Build))
			case l != nil && l.Dangling:
				r.State, r.Path, r.Reason = Dangling, l.Path, "points at "+l.Target
			case d != nil && d.State == Admin:
				r.State, r.Path = Admin, filepath.Join(t.Dir, "weak-updates", d.Link)
				r.Reason = "admin's link to " + adminTarget(t, d.Link) + ", not managed by kabiguard"
			case l != nil && d != nil && d.State == Weak && sameFile(res.Inventory.Root, l.Resolved, d.Build.Path):
				r.State, r.From, r.Path = Weak, d.From, d.Build.Path // as the tree names it, like the other rows (not /usr/lib/... on merged /usr)
				if ft := res.Inventory.Tree(d.From); ft != nil && !ft.Installed {
					r.FromNoKernel = true
				}
			case l != nil:
				r.State, r.Path, r.Reason = Stale, l.Path, "links "+l.Target+"; run kabiguard link"
			case d != nil && d.State == Weak:
				r.State, r.From, r.Reason = Pending, d.From, "compatible build from "+d.From+" not linked yet; run kabiguard link"
			case d != nil && d.State == Excluded:
				r.State, r.Reason = Excluded, "never_weak in "+config.MainFile
			case d != nil && d.State == Blocked:
				r.State, r.Path, r.Reason = Blocked, blockedBy(d), firstReason(d, kp)+"; move it away, then run kabiguard link"
			case d != nil && (d.State == Incompatible || d.State == Unreadable || d.State == Undecided):
				r.State = d.State
				r.Reason = firstReason(d, kp)
			case kp.Err != nil:
				r.State, r.Reason = Undecided, "cannot decide: "+kp.Err.Error()
			case anywhere[n] == "":
				r.State, r.Reason = Missing, "no build of "+n+" is installed for any kernel"
			default:
				r.State, r.Reason = Missing, "only builds for other series or flavours (e.g. "+anywhere[n]+"); see share_builds"
			}
			rows = append(rows, r)
		}
	}
	return rows, errs
}

// blockedBy is the file that takes the link path of a Blocked decision's best build.
func blockedBy(d *Decision) string {
	for _, rej := range d.Rejected {
		for _, p := range rej.Problems {
			if p.Kind == kabi.KindBlocked {
				return p.Have
			}
		}
	}
	return ""
}

// adminTarget is the target of the admin's link at weak-updates/sub of t, as written.
func adminTarget(t *inventory.Tree, sub string) string {
	for _, l := range t.Links {
		if l.Sub == sub {
			return l.Target
		}
	}
	return "?"
}

func firstReason(d *Decision, kp *KernelPlan) string {
	if kp.Kernel == nil {
		return "cannot decide: " + kp.Err.Error()
	}
	for _, rej := range d.Rejected {
		if len(rej.Problems) > 0 {
			return fmt.Sprintf("build from %s: %s", rej.From, rej.Problems[0])
		}
	}
	return "no compatible build"
}
