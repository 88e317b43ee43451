package rpmdeps

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
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

// Requires returns the dependencies of mods (rules in the package comment). pkg is every
// module of the package mods belong to (mods included or not): what they export with a CRC
// satisfies a requirement. Each module's requirements are matched against the exports of its
// own vermagic release, so a package holding builds for several kernels comes out right.
func Requires(mods, pkg []*module.Module, exportsOf ExportsOf) ([]Dep, error) {
	own := map[module.Symbol]bool{}
	for _, m := range append(slices.Clip(pkg), mods...) {
		for _, e := range m.Exports {
			if e.HasCRC {
				own[module.Symbol{Name: e.Name, CRC: e.CRC}] = true
			}
		}
	}
	tables := map[string]*symvers.Table{}
	seen := map[Dep]bool{}
	var deps []Dep
	for _, m := range mods {
		t, err := tableFor(m, tables, exportsOf)
		if err != nil {
			return nil, err
		}
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
	}
	sortDeps(deps)
	return deps, nil
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

// PackageModules returns the module files a package being built installs beside file: every
// module below buildroot's lib/modules/RELEASE (or usr/lib/modules/RELEASE) that holds file.
// rpm (before 4.20) runs a generator once per file, so the package's other modules must be
// found this way for rule 2. The buildroot holds every subpackage's files, so a module of a
// sibling subpackage of the same release counts too; without a buildroot, or for a file
// outside one, the answer is file alone.
func PackageModules(file, buildroot string) ([]string, error) {
	dir := releaseDir(file, buildroot)
	if dir == "" {
		return []string{file}, nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && kmod.IsModule(p) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the package's modules: %w", err)
	}
	return out, nil
}

// releaseDir is buildroot/[usr/]lib/modules/RELEASE when file lies below it, else "".
func releaseDir(file, buildroot string) string {
	if buildroot == "" {
		return ""
	}
	rel, err := filepath.Rel(filepath.Clean(buildroot), filepath.Clean(file))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	n := 0 // 1 for usr/lib/modules
	if parts[0] == "usr" {
		n = 1
	}
	if len(parts) < n+4 || parts[n] != "lib" || parts[n+1] != "modules" {
		return ""
	}
	return filepath.Join(append([]string{buildroot}, parts[:n+3]...)...)
}
