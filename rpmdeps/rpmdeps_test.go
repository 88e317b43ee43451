package rpmdeps

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

func mod(release string, versions map[string]uint32, exports ...module.Export) *module.Module {
	m := &module.Module{Path: "/x/" + release + ".ko", Vermagic: release + " SMP mod_unload modversions ", Exports: exports}
	for name, crc := range versions {
		m.Versions = append(m.Versions, module.Symbol{Name: name, CRC: crc})
	}
	return m
}

func strs(deps []Dep) []string {
	var out []string
	for _, d := range deps {
		out = append(out, d.String())
	}
	return out
}

// TestRequiresRules: the four rules of the package comment, one case each.
func TestRequiresRules(t *testing.T) {
	kernels := map[string]*symvers.Table{
		"1.0-a": symvers.NewTable("a", map[string]symvers.Export{"module_layout": {CRC: 0x11}, "printk": {CRC: 0x22}, "other": {CRC: 0x33}}, nil),
		"2.0-b": symvers.NewTable("b", map[string]symvers.Export{"printk": {CRC: 0x99}}, nil),
	}
	exportsOf := func(r string) (*symvers.Table, error) {
		if t, ok := kernels[r]; ok {
			return t, nil
		}
		return nil, errors.New("no such kernel")
	}
	user := mod("1.0-a", map[string]uint32{"module_layout": 0x11, "printk": 0x22, "other": 0x34, "prov_fn": 0x44, "prov_old": 0x55})
	prov := mod("1.0-a", map[string]uint32{"printk": 0x22}, module.Export{Name: "prov_fn", CRC: 0x44, HasCRC: true}, module.Export{Name: "prov_old", CRC: 0x56, HasCRC: true})
	other := mod("2.0-b", map[string]uint32{"printk": 0x99})

	got, err := Requires([]*module.Module{user, prov, other}, nil, exportsOf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel(module_layout) = 0x00000011", // no special case
		"kernel(printk) = 0x00000022",        // once, though two modules need it
		"kernel(printk) = 0x00000099",        // the other module's own kernel
		"ksym(other) = 0x00000034",           // the kernel has it with another CRC
		"ksym(prov_old) = 0x00000055",        // the package exports it with another CRC
	}
	if !slices.Equal(strs(got), want) {
		t.Errorf("Requires:\n got %q\nwant %q", strs(got), want)
	}
	// The package's other modules count, though not asked about.
	got, _ = Requires([]*module.Module{user}, []*module.Module{prov}, exportsOf)
	if slices.Contains(strs(got), "ksym(prov_fn) = 0x00000044") {
		t.Errorf("prov_fn of a package module still required: %q", strs(got))
	}
	if _, err := Requires([]*module.Module{{Path: "/x/none.ko"}}, nil, exportsOf); !errors.Is(err, ErrNoVermagic) {
		t.Errorf("no vermagic: %v", err)
	}
	if _, err := Requires([]*module.Module{mod("3.0-c", nil)}, nil, exportsOf); err == nil {
		t.Error("unknown kernel: no error")
	}
}

// TestPackageModules: below a buildroot, every module of the same release directory, /usr/lib
// or /lib; outside one, the file alone.
func TestPackageModules(t *testing.T) {
	br := t.TempDir()
	files := []string{
		"lib/modules/1.0-a/extra/x/a.ko", "lib/modules/1.0-a/extra/y/b.ko.xz", "lib/modules/1.0-a/extra/notes.txt",
		"lib/modules/2.0-b/extra/c.ko", "usr/lib/modules/3.0-c/updates/d.ko.zst",
	}
	for _, f := range files {
		p := filepath.Join(br, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string][]string{
		files[0]: {files[0], files[1]},
		files[4]: {files[4]},
	} {
		got, err := PackageModules(filepath.Join(br, file), br)
		if err != nil {
			t.Fatal(err)
		}
		var rel []string
		for _, p := range got {
			r, _ := filepath.Rel(br, p)
			rel = append(rel, r)
		}
		if !slices.Equal(rel, want) {
			t.Errorf("%s: %q, want %q", file, rel, want)
		}
	}
	outside := filepath.Join(t.TempDir(), "lib/modules/1.0-a/extra/a.ko")
	for _, root := range []string{"", br} {
		if got, _ := PackageModules(outside, root); !slices.Equal(got, []string{outside}) {
			t.Errorf("buildroot %q: %q, want the file alone", root, got)
		}
	}
}

// TestModuleProvides: ksym() for each export with a CRC, once, sorted; none without one.
func TestModuleProvides(t *testing.T) {
	a := mod("1.0-a", nil, module.Export{Name: "b_fn", CRC: 2, HasCRC: true}, module.Export{Name: "a_fn", CRC: 1, HasCRC: true}, module.Export{Name: "nocrc"})
	b := mod("1.0-a", nil, module.Export{Name: "a_fn", CRC: 1, HasCRC: true})
	want := []string{"ksym(a_fn) = 0x00000001", "ksym(b_fn) = 0x00000002"}
	if got := strs(ModuleProvides([]*module.Module{a, b})); !slices.Equal(got, want) {
		t.Errorf("ModuleProvides: %q, want %q", got, want)
	}
}
