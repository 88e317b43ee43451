package weakupdates

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kmod"
)

// Diff lists the changes that bring inv's weak-updates trees to plan. Only managed symlinks
// (see Managed) are ever re-pointed or removed, and dangling ones whoever made them; regular
// files and the admin's links in weak-updates stay. A kernel being removed loses all its
// managed links; a kernel that could not be planned (no symvers) keeps its links unless they
// dangle, so no command ever leaves a dangling link behind. Every removal says truly why.
func Diff(inv *inventory.Inventory, plan *Plan, pol Policy) []Change {
	var out []Change
	for _, t := range inv.Trees {
		kp := plan.Kernel(t.Release)
		have := map[string]*inventory.Link{}
		for _, l := range t.Links {
			if isTemp(l.Path) {
				out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: Why{Reason: ReasonLeftover}})
				continue
			}
			have[l.Sub] = l
		}
		if kp == nil || kp.Kernel == nil {
			for _, l := range have {
				switch {
				case l.Dangling:
					out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: Why{Reason: ReasonDangling}})
				case pol.Removing[t.Release] && Managed(inv.Root, l):
					out = append(out, Change{Kernel: t.Release, Op: Remove, Link: l.Path, Old: l.Target, Why: Why{Reason: ReasonKernelRemoved}})
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
				out = append(out, Change{Kernel: t.Release, Op: Create, Link: linkPath, Target: target, Why: Why{ReasonCompatible, buildKernel(kp, sub)}})
			case !sameFile(inv.Root, l.Resolved, build) || l.Target != target:
				why := Why{ReasonBetter, buildKernel(kp, sub)}
				if l.Dangling {
					why.Reason = ReasonWasDangling
				}
				out = append(out, Change{Kernel: t.Release, Op: Repoint, Link: linkPath, Old: l.Target, Target: target, Why: why})
			}
		}
		for _, l := range have {
			if _, want := kp.Links[l.Sub]; want {
				continue
			}
			why := Why{Reason: ReasonDangling}
			if !l.Dangling {
				if !Managed(inv.Root, l) {
					continue // the admin's link: kept (status shows it), never removed
				}
				why = Why{ReasonUnwanted, removalReason(inv.Root, kp, l, pol)}
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
	return kp.Decisions[kmod.ModuleName(l.Sub)]
}

// removalReason says truly why a managed, non-dangling link that the plan does not want goes.
func removalReason(root string, kp *KernelPlan, l *inventory.Link, pol Policy) string {
	d := decisionFor(kp, l)
	from, _ := managedRelease(root, l)
	gone := ""
	switch {
	case pol.Removing[from]:
		gone = "its build's kernel " + from + " is being removed"
	case pol.Gone[l.Resolved] || pol.Gone[lexicalTarget(root, l)]:
		gone = "its build is being removed"
	}
	switch {
	case gone != "" && d != nil && d.State == Weak:
		return gone + "; replaced by the build from " + d.From + " at weak-updates/" + d.Link
	case gone != "" && d != nil && d.State == Incompatible && len(d.Rejected) > 0 && len(d.Rejected[0].Problems) > 0:
		return fmt.Sprintf("%s; no other build loads (the build from %s: %s)", gone, d.Rejected[0].From, d.Rejected[0].Problems[0])
	case gone != "":
		return gone
	case d == nil && !pol.ShareAny && !shareable(from, kp.Release):
		return "its build is for " + from + ", another series or flavour (see share_builds)"
	case d == nil:
		return "no build of " + kmod.ModuleName(l.Sub) + " is offered to this kernel"
	}
	switch d.State {
	case Native:
		return "kernel has its own build " + d.Build.Path
	case Weak:
		return "replaced by the build from " + d.From + " at weak-updates/" + d.Link
	case Excluded:
		return "never_weak in " + config.MainFile
	case Unreadable:
		if d.Build != nil {
			return "kernel has its own build " + d.Build.Path + ", which cannot be read"
		}
		if len(d.Rejected) > 0 && len(d.Rejected[0].Problems) > 0 {
			return "no build of " + d.Module + " for this kernel can be read: " + d.Rejected[0].Problems[0].String()
		}
	case Admin:
		return "an admin's link weak-updates/" + d.Link + " provides it"
	}
	for _, rej := range d.Rejected {
		if len(rej.Problems) > 0 {
			return fmt.Sprintf("no compatible build: the build from %s: %s", rej.From, rej.Problems[0])
		}
	}
	return "no compatible build"
}

// notExternal are the directories of lib/modules/RELEASE that hold no external builds.
var notExternal = map[string]bool{"kernel": true, "weak-updates": true, "build": true, "source": true, "vdso": true}

// Managed reports whether kabiguard manages the weak-updates link l: only managed links are
// ever re-pointed or removed (a dangling link is removed whoever made it: it points at nothing).
//
// The rule: a link is managed when it sits at weak-updates/SUB and its target (as written,
// absolute meaning the root) names lib/modules/RELEASE/DIR/SUB, where DIR is a directory of
// external builds (extra/, updates/, anything but kernel/, weak-updates/, build/, source/,
// vdso/) and SUB is the same path below DIR. That is exactly the link kabiguard makes, and the
// one RHEL's weak-modules made before kabiguard was installed (an absolute target): those are
// adopted and managed like kabiguard's own. Any other link is the admin's: another name or
// directory below weak-updates (e.g. admin/foo.ko), a target outside lib/modules (/opt/...) or
// into kernel/. It is kept, shown by `kabiguard status` as "admin", never removed, its
// directory never removed, and its module name is never linked by kabiguard in that kernel.
func Managed(root string, l *inventory.Link) bool {
	_, ok := managedRelease(root, l)
	return ok
}

// lexicalTarget is the host path l's target names, an absolute target meaning the root.
func lexicalTarget(root string, l *inventory.Link) string {
	if filepath.IsAbs(l.Target) {
		return filepath.Join(root, l.Target)
	}
	return filepath.Join(filepath.Dir(l.Path), l.Target)
}

// managedRelease returns the release directory a managed link points into (see Managed).
func managedRelease(root string, l *inventory.Link) (string, bool) {
	target := lexicalTarget(root, l)
	for _, base := range []string{kmod.ModulesRel, "usr/" + kmod.ModulesRel} {
		rel, err := filepath.Rel(filepath.Join(root, base), target)
		if err != nil {
			continue
		}
		parts := strings.SplitN(rel, "/", 3)
		if len(parts) == 3 && parts[0] != ".." && parts[0] != "." && !notExternal[parts[1]] && parts[1] != ".." && parts[2] == l.Sub {
			return parts[0], true
		}
	}
	return "", false
}
