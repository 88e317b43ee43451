package rpmdeps

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// Kind is the RPM namespace of a symbol dependency.
type Kind string

const (
	Kernel Kind = "kernel" // provided by the kernel's packages
	KSym   Kind = "ksym"   // provided by another kernel module package
)

// Dep is one symbol dependency: Kind(Symbol) = 0xCRC.
type Dep struct {
	Kind   Kind
	Symbol string
	CRC    uint32
}

// String is the dependency as rpm reads it from a generator.
func (d Dep) String() string { return fmt.Sprintf("%s(%s) = 0x%08x", d.Kind, d.Symbol, d.CRC) }

// ExportsOf returns the exports of the kernel of a release (uname -r form).
type ExportsOf func(release string) (*symvers.Table, error)

// ErrNoVermagic is wrapped when a module names no kernel release to judge it against.
var ErrNoVermagic = errors.New("no vermagic: cannot tell which kernel it was built for")

// Requires returns the dependencies of mods, the modules of one package (rules in the package
// comment), merged: what their modules export with a CRC satisfies a requirement. Each
// module's requirements are matched against the exports of its own vermagic release, so a
// package holding builds for several kernels comes out right.
func Requires(mods []*module.Module, exportsOf ExportsOf) ([]Dep, error) {
	each, err := RequiresEach(mods, exportsOf)
	if err != nil {
		return nil, err
	}
	return Merge(each), nil
}

// Merge returns the dependencies of several files as one package's: sorted and unique.
func Merge(each [][]Dep) []Dep {
	var deps []Dep
	for _, ds := range each {
		deps = append(deps, ds...)
	}
	sortDeps(deps)
	return slices.Compact(deps)
}

// RequiresEach is Requires module by module, in the order of mods, for rpm's multifile
// protocol (each file's dependencies under its name): every module of mods still counts as
// the package's own for rule 2. Each kernel's exports are loaded once.
func RequiresEach(mods []*module.Module, exportsOf ExportsOf) ([][]Dep, error) {
	own := map[module.Symbol]bool{}
	for _, m := range mods {
		for _, e := range m.Exports {
			if e.HasCRC {
				own[module.Symbol{Name: e.Name, CRC: e.CRC}] = true
			}
		}
	}
	tables := map[string]*symvers.Table{}
	each := make([][]Dep, 0, len(mods))
	for _, m := range mods {
		t, err := tableFor(m, tables, exportsOf)
		if err != nil {
			return nil, err
		}
		seen := map[Dep]bool{}
		var deps []Dep
		for _, s := range m.Modversions() {
			if own[s] {
				continue
			}
			d := Dep{Kind: KSym, Symbol: s.Name, CRC: s.CRC}
			if e, ok := t.Lookup(s.Name); ok && e.CRC == s.CRC {
				d.Kind = Kernel
			}
			if !seen[d] {
				seen[d] = true
				deps = append(deps, d)
			}
		}
		sortDeps(deps)
		each = append(each, deps)
	}
	return each, nil
}

// tableFor returns the exports of m's kernel, loading each release once.
func tableFor(m *module.Module, tables map[string]*symvers.Table, exportsOf ExportsOf) (*symvers.Table, error) {
	release := m.VermagicRelease()
	if release == "" {
		return nil, fmt.Errorf("%s: %w", m.Path, ErrNoVermagic)
	}
	if t, ok := tables[release]; ok {
		return t, nil
	}
	t, err := exportsOf(release)
	if err != nil {
		return nil, fmt.Errorf("%s was built for kernel %s: %w", m.Path, release, err)
	}
	tables[release] = t
	return t, nil
}

// Provides returns kernel(SYMBOL) = 0xCRC for every export in t. The table must be whole
// (not one loaded for wanted symbols only).
func Provides(t *symvers.Table) []Dep {
	deps := make([]Dep, 0, len(t.Exports))
	for name, e := range t.Exports {
		deps = append(deps, Dep{Kind: Kernel, Symbol: name, CRC: e.CRC})
	}
	sortDeps(deps)
	return deps
}

// ModuleProvides returns ksym(SYMBOL) = 0xCRC for every symbol mods export with a CRC: what
// a kmod package provides for another package's ksym() requirements (find-provides.ksyms
// gives ksym() to modules outside the kernel's own kernel/ directory, the only ones the file
// attribute hands to kabiguard). An export without a CRC (a module built without
// modversions) can satisfy no versioned requirement and is left out.
func ModuleProvides(mods []*module.Module) []Dep {
	seen := map[Dep]bool{}
	var deps []Dep
	for _, m := range mods {
		for _, e := range m.Exports {
			d := Dep{Kind: KSym, Symbol: e.Name, CRC: e.CRC}
			if e.HasCRC && !seen[d] {
				seen[d] = true
				deps = append(deps, d)
			}
		}
	}
	sortDeps(deps)
	return deps
}

// sortDeps orders as LC_ALL=C sort orders the printed lines: a symbol's characters all sort
// after ')', so comparing kind, symbol, then CRC gives the same order.
func sortDeps(deps []Dep) {
	slices.SortFunc(deps, func(a, b Dep) int {
		return strings.Compare(a.String(), b.String())
	})
}

// MultifileProtocol tells whether rpm of this version (%{rpmversion}; empty before rpm 4.19
// defined it) runs a generator whose file attribute declares %__NAME_protocol multifile
// that way: once per package, all its matching files on stdin, expecting each file's
// dependencies after a line ";FILE". rpm 4.20 added the protocol; older rpm ignores the
// macro and runs the generator once per file, expecting bare dependency lines.
func MultifileProtocol(rpmVersion string) bool {
	major, rest, _ := strings.Cut(rpmVersion, ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > 4 || ma == 4 && mi >= 20
}
