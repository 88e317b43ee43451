package exports

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// realABIs are the Debian kernels the tests fetch (testkit.FetchKernel): 6.1 ABIs with .ko
// trees and an xz bzImage payload, 6.12 with .ko.xz and zstd.
var realABIs = []string{"6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55", "6.12.107+deb12"}

// sameExports fails t unless derived equals the headers' Module.symvers at path as sets of
// (crc, symbol, module, export type, namespace), both parsed.
func sameExports(t *testing.T, what, path string, derived *symvers.Table) {
	t.Helper()
	want, err := symvers.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, derived); err != nil {
		t.Fatal(err)
	}
	got, err := symvers.ParseBytes(what, out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	missing, extra, differ := 0, 0, 0
	for name, w := range want.Exports {
		g, ok := got.Exports[name]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				t.Errorf("%s: %s %+v missing", what, name, w)
			}
		case g != w:
			if differ++; differ <= 5 {
				t.Errorf("%s: %s derived %+v, Module.symvers %+v", what, name, g, w)
			}
		}
	}
	for name, g := range got.Exports {
		if _, ok := want.Exports[name]; !ok {
			if extra++; extra <= 5 {
				t.Errorf("%s: %s %+v derived but not in Module.symvers", what, name, g)
			}
		}
	}
	lines := bytes.Count(out.Bytes(), []byte("\n"))
	if missing+extra+differ > 0 || lines != len(want.Exports) {
		t.Fatalf("%s: %d exports in Module.symvers, %d derived lines: %d missing, %d extra, %d differ",
			what, len(want.Exports), lines, missing, extra, differ)
	}
	t.Logf("%s: %d exports, all equal to Module.symvers", what, len(want.Exports))
}

// TestRealKernelsMatchModuleSymvers derives every export of each real kernel from its image
// package alone and compares them with its headers' Module.symvers.
func TestRealKernelsMatchModuleSymvers(t *testing.T) {
	for _, abi := range realABIs {
		t.Run(abi, func(t *testing.T) {
			k := testkit.FetchKernel(t, abi)
			root := testkit.ImageRoot(t, k)
			tab, prov, err := ForKernel(root, k.Release, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(prov)
			sameExports(t, k.Release, k.Symvers, tab)
		})
	}
}

// TestOtherArchitecturesMatchModuleSymvers does the same for the i386 (bzImage, ELF32) and
// arm64 (raw Image, scanned) images of one Debian ABI.
func TestOtherArchitecturesMatchModuleSymvers(t *testing.T) {
	for _, c := range []struct{ arch, flavour string }{{"i386", "686-pae"}, {"arm64", "arm64"}} {
		t.Run(c.arch, func(t *testing.T) {
			k := testkit.FetchArchKernel(t, "6.1.0-50", c.arch, c.flavour)
			root := testkit.ImageRoot(t, k)
			tab, prov, err := ForKernel(root, k.Release, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(prov)
			sameExports(t, k.Release, k.Symvers, tab)
		})
	}
}

// TestArm64ImageGz: the gzip'd form of an arm64 Image (Image.gz, what arm64 boot loaders are
// also given) yields the same tables as the raw Image Debian installs as vmlinuz.
func TestArm64ImageGz(t *testing.T) {
	k := testkit.FetchArchKernel(t, "6.1.0-50", "arm64", "arm64")
	raw, err := os.ReadFile(filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw)
	w.Close()
	tables := func(file []byte) ([]entry, string) {
		img, err := Decode(file)
		if err != nil {
			t.Fatal(err)
		}
		es, err := vmlinuxTables(img)
		if err != nil {
			t.Fatalf("%s: %v", img.Form, err)
		}
		return es, img.Form
	}
	want, _ := tables(raw)
	got, form := tables(gz.Bytes())
	if form != "arm64 Image.gz" || !slices.Equal(got, want) {
		t.Fatalf("%s: %d exports, the raw Image has %d (or they differ)", form, len(got), len(want))
	}
}
