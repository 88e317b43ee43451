// Package kabi decides whether kernel modules load into a kernel, by the rules the kernel's
// loader applies (kernel/module/main.c and version.c), measured on real kernels in
// ../shared/reference/kernel-verdict.md:
//
//  1. sizeof(struct module) of the module equals the kernel's (checked first, even on forced loads);
//  2. a module with symbol versions: vermagic flags after the release are equal;
//     a module without: the whole vermagic is equal (it only loads into its own release);
//  3. every symbol version the module carries (module_layout included) matches the CRC the
//     kernel or a module loaded alongside exports, and exists;
//  4. every other non-weak undefined symbol exists;
//  5. namespaced exports are imported; GPL-only exports go to GPL-compatible modules.
//
// Every problem keeps symbol, kind, wanted and found values.
package kabi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kabiguard/kabiguard/kabi/module"
)

// Problem kinds.
const (
	KindCRC          = "crc"           // the symbol's CRC differs
	KindMissing      = "missing"       // the symbol is not exported
	KindNamespace    = "namespace"     // exported in a namespace the module does not import
	KindGPLOnly      = "gpl-only"      // GPL-only export, module licence is not GPL-compatible
	KindVermagic     = "vermagic"      // vermagic flags (after the release) differ
	KindStructModule = "struct-module" // sizeof(struct module) differs
	KindUnversioned  = "unversioned"   // no modversions and not built for this release
	KindProvider     = "provider"      // the module exporting the symbol is itself incompatible
	KindGroup        = "group"         // linked only with its group, and a sibling is incompatible
	// Kinds the weak-updates planner adds (package weakupdates): a build it cannot offer.
	KindUnreadable  = "unreadable"   // the build file cannot be parsed (Want: file, Have: error)
	KindBlocked     = "blocked"      // its link path is taken by a file kabiguard did not create (Want: link, Have: file)
	KindNoProvider  = "no-provider"  // the symbol's exporter is not available to the kernel (Want: module, Have: why)
	KindProviderCRC = "provider-crc" // the module the kernel gets exports another CRC (Want: CRC, Have: CRC and which build)
)

// Problem is one reason a module would be refused.
type Problem struct {
	Symbol string `json:"symbol"`
	Kind   string `json:"kind"`
	Want   string `json:"want"`
	Have   string `json:"have"`
}

func (p Problem) String() string {
	switch p.Kind {
	case KindCRC:
		return fmt.Sprintf("%s: module wants CRC %s, kernel has %s", p.Symbol, p.Want, p.Have)
	case KindMissing:
		return fmt.Sprintf("%s: not exported by the kernel (module wants %s)", p.Symbol, p.Want)
	case KindNamespace:
		return fmt.Sprintf("%s: exported in namespace %s, which the module does not import", p.Symbol, p.Have)
	case KindGPLOnly:
		return fmt.Sprintf("%s: GPL-only export, module licence is %q", p.Symbol, p.Have)
	case KindVermagic:
		return fmt.Sprintf("vermagic flags %q differ from the kernel's %q", p.Want, p.Have)
	case KindStructModule:
		return fmt.Sprintf("struct module is %s bytes in the module, %s in the kernel", p.Want, p.Have)
	case KindUnversioned:
		return fmt.Sprintf("built without modversions for %s: loads only into that release, not %s", p.Want, p.Have)
	case KindGroup:
		return fmt.Sprintf("links only together with %s, which is incompatible", p.Want)
	case KindProvider:
		return fmt.Sprintf("%s: exported by %s, which is itself incompatible", p.Symbol, p.Want)
	case KindUnreadable:
		return fmt.Sprintf("%s cannot be read: %s", p.Want, p.Have)
	case KindBlocked:
		return fmt.Sprintf("its link %s is taken by %s, not created by kabiguard, left alone", p.Want, p.Have)
	case KindProviderCRC:
		return fmt.Sprintf("%s: module wants CRC %s, the provider has %s", p.Symbol, p.Want, p.Have)
	case KindNoProvider:
		return fmt.Sprintf("%s: exported by %s, which this kernel does not get (%s)", p.Symbol, p.Want, p.Have)
	}
	return fmt.Sprintf("%s: %s (want %s, have %s)", p.Symbol, p.Kind, p.Want, p.Have)
}

// Verdict is the answer for one module and one kernel.
type Verdict struct {
	Module      string    `json:"module"`
	Name        string    `json:"name"`
	Kernel      string    `json:"kernel"`
	Symvers     string    `json:"symvers"`
	Compatible  bool      `json:"compatible"`
	Unversioned bool      `json:"unversioned,omitempty"`
	Skipped     []string  `json:"skipped,omitempty"` // checks that could not run, and why
	Problems    []Problem `json:"problems"`
}

