package kabi

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// These tests pin each loader rule on hand-made inputs; agreement with the real depmod and
// real kernels is tested in cmd/kabiguard on Debian kernels.

const flags = "SMP preempt mod_unload modversions"

func target(exports map[string]symvers.Export) *Kernel {
	return &Kernel{
		Release:   "6.1.0-54-amd64",
		Symvers:   &symvers.Table{Path: "Module.symvers", Exports: exports},
		Reference: &module.Module{Vermagic: "6.1.0-54-amd64 " + flags + " ", ThisModuleSize: 896},
	}
}

var kernelExports = map[string]symvers.Export{
	"module_layout": {CRC: 0xbce1a965, Module: "vmlinux"},
	"kfree":         {CRC: 0x037a0cba, Module: "vmlinux"},
	"misc_register": {CRC: 0xf3f9e5eb, Module: "vmlinux"},
	"gpl_only_fn":   {CRC: 0x11111111, Module: "vmlinux", GPLOnly: true},
	"usb_stor_x":    {CRC: 0x22222222, Module: "drivers/usb/storage/usb-storage", Namespace: "USB_STORAGE"},
}

func mod(name string, versions map[string]uint32) *module.Module {
	m := &module.Module{Path: "/x/" + name + ".ko", Name: name, License: "GPL", Vermagic: "6.1.0-50-amd64 " + flags + " ", ThisModuleSize: 896}
	for n, c := range versions {
		m.Versions = append(m.Versions, module.Symbol{Name: n, CRC: c})
		m.Undefined = append(m.Undefined, module.Undefined{Name: n})
	}
	return m
}

func kinds(v Verdict) []string {
	var out []string
	for _, p := range v.Problems {
		out = append(out, p.Kind+":"+p.Symbol)
	}
	return out
}

func TestCheckRules(t *testing.T) {
	k := target(kernelExports)
	cases := []struct {
		name  string
		mod   func() *module.Module
		kinds []string
	}{
		{"all CRCs match", func() *module.Module {
			return mod("a", map[string]uint32{"module_layout": 0xbce1a965, "kfree": 0x037a0cba})
		}, nil},
		{"one CRC differs", func() *module.Module {
			return mod("a", map[string]uint32{"module_layout": 0xbce1a965, "misc_register": 0x1e1dfe5f})
		}, []string{"crc:misc_register"}},
		{"module_layout is reported first", func() *module.Module {
			return mod("a", map[string]uint32{"module_layout": 0x9060323f, "misc_register": 0x1e1dfe5f, "aaa_first_by_name": 1})
		}, []string{"crc:module_layout", "missing:aaa_first_by_name", "crc:misc_register"}},
		{"versioned symbol not exported", func() *module.Module {
			return mod("a", map[string]uint32{"module_layout": 0xbce1a965, "gone": 5})
		}, []string{"missing:gone"}},
		{"absent weak symbol is allowed", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965, "maybe": 5})
			m.Undefined = []module.Undefined{{Name: "maybe", Weak: true}}
			return m
		}, nil},
		{"present weak symbol must match", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965, "kfree": 5})
			m.Undefined = []module.Undefined{{Name: "kfree", Weak: true}}
			return m
		}, []string{"crc:kfree"}},
		{"unversioned undefined symbol must exist", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965})
			m.Undefined = append(m.Undefined, module.Undefined{Name: "kfree"}, module.Undefined{Name: "nowhere"})
			return m
		}, []string{"missing:nowhere"}},
		{"namespace not imported", func() *module.Module {
			return mod("a", map[string]uint32{"module_layout": 0xbce1a965, "usb_stor_x": 0x22222222})
		}, []string{"namespace:usb_stor_x"}},
		{"namespace imported", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965, "usb_stor_x": 0x22222222})
			m.ImportNS = []string{"USB_STORAGE"}
			return m
		}, nil},
		{"GPL-only symbol, proprietary module", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965, "gpl_only_fn": 0x11111111})
			m.License = "Proprietary"
			return m
		}, []string{"gpl-only:gpl_only_fn"}},
		{"vermagic flags differ", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965})
			m.Vermagic = "6.1.0-50-amd64 SMP mod_unload modversions "
			return m
		}, []string{"vermagic:"}},
		{"struct module size differs", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xbce1a965})
			m.ThisModuleSize = 1280
			return m
		}, []string{"struct-module:"}},
		{"unversioned module, other release", func() *module.Module {
			m := mod("a", nil)
			m.Undefined = []module.Undefined{{Name: "kfree"}}
			return m
		}, []string{"unversioned:"}},
		{"unversioned module, its own release", func() *module.Module {
			m := mod("a", nil)
			m.Vermagic = "6.1.0-54-amd64 " + flags
			m.Undefined = []module.Undefined{{Name: "kfree"}}
			return m
		}, nil},
		{"extended table replaces __versions", func() *module.Module {
			m := mod("a", map[string]uint32{"module_layout": 0xdeadbeef})
			m.ExtVersions = []module.Symbol{{Name: "module_layout", CRC: 0xbce1a965}}
			return m
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Check(k, []*module.Module{c.mod()}, nil)[0]
			if got := kinds(v); !reflect.DeepEqual(got, c.kinds) {
				t.Fatalf("problems = %v, want %v", got, c.kinds)
			}
			if v.Compatible != (len(c.kinds) == 0) {
				t.Fatalf("compatible = %v with problems %v", v.Compatible, v.Problems)
			}
		})
	}
}

