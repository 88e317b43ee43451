package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// Format is the manifest format this package writes and reads.
const Format = 1

// ErrFormat means a file is not a manifest of a format this kabiguard reads.
var ErrFormat = errors.New("not a kabiguard manifest of format 1")

// Manifest is one host's facts for a forecast.
type Manifest struct {
	Format int    `json:"format"`
	Host   string `json:"host"` // the host's name (its hostname, or --host)
	Root   string `json:"root"` // the root it was read from; paths below are relative to it, as the host sees them
	Config Config `json:"config"`
	// Kernels are the release directories under lib/modules, oldest first: installed
	// kernels and directories left with only external builds, which still offer them.
	Kernels []Kernel `json:"kernels"`
	// Headers lists the releases whose headers are installed (usr/src/linux-headers-R): DKMS
	// builds its automatic modules for such a kernel when it is installed.
	Headers []string `json:"headers,omitempty"`
	// DKMS maps each module DKMS builds automatically to its DKMS "name/version".
	DKMS map[string]string `json:"dkms,omitempty"`

	File string `json:"-"` // the file it was read from (Load)
}

// Config is the part of the host's configuration a forecast reads.
type Config struct {
	Required          []config.Required `json:"required"`
	NeverWeak         []string          `json:"never_weak,omitempty"`
	ShareBuilds       string            `json:"share_builds"`
	OnMissingRequired string            `json:"on_missing_required"`
}

// Kernel is one lib/modules/RELEASE directory of the host.
type Kernel struct {
	Release   string `json:"release"`
	Dir       string `json:"dir"`
	Installed bool   `json:"installed"` // it holds a kernel, not only external builds
	// Exports says where the host reads this kernel's exports from (a symvers file, or the
	// image they are derived from); for the reader: a forecast of another kernel needs none.
	Exports string   `json:"exports,omitempty"`
	Builds  []Build  `json:"builds,omitempty"`
	Links   []Link   `json:"links,omitempty"`  // symlinks in weak-updates/
	Others  []string `json:"others,omitempty"` // regular files in weak-updates/, never replaced
}

// Build is one external module file (extra/, updates/, ...).
type Build struct {
	Path   string  `json:"path"`
	Sub    string  `json:"sub"` // below its top directory: where its weak link goes
	Name   string  `json:"name"`
	Module *Module `json:"module,omitempty"`
	Error  string  `json:"error,omitempty"` // why the file cannot be read (then no module)
}

// Link is a symlink in a kernel's weak-updates/. One kabiguard did not make (the admin's)
// carries the module it points at, which serves the builds that use it.
type Link struct {
	Path     string  `json:"path"`
	Sub      string  `json:"sub"`
	Target   string  `json:"target"`
	Resolved string  `json:"resolved,omitempty"`
	Dangling bool    `json:"dangling,omitempty"`
	Escapes  bool    `json:"escapes,omitempty"`
	Admin    bool    `json:"admin,omitempty"`
	Module   *Module `json:"module,omitempty"` // Admin: the module behind it
	Error    string  `json:"error,omitempty"`  // Admin: why it cannot be read
}

// Module is what the kernel's loader checks of a module (kabi.Check), and its dependencies.
type Module struct {
	Name     string   `json:"name"`
	Vermagic string   `json:"vermagic"`
	License  string   `json:"license,omitempty"`
	Depends  []string `json:"depends,omitempty"` // modinfo's depends: the modules it needs loaded first
	ImportNS []string `json:"import_ns,omitempty"`
	// Versions is __versions; ExtVersions the extended table (null: the module has none).
	Versions    Symbols         `json:"versions"`
	ExtVersions Symbols         `json:"ext_versions"`
	Exports     []module.Export `json:"exports,omitempty"`
	// The symbols it needs (undefined in it) are those of its version tables but Defined,
	// and Unversioned; Weak are those that may stay unresolved. Said so, a name is written
	// once, not in both a table and a list.
	Unversioned    Names  `json:"unversioned,omitempty"`
	Defined        Names  `json:"defined,omitempty"` // in a version table, yet not undefined (module_layout)
	Weak           Names  `json:"weak,omitempty"`
	ThisModuleSize uint64 `json:"this_module_size"`

	built *built // shared by the copies of one decoded entry (UnmarshalJSON)
}

// built keeps the modules rebuilt from one manifest entry, by path: the same build on a
// thousand hosts is rebuilt once, and read only afterwards.
type built struct {
	sync.Mutex
	at map[string]*module.Module
}