// FormatCRC prints a CRC the way modprobe --dump-modversions and Module.symvers do.
func FormatCRC(c uint32) string {
	const digits = "0123456789abcdef"
	b := [10]byte{'0', 'x'}
	for i := 9; i >= 2; i-- {
		b[i] = digits[c&0xf]
		c >>= 4
	}
	return string(b[:])
}

// provided is an export offered by a module supplied alongside the checked ones.
type provided struct {
	by  *module.Module
	exp module.Export
}

// SymbolsNeeded names every symbol Check may look up in a kernel's exports for mods: their
// symbol versions and undefined symbols (Target.Wanted).
func SymbolsNeeded(mods ...*module.Module) map[string]bool {
	need := map[string]bool{}
	for _, m := range mods {
		for _, s := range m.Modversions() {
			need[s.Name] = true
		}
		for _, u := range m.Undefined {
			need[u.Name] = true
		}
	}
	return need
}

// Check decides each of mods against k. Modules in mods and in with may export symbols to
// each other, as modules installed together do; a module in mods that turns out incompatible
// stops providing, and the check repeats until nothing changes, so a dependent of a refused
// module is refused too (kind "provider"). Modules in with are trusted to load.
func Check(k *Kernel, mods, with []*module.Module) []Verdict {
	offers := map[string]provided{}
	for _, m := range append(append([]*module.Module(nil), with...), mods...) {
		for _, e := range m.Exports {
			if _, dup := offers[e.Name]; !dup {
				offers[e.Name] = provided{m, e}
			}
		}
	}
	refused := map[*module.Module]bool{}
	verdicts := make([]Verdict, len(mods))
	recheck := make([]bool, len(mods))
	for i := range recheck {
		recheck[i] = true
	}
	// Fixpoint: a refused module refuses the modules that use its exports. After the first
	// round only those users are checked again.
	for {
		newly := map[*module.Module]bool{}
		for i, m := range mods {
			if !recheck[i] {
				continue
			}
			verdicts[i] = checkOne(k, m, offers, refused)
			if !verdicts[i].Compatible && !refused[m] {
				newly[m] = true
			}
		}
		if len(newly) == 0 {
			return verdicts
		}
		for m := range newly {
			refused[m] = true
		}
		for i, m := range mods {
			recheck[i] = usesAny(m, offers, newly)
		}
	}
}

// usesAny reports whether m needs a symbol that one of the modules in by offers.
func usesAny(m *module.Module, offers map[string]provided, by map[*module.Module]bool) bool {
	for _, s := range m.Modversions() {
		if o, ok := offers[s.Name]; ok && o.by != m && by[o.by] {
			return true
		}
	}
	for _, u := range m.Undefined {
		if o, ok := offers[u.Name]; ok && o.by != m && by[o.by] {
			return true
		}
	}
	return false
}

// checkOne decides m against k, with offers from the modules loaded alongside (refused ones
// offering nothing), in the loader's order: struct module size, vermagic, then the symbols.
func checkOne(k *Kernel, m *module.Module, offers map[string]provided, refused map[*module.Module]bool) Verdict {
	v := Verdict{Module: m.Path, Name: m.Name, Kernel: k.Name(), Symvers: k.SymversPath(), Problems: []Problem{}}
	if k.Reference == nil {
		v.Skipped = append(v.Skipped, "vermagic and struct module size: no in-tree module of the kernel to compare with")
	}
	v.Unversioned = !m.HasModversions()
	v.Problems = append(v.Problems, layoutProblems(k, m)...)
	sc := newSymbolCheck(k, m, offers, refused)
	sc.versioned()
	sc.unversioned()
	v.Problems = append(v.Problems, sc.sorted()...)
	v.Compatible = len(v.Problems) == 0
	return v
}

// layoutProblems compares what m was built for with the kernel's own reference module:
// sizeof(struct module), and the vermagic (its flags, or all of it for a module without
// symbol versions, which the loader then compares release included).
func layoutProblems(k *Kernel, m *module.Module) []Problem {
	var out []Problem
	ref := k.Reference
	if ref != nil && m.ThisModuleSize != 0 && ref.ThisModuleSize != 0 && m.ThisModuleSize != ref.ThisModuleSize {
		out = append(out, Problem{Kind: KindStructModule, Want: fmt.Sprint(m.ThisModuleSize), Have: fmt.Sprint(ref.ThisModuleSize)})
	}
	switch {
	case !m.HasModversions() && k.Release == "":
		out = append(out, Problem{Kind: KindUnversioned, Want: m.VermagicRelease(), Have: "(unknown release: only a symvers file was given)"})
	case !m.HasModversions() && m.VermagicRelease() != k.Release:
		out = append(out, Problem{Kind: KindUnversioned, Want: m.VermagicRelease(), Have: k.Release})
	case ref != nil && m.VermagicFlags() != ref.VermagicFlags():
		out = append(out, Problem{Kind: KindVermagic, Want: m.VermagicFlags(), Have: ref.VermagicFlags()})
	}
	return out
}

