package weakupdates

import (
	"fmt"
	"sort"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
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
	Removing []string // kernels being removed: their links go, their builds are not offered
	Gone     []string // build files being removed: not offered, links to them re-pointed
	DryRun   bool
	Depmod   string
	Log      func(string)
}

// Result is what Sync saw, decided and did.
type Result struct {
	Inventory *inventory.Inventory
	Plan      *Plan
	Changes   []Change
	Changed   []string // kernels whose module set changed (depmod ran, initramfs is stale)
}

// Sync brings every installed kernel's weak-updates tree to the planned state under the lock.
func Sync(c *config.Config, opt SyncOptions) (*Result, error) {
	unlock, err := lockUnlessDry(opt.Root, opt.DryRun)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, k := range opt.Only {
		if _, err := kabi.LoadKernel(opt.Root, k); err != nil {
			return nil, err
		}
	}
	res, err := Preview(c, opt.Root, opt.Removing, opt.Gone)
	if err != nil {
		return nil, err
	}
	changes := res.Changes
	if len(opt.Only) > 0 {
		only := map[string]bool{}
		for _, k := range opt.Only {
			only[k] = true
		}
		changes = changes[:0:0]
		for _, ch := range res.Changes {
			if only[ch.Kernel] || ch.Why == "dangling" || ch.Op == Remove && isTemp(ch.Link) {
				changes = append(changes, ch)
			}
		}
		res.Changes = changes
	}
	noDepmod := map[string]bool{}
	for _, k := range opt.Removing {
		noDepmod[k] = true
	}
	res.Changed, err = Apply(opt.Root, changes, Options{DryRun: opt.DryRun, Depmod: opt.Depmod, Log: opt.Log, NoDepmod: noDepmod})
	return res, err
}

// Preview scans, plans and diffs without changing anything and without the lock.
func Preview(c *config.Config, root string, removing, gone []string) (*Result, error) {
	inv, err := inventory.Scan(root)
	if err != nil {
		return nil, err
	}
	pol := PolicyFrom(c, removing, gone)
	plan := MakePlan(inv, pol, LoadKernels(inv, pol))
	return &Result{Inventory: inv, Plan: plan, Changes: Diff(inv, plan, pol)}, nil
}

// Row is one (kernel, module) cell of the status table.
type Row struct {
	Kernel   string `json:"kernel"`
	Module   string `json:"module"`
	Required bool   `json:"required"`
	State    string `json:"state"` // native, weak, incompatible, missing, dangling, excluded, stale, pending
	From     string `json:"from,omitempty"`
	Path     string `json:"path,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Status describes, for every installed kernel and every external or required module, what is
// on disk now and what the plan says; "pending" means `kabiguard link` would change it.
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
			links[inventory.ModuleName(l.Sub)] = l
		}
		for _, n := range sorted {
			_, req := required[n]
			r := Row{Kernel: kp.Release, Module: n, Required: req}
			d := kp.Decisions[n]
			l := links[n]
			switch {
			case d != nil && d.State == Native:
				r.State, r.Path = string(Native), d.Build.Path
			case d == nil && t.Native[n] != "":
				r.State, r.Path = string(Native), t.Native[n] // in-tree (kernel/), e.g. a required xfs
			case l != nil && l.Dangling:
				r.State, r.Path, r.Reason = "dangling", l.Path, "points at "+l.Target
			case l != nil && d != nil && d.State == Weak && sameFile(res.Inventory.Root, l.Resolved, d.Build.Path):
				r.State, r.From, r.Path = string(Weak), d.From, l.Resolved
			case l != nil:
				r.State, r.Path, r.Reason = "stale", l.Path, "links "+l.Target+"; run kabiguard link"
			case d != nil && d.State == Weak:
				r.State, r.From, r.Reason = "pending", d.From, "compatible build from "+d.From+" not linked yet; run kabiguard link"
			case d != nil && d.State == Excluded:
				r.State, r.Reason = string(Excluded), "never_weak in "+config.MainFile
			case d != nil && d.State == Incompatible:
				r.State = string(Incompatible)
				r.Reason = firstReason(d, kp)
			case kp.Err != nil:
				r.State, r.Reason = "missing", "cannot decide: "+kp.Err.Error()
			case anywhere[n] == "":
				r.State, r.Reason = "missing", "no build of "+n+" is installed for any kernel"
			default:
				r.State, r.Reason = "missing", "only builds for other series or flavours (e.g. "+anywhere[n]+"); see share_builds"
			}
			rows = append(rows, r)
		}
	}
	return rows, errs
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
