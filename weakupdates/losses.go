package weakupdates

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kmod"
)

// Loss is a required module that a kernel staying installed could load before a change and
// cannot after it: removing one kernel (or one kernel's DKMS build) stripped another. Such a
// change is done as asked, but never quietly: every caller prints each Loss at error level.
type Loss struct {
	Kernel string `json:"kernel"`
	Module string `json:"module"`
	Had    string `json:"had"`    // the file it loaded before: its own build or where its weak link led
	Reason string `json:"reason"` // why nothing serves it afterwards
}

func (l Loss) String() string {
	return fmt.Sprintf("%s stays installed but loses required module %s (it loaded %s): %s; it would boot without it",
		Printable(l.Kernel), l.Module, Printable(l.Had), l.Reason)
}

// Printable is s as it can stand in a one-line message: quoted when it holds a control
// character, a space or bytes that are not UTF-8 (a hostile release directory's name).
func Printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// Losses compares, for every installed kernel that is not being removed and could be planned,
// each required module before res's changes (the kernel's own build, or a weak-updates link
// leading to a file) with the plan (native, weak, or an admin's link).
func Losses(res *Result, c *config.Config, pol Policy) []Loss {
	var out []Loss
	for _, kp := range res.Plan.Kernels {
		t := res.Inventory.Tree(kp.Release)
		if t == nil || kp.Kernel == nil || pol.Removing[kp.Release] {
			continue
		}
		for _, req := range c.Required {
			had := loadedBefore(t, req.Name)
			if had == "" || servedAfter(kp, t, req.Name, pol) {
				continue
			}
			out = append(out, Loss{Kernel: kp.Release, Module: req.Name, Had: had, Reason: lossReason(kp, req.Name, had, pol)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := kabi.CompareReleases(out[i].Kernel, out[j].Kernel); c != 0 {
			return c < 0
		}
		return out[i].Module < out[j].Module
	})
	return out
}

// loadedBefore returns the file t loads name from as the tree is on disk, or "".
func loadedBefore(t *inventory.Tree, name string) string {
	if p := t.Native[name]; p != "" {
		return p
	}
	for _, l := range t.Links {
		if !l.Dangling && kmod.ModuleName(l.Sub) == name {
			return l.Resolved
		}
	}
	return ""
}

// servedAfter reports whether the plan gives kp the module: its own build that is not going,
// an in-tree module, a weak link, or an admin's link.
func servedAfter(kp *KernelPlan, t *inventory.Tree, name string, pol Policy) bool {
	d := kp.Decisions[name]
	if d == nil {
		p := t.Native[name]
		return p != "" && !pol.Gone[p]
	}
	switch d.State {
	case Weak, Admin:
		return true
	case Native:
		return d.Build == nil || !pol.Gone[d.Build.Path]
	}
	return false
}

func lossReason(kp *KernelPlan, name, had string, pol Policy) string {
	why := "the plan no longer links it"
	if pol.Gone[had] {
		why = "that build is being removed"
	}
	for r := range pol.Removing {
		if strings.Contains(had, "/lib/modules/"+r+"/") {
			why = "kernel " + r + ", whose build it used, is being removed"
		}
	}
	if d := kp.Decisions[name]; d != nil {
		for _, rej := range d.Rejected {
			if len(rej.Problems) > 0 {
				return fmt.Sprintf("%s, and no other build loads into it (the build from %s: %s)", why, rej.From, rej.Problems[0])
			}
		}
	}
	return why + ", and no other build of it is installed"
}