// symbolCheck checks the symbols one module needs, collecting its problems.
type symbolCheck struct {
	k        *Kernel
	m        *module.Module
	offers   map[string]provided
	refused  map[*module.Module]bool
	imports  map[string]bool // namespaces m imports
	gpl      bool            // m's licence is GPL-compatible
	versions map[string]bool // symbols m carries a version for
	problems []Problem
}

func newSymbolCheck(k *Kernel, m *module.Module, offers map[string]provided, refused map[*module.Module]bool) *symbolCheck {
	sc := &symbolCheck{k: k, m: m, offers: offers, refused: refused, imports: map[string]bool{},
		gpl: licenseIsGPLCompatible(m.License), versions: map[string]bool{}}
	for _, ns := range m.ImportNS {
		sc.imports[ns] = true
	}
	return sc
}

// export is a symbol as the loader finds it.
type export struct {
	crc     uint32
	hasCRC  bool
	ns      string
	gplOnly bool
}

// resolve looks a symbol up where the loader would find it: modules loaded alongside first
// (they are what the module was linked with), then the kernel. found is false when nobody
// exports it; p is set when its exporter is itself refused.
func (sc *symbolCheck) resolve(name string) (e export, found bool, p *Problem) {
	if o, ok := sc.offers[name]; ok && o.by != sc.m {
		if sc.refused[o.by] {
			return export{}, false, &Problem{Symbol: name, Kind: KindProvider, Want: o.by.Name, Have: "incompatible"}
		}
		return export{o.exp.CRC, o.exp.HasCRC, o.exp.Namespace, o.exp.GPLOnly}, true, nil
	}
	if ke, ok := sc.k.Symvers.Lookup(name); ok {
		return export{ke.CRC, true, ke.Namespace, ke.GPLOnly}, true, nil
	}
	return export{}, false, nil
}

func (sc *symbolCheck) add(p Problem) { sc.problems = append(sc.problems, p) }

// access checks a found export's namespace and GPL-only restriction.
func (sc *symbolCheck) access(name string, e export) {
	if e.ns != "" && !sc.imports[e.ns] {
		sc.add(Problem{Symbol: name, Kind: KindNamespace, Want: "", Have: e.ns})
	}
	if e.gplOnly && !sc.gpl {
		sc.add(Problem{Symbol: name, Kind: KindGPLOnly, Want: "GPL-compatible", Have: sc.m.License})
	}
}

// versioned checks every symbol version m carries: it exists (unless weak) with that CRC.
func (sc *symbolCheck) versioned() {
	weak := map[string]bool{}
	for _, u := range sc.m.Undefined {
		weak[u.Name] = u.Weak
	}
	for _, s := range sc.m.Modversions() {
		sc.versions[s.Name] = true
		e, found, p := sc.resolve(s.Name)
		switch {
		case p != nil:
			sc.add(*p)
		case !found:
			if !weak[s.Name] { // an absent weak symbol is allowed
				sc.add(Problem{Symbol: s.Name, Kind: KindMissing, Want: FormatCRC(s.CRC), Have: ""})
			}
		case e.hasCRC && e.crc != s.CRC:
			sc.add(Problem{Symbol: s.Name, Kind: KindCRC, Want: FormatCRC(s.CRC), Have: FormatCRC(e.crc)})
		default:
			sc.access(s.Name, e)
		}
	}
}

// unversioned checks the undefined symbols without a version entry (after versioned): the
// loader allows one ("no symbol version", warned once) but not a symbol nobody exports.
func (sc *symbolCheck) unversioned() {
	for _, u := range sc.m.Undefined {
		if sc.versions[u.Name] || u.Weak {
			continue
		}
		e, found, p := sc.resolve(u.Name)
		switch {
		case p != nil:
			sc.add(*p)
		case !found:
			sc.add(Problem{Symbol: u.Name, Kind: KindMissing, Want: "(unversioned)", Have: ""})
		default:
			sc.access(u.Name, e)
		}
	}
}

// sorted returns the problems found: module_layout is checked before any other symbol and,
// when it differs, is the real reason; the rest the kernel reports as a set, so sort by name
// for stable output.
func (sc *symbolCheck) sorted() []Problem {
	slices.SortStableFunc(sc.problems, func(a, b Problem) int {
		if (a.Symbol == "module_layout") != (b.Symbol == "module_layout") {
			if a.Symbol == "module_layout" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Symbol, b.Symbol)
	})
	return sc.problems
}

// licenseIsGPLCompatible mirrors the kernel's license_is_gpl_compatible().
func licenseIsGPLCompatible(l string) bool {
	switch l {
	case "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL":
		return true
	}
	return false
}
