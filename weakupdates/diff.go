package weakupdates

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
)

// Diff lists the changes that bring inv's weak-updates trees to plan. Only symlinks are ever
// changed; regular files in weak-updates belong to someone else and stay. A kernel being
// removed loses all its links; a kernel that could not be planned (no symvers) keeps its links
// unless they dangle, so no command ever leaves a dangling link behind.
func Diff(inv *inventory.Inventory, plan *Plan, pol Policy) []Change {
	var out []Change
	for _, t := range inv.Trees {
		kp := plan.Kernel(t.Release)
		have := map[string]*inventory.Link{}
		for _, l := range t.Links {
			if isTemp(l.Path) {
				out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: "left over from an interrupted run"})
				continue
			}
			have[l.Sub] = l
		}
		if kp == nil || kp.Kernel == nil {
			for _, l := range have {
				switch {
				case pol.Removing[t.Release]:
					out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: "kernel is being removed"})
				case l.Dangling:
					out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: "dangling"})
				}
			}
			continue
		}
		subs := make([]string, 0, len(kp.Links))
		for sub := range kp.Links {
			subs = append(subs, sub)
		}
		sort.Strings(subs)
		for _, sub := range subs {
			build := kp.Links[sub]
			target := LinkTarget(t.Dir, sub, build)
			linkPath := filepath.Join(t.Dir, "weak-updates", sub)
			l := have[sub]
			switch {
			case l == nil:
				if isOthers(t, linkPath) {
					continue // a regular file is in the way: never replaced
				}
				out = append(out, Change{Kernel: t.Release, Op: Create, Link: linkPath, Target: target, Why: "compatible build from " + buildKernel(kp, sub)})
			case !sameFile(inv.Root, l.Resolved, build) || l.Target != target:
				why := "better build from " + buildKernel(kp, sub)
				if l.Dangling {
					why = "was dangling; build from " + buildKernel(kp, sub)
				}
				out = append(out, Change{Kernel: t.Release, Op: Repoint, Link: linkPath, Old: l.Target, Target: target, Why: why})
			}
		}
		for _, l := range have {
			if _, want := kp.Links[l.Sub]; want {
				continue
			}
			why := "no compatible build"
			switch {
			case l.Dangling:
				why = "dangling"
			case !kabi.IsModuleFile(l.Path):
				continue // not a module link: not ours
			default:
				if d := decisionFor(kp, l); d != nil && d.State == Native {
					why = "kernel has its own build"
				}
			}
			out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: why})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if c := kabi.CompareReleases(out[i].Kernel, out[j].Kernel); c != 0 {
			return c < 0
		}
		return out[i].Link < out[j].Link
	})
	return out
}

// tempMarker is in the name of a link being created; one found later was left by a killed run.
const tempMarker = ".kabiguard-tmp-"

func isTemp(p string) bool { return strings.Contains(filepath.Base(p), tempMarker) }

func isOthers(t *inventory.Tree, p string) bool {
	for _, o := range t.Others {
		if o == p {
			return true
		}
	}
	return false
}

func buildKernel(kp *KernelPlan, sub string) string {
	for _, d := range kp.Decisions {
		if d.Link == sub && d.State == Weak {
			return d.From
		}
	}
	return "?"
}

func decisionFor(kp *KernelPlan, l *inventory.Link) *Decision {
	return kp.Decisions[inventory.ModuleName(l.Sub)]
}
