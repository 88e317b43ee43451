package rpmdeps

import (
	"errors"
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

	got, err := Requires([]*module.Module{user, prov, other}, exportsOf)
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
	// Only the modules named count as the package: user alone needs prov_fn from elsewhere.
	got, _ = Requires([]*module.Module{user}, exportsOf)
	if !slices.Contains(strs(got), "ksym(prov_fn) = 0x00000044") {
		t.Errorf("user alone: prov_fn not required: %q", strs(got))
	}
	// Module by module, each module's own lines, prov's export still the package's.
	each, err := RequiresEach([]*module.Module{user, prov}, exportsOf)
	if err != nil {
		t.Fatal(err)
	}
	if len(each) != 2 || !slices.Equal(strs(each[1]), []string{"kernel(printk) = 0x00000022"}) ||
		slices.Contains(strs(each[0]), "ksym(prov_fn) = 0x00000044") || !slices.Contains(strs(each[0]), "ksym(prov_old) = 0x00000055") {
		t.Errorf("RequiresEach: %q", each)
	}
	if !slices.Equal(strs(Merge(each)), strs(slices.DeleteFunc(slices.Clone(got), func(d Dep) bool { return d.Symbol == "prov_fn" }))) {
		t.Errorf("Merge %q is not user's requirements without prov_fn %q", strs(Merge(each)), strs(got))
	}
	if _, err := Requires([]*module.Module{{Path: "/x/none.ko"}}, exportsOf); !errors.Is(err, ErrNoVermagic) {
		t.Errorf("no vermagic: %v", err)
	}
	if _, err := Requires([]*module.Module{mod("3.0-c", nil)}, exportsOf); err == nil {
		t.Error("unknown kernel: no error")
	}
}

// TestMultifileProtocol: rpm 4.20 added the protocol; older rpm, or none said, runs one file
// at a time.
func TestMultifileProtocol(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "4.14.3": false, "4.18.0": false, "4.19.1.1": false, "4.20.0": true, "4.20.1": true, "6.0.0": true, "junk": false, "4": false,
	} {
		if got := MultifileProtocol(v); got != want {
			t.Errorf("MultifileProtocol(%q) = %v, want %v", v, got, want)
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