func TestCheckCRCProblemCarriesBothValues(t *testing.T) {
	v := Check(target(kernelExports), []*module.Module{mod("a", map[string]uint32{"module_layout": 0xbce1a965, "misc_register": 0x1e1dfe5f})}, nil)[0]
	want := Problem{Symbol: "misc_register", Kind: KindCRC, Want: "0x1e1dfe5f", Have: "0xf3f9e5eb"}
	if len(v.Problems) != 1 || v.Problems[0] != want {
		t.Fatalf("problems = %+v", v.Problems)
	}
	if s := v.Problems[0].String(); !strings.Contains(s, "0x1e1dfe5f") || !strings.Contains(s, "0xf3f9e5eb") {
		t.Fatalf("message %q lacks the CRCs", s)
	}
}

// A provider and its user: the user resolves the provider's export, and when the provider is
// refused the user is refused too (the kernel would fail with "Unknown symbol").
func TestCheckCompanionsAndFixpoint(t *testing.T) {
	k := target(kernelExports)
	prov := mod("prov", map[string]uint32{"module_layout": 0xbce1a965})
	prov.Exports = []module.Export{{Name: "prov_hello", CRC: 0x33333333, HasCRC: true}}
	user := mod("user", map[string]uint32{"module_layout": 0xbce1a965, "prov_hello": 0x33333333})

	vs := Check(k, []*module.Module{prov, user}, nil)
	if !vs[0].Compatible || !vs[1].Compatible {
		t.Fatalf("pair: %+v", vs)
	}
	if v := Check(k, []*module.Module{user}, nil)[0]; !reflect.DeepEqual(kinds(v), []string{"missing:prov_hello"}) {
		t.Fatalf("user alone: %v", kinds(v))
	}
	if v := Check(k, []*module.Module{user}, []*module.Module{prov})[0]; !v.Compatible {
		t.Fatalf("user --with prov: %v", kinds(v))
	}
	// Companion CRC mismatch.
	user2 := mod("user", map[string]uint32{"module_layout": 0xbce1a965, "prov_hello": 0x44444444})
	if v := Check(k, []*module.Module{prov, user2}, nil)[1]; !reflect.DeepEqual(kinds(v), []string{"crc:prov_hello"}) {
		t.Fatalf("companion CRC: %v", kinds(v))
	}
	// The provider breaks: the user follows, naming the provider.
	prov.Versions[0].CRC = 0x9060323f
	vs = Check(k, []*module.Module{user, prov}, nil)
	if vs[1].Compatible || !reflect.DeepEqual(kinds(vs[0]), []string{"provider:prov_hello"}) || vs[0].Problems[0].Want != "prov" {
		t.Fatalf("fixpoint: %+v", vs)
	}
}

func TestCheckWithoutReferenceSaysSo(t *testing.T) {
	k := target(kernelExports)
	k.Reference = nil
	m := mod("a", map[string]uint32{"module_layout": 0xbce1a965})
	m.ThisModuleSize = 1 // cannot be compared without a reference
	v := Check(k, []*module.Module{m}, nil)[0]
	if !v.Compatible || len(v.Skipped) == 0 {
		t.Fatalf("verdict %+v", v)
	}
}
