package weakupdates

import (
	"fmt"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// Why a kernel does not get a build: the refusals the planner records, and the providers
// behind a missing symbol or a foreign CRC.

// explainRefusals records why each candidate better than the chosen one (all of them when none
// is chosen) was refused, and names the providers behind the symbols they miss.
func explainRefusals(root string, t *inventory.Tree, kp *KernelPlan, names []string, cands map[string][]*inventory.Build,
	chosen map[string]*inventory.Build, native []*module.Module, offered []*inventory.Build) {
	for _, n := range names {
		refuse(root, t, kp, kp.Decisions[n], cands[n], chosen[n], withOthers(native, chosen, n))
	}
	for _, n := range names {
		nameProviders(t, kp, n, chosen, offered)
	}
}

// refuse records in d the rejection of each build in cands ranked before chosen, checked
// with what it would load with, and sets the state of a name left without a build:
// Unreadable when every build is, Blocked when a build would load but its link path is taken,
// else (as marked) Incompatible.
func refuse(root string, t *inventory.Tree, kp *KernelPlan, d *Decision, cands []*inventory.Build, chosen *inventory.Build, with []*module.Module) {
	unreadable, blocked := 0, false
	for _, b := range cands {
		if b == chosen {
			break
		}
		rej := Rejection{Build: b.Path, From: b.Kernel}
		if b.Err != nil {
			unreadable++
			rej.Problems = []kabi.Problem{{Kind: kabi.KindUnreadable, Want: b.Path, Have: readError(b)}}
			d.Rejected = append(d.Rejected, rej)
			continue
		}
		v := kabi.Check(kp.Kernel, []*module.Module{b.Module}, with)[0]
		if o := blocker(root, t, b.Sub); o != "" {
			blocked = blocked || v.Compatible
			rej.Problems = append(rej.Problems, kabi.Problem{Kind: kabi.KindBlocked, Want: "weak-updates/" + b.Sub, Have: o})
		}
		rej.Problems = append(rej.Problems, v.Problems...)
		d.Rejected = append(d.Rejected, rej)
	}
	switch {
	case chosen != nil:
	case blocked:
		d.State = Blocked
	case unreadable == len(cands):
		d.State = Unreadable
	}
}

// nameProviders rewrites the problems of name's rejected builds to name the provider behind a
// missing symbol and why the kernel does not get it, and the build behind a CRC that is not
// the kernel's but a provider's.
func nameProviders(t *inventory.Tree, kp *KernelPlan, name string, chosen map[string]*inventory.Build, offered []*inventory.Build) {
	for i := range kp.Decisions[name].Rejected {
		rej := &kp.Decisions[name].Rejected[i]
		for j, p := range rej.Problems {
			switch p.Kind {
			case kabi.KindMissing:
				if prov, why := missingProvider(kp, p.Symbol, name, offered); prov != "" {
					rej.Problems[j] = kabi.Problem{Symbol: p.Symbol, Kind: kabi.KindNoProvider, Want: prov, Have: why}
				}
			case kabi.KindCRC:
				if b := providerOf(t, chosen, name, p.Symbol); b != nil {
					have := fmt.Sprintf("%s (%s's build from %s)", p.Have, b.Name, b.Kernel)
					rej.Problems[j] = kabi.Problem{Symbol: p.Symbol, Kind: kabi.KindProviderCRC, Want: p.Want, Have: have}
				}
			}
		}
	}
}

// providerOf returns the build that serves symbol to a build of user in kernel t, as
// withOthers orders them (the kernel's own builds, then the chosen ones by name); nil when
// the kernel itself exports it.
func providerOf(t *inventory.Tree, chosen map[string]*inventory.Build, user, symbol string) *inventory.Build {
	for _, b := range t.Builds {
		if b.Err == nil && exports(b, symbol) {
			return b
		}
	}
	for _, n := range sortedNames(chosen) {
		if n != user && exports(chosen[n], symbol) {
			return chosen[n]
		}
	}
	return nil
}

// missingProvider finds a module of another name that exports symbol in some build, and says
// why the kernel of kp does not get it. "" when no build exports it.
func missingProvider(kp *KernelPlan, symbol, user string, offered []*inventory.Build) (string, string) {
	for _, b := range offered {
		if b.Err != nil || b.Name == user || !exports(b, symbol) {
			continue
		}
		d := kp.Decisions[b.Name]
		if d == nil {
			return b.Name, "no build of it is offered to this kernel (other series or flavour; see share_builds)"
		}
		return b.Name, describe(kp, d)
	}
	return "", ""
}

// readError is why build b could not be parsed, without the file name the error starts with
// (and without "cannot be read: ", which every caller says itself).
func readError(b *inventory.Build) string {
	return strings.TrimPrefix(strings.TrimPrefix(b.Err.Error(), b.Path+": "), "cannot be read: ")
}

func exports(b *inventory.Build, symbol string) bool {
	for _, e := range b.Module.Exports {
		if e.Name == symbol {
			return true
		}
	}
	return false
}

// describe says in a few words why a module is not available to a kernel.
func describe(kp *KernelPlan, d *Decision) string {
	first := ""
	if len(d.Rejected) > 0 && len(d.Rejected[0].Problems) > 0 {
		first = ": " + d.Rejected[0].Problems[0].String()
	}
	switch d.State {
	case Unreadable:
		if d.Build != nil && d.Build.Err != nil {
			return fmt.Sprintf("its own build %s cannot be read: %s", d.Build.Path, readError(d.Build))
		}
		return "its build cannot be read" + first
	case Blocked:
		return "its build cannot be linked" + first
	case Excluded:
		return "never_weak in " + config.MainFile
	case Incompatible:
		return "no build of it loads" + first
	case Admin:
		if a := kp.Admin[d.Module]; a != nil && a.Err != nil {
			return fmt.Sprintf("the admin's link weak-updates/%s provides it, and it cannot be read: %v", d.Link, a.Err)
		}
		return "the admin's link weak-updates/" + d.Link + " provides it, and that build does not export it"
	}
	return d.State.String()
}
