package status

import (
	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Report is one look at a root: what `kabiguard status` prints and `kabiguard metrics`
// exports.
type Report struct {
	Plan    *weakupdates.Plan // the plan the report describes (each kernel's exports among it)
	Kernels []string          // the installed kernels, in the plan's order
	Rows    []weakupdates.Row // one per kernel and external or required module, annotated
	Images  []Image           // one per kernel, in Kernels' order
	Errs    []error           // what could not be read for a row (status prints them; exit 1)
	// Dangling are, per kernel, its weak-updates links that point at nothing (whoever made
	// them: the next `kabiguard link` removes them), as the inventory found them.
	Dangling map[string][]string

	lacking map[string]bool // kernels whose image lacks a required early module (Annotate)
}

// Collect computes the report of the tree under root as it is now (nothing is changed), as
// weakupdates.Preview sees it: kernels in removing (being removed) are left out, builds in
// gone are not offered.
func Collect(root string, cfg *config.Config, removing, gone []string) (*Report, error) {
	res, err := weakupdates.Preview(cfg, root, removing, gone)
	if err != nil {
		return nil, err
	}
	rep := &Report{Plan: res.Plan}
	rep.Rows, rep.Errs = weakupdates.Status(res, cfg)
	rep.Dangling = map[string][]string{}
	for _, kp := range res.Plan.Kernels {
		rep.Kernels = append(rep.Kernels, kp.Release)
		if t := res.Inventory.Tree(kp.Release); t != nil {
			for _, l := range t.Links {
				if l.Dangling {
					rep.Dangling[kp.Release] = append(rep.Dangling[kp.Release], l.Path)
				}
			}
		}
	}
	rep.Images = Images(root, cfg, rep.Kernels)
	rep.lacking = Annotate(rep.Rows, rep.Images, cfg)
	return rep, nil
}

// Ready reports whether kernel may boot as the gate sees it: every required module is native
// or weak there, and every required early one has a copy in its image.
func (r *Report) Ready(kernel string) bool {
	if r.lacking[kernel] {
		return false
	}
	for _, row := range r.Rows {
		if row.Kernel == kernel && !loadable(row) {
			return false
		}
	}
	return true
}

// OK is `kabiguard status`'s exit 0: every kernel is Ready and every row could be read.
func (r *Report) OK() bool {
	if len(r.Errs) > 0 || len(r.lacking) > 0 {
		return false
	}
	for _, row := range r.Rows {
		if !loadable(row) {
			return false
		}
	}
	return true
}

// loadable: not a required module the kernel cannot load from its own build or a link.
func loadable(row weakupdates.Row) bool {
	return !row.Required || row.State == weakupdates.Native || row.State == weakupdates.Weak
}