// fromModule keeps what a forecast needs of m.
func fromModule(m *module.Module) *Module {
	out := &Module{Name: m.Name, Vermagic: m.Vermagic, License: m.License, Depends: m.Depends, ImportNS: m.ImportNS,
		Versions: m.Versions, ExtVersions: m.ExtVersions, Exports: m.Exports, ThisModuleSize: m.ThisModuleSize}
	if out.Versions == nil {
		out.Versions = Symbols{}
	}
	versioned := versionNames(out)
	undefined := make(map[string]bool, len(m.Undefined))
	for _, u := range m.Undefined {
		undefined[u.Name] = true
		if !versioned[u.Name] {
			out.Unversioned = append(out.Unversioned, u.Name)
		}
		if u.Weak {
			out.Weak = append(out.Weak, u.Name)
		}
	}
	for _, t := range []Symbols{out.Versions, out.ExtVersions} {
		for _, s := range t {
			if !undefined[s.Name] && !slices.Contains(out.Defined, s.Name) {
				out.Defined = append(out.Defined, s.Name)
			}
		}
	}
	return out
}

// versionNames is the set of names in m's version tables.
func versionNames(m *Module) map[string]bool {
	names := make(map[string]bool, len(m.Versions)+len(m.ExtVersions))
	for _, t := range []Symbols{m.Versions, m.ExtVersions} {
		for _, s := range t {
			names[s.Name] = true
		}
	}
	return names
}

// module is the module found at path, rebuilt once per decoded entry and path.
func (m *Module) module(path string) *module.Module {
	if m.built == nil {
		return m.rebuild(path)
	}
	m.built.Lock()
	defer m.built.Unlock()
	if mod := m.built.at[path]; mod != nil {
		return mod
	}
	mod := m.rebuild(path)
	m.built.at[path] = mod
	return mod
}

// rebuild makes the module found at path of m.
func (m *Module) rebuild(path string) *module.Module {
	out := &module.Module{Path: path, Name: m.Name, Vermagic: m.Vermagic, License: m.License, Depends: m.Depends,
		ImportNS: m.ImportNS, Versions: m.Versions, ExtVersions: m.ExtVersions, Exports: m.Exports, ThisModuleSize: m.ThisModuleSize}
	if len(out.Versions) == 0 {
		out.Versions = nil
	}
	names := versionNames(m)
	for _, n := range m.Defined {
		delete(names, n)
	}
	for _, n := range m.Unversioned {
		names[n] = true
	}
	if len(names) == 0 {
		return out
	}
	weak := make(map[string]bool, len(m.Weak))
	for _, w := range m.Weak {
		weak[w] = true
	}
	out.Undefined = make([]module.Undefined, 0, len(names))
	for n := range names {
		out.Undefined = append(out.Undefined, module.Undefined{Name: n, Weak: weak[n]})
	}
	// module.Parse's order.
	sort.Slice(out.Undefined, func(i, j int) bool { return out.Undefined[i].Name < out.Undefined[j].Name })
	return out
}

// Parse reads a manifest from JSON; name is said in errors.
func Parse(name string, data []byte) (*Manifest, error) {
	m := &Manifest{}
	err := json.Unmarshal(data, m)
	if m.Format != Format {
		// Said first: a manifest of another format may well not decode as this one.
		return nil, fmt.Errorf("%s: %w (its format is %d)", name, ErrFormat, m.Format)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.Host == "" {
		return nil, fmt.Errorf("%s: %w: no host name", name, ErrFormat)
	}
	return m, nil
}

// Load reads the manifest file at path ("-" or a pipe such as <(ssh host kabiguard manifest)
// work too).
func Load(path string) (*Manifest, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	m, err := Parse(path, data)
	if m != nil {
		m.File = path
	}
	return m, err
}

// seen keeps each distinct module entry decoded once per process: across a fleet the same
// build (one DKMS or kmod package's file for one kernel) appears on many hosts, and its
// symbol tables are most of a manifest's bytes. Entries are keyed by their exact JSON.
var seen struct {
	sync.Mutex
	modules map[string]*Module
}

// UnmarshalJSON decodes a module entry, or reuses the identical one decoded before. The
// slices are then shared: modules are only read once decoded.
func (m *Module) UnmarshalJSON(data []byte) error {
	seen.Lock()
	known := seen.modules[string(data)]
	seen.Unlock()
	if known != nil {
		*m = *known
		return nil
	}
	type plain Module // without this method
	if err := json.Unmarshal(data, (*plain)(m)); err != nil {
		return err
	}
	m.built = &built{at: map[string]*module.Module{}}
	decoded := *m
	seen.Lock()
	if seen.modules == nil {
		seen.modules = map[string]*Module{}
	}
	seen.modules[string(data)] = &decoded
	seen.Unlock()
	return nil
}
