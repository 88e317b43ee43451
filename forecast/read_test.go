package forecast

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// imageDeb is the real linux-image package of a Debian kernel ABI (in the test cache).
func imageDeb(t testing.TB, abi string) (string, *testkit.Kernel) {
	t.Helper()
	return testkit.ImageDeb(t, abi), testkit.FetchKernel(t, abi)
}

// The exports a forecast reads from a real Debian kernel package, which ships no symvers,
// equal the headers package's Module.symvers: every symbol, CRC, module, type and namespace.
// Read for every symbol the headers name, it must find each exporting module by its scan
// alone; read for the symbols a few real modules need, it parses a few modules and still
// finds each of those symbols as the headers have it.
func TestReadDerivesTheHeadersSymvers(t *testing.T) {
	deb, k := imageDeb(t, "6.1.0-55")
	want, err := symvers.Load(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	every := map[string]bool{}
	for name := range want.Exports {
		every[name] = true
	}
	few := neededBy(t, filepath.Join(k.ModulesDir(), "kernel", "drivers", "net", "ethernet"), 10)
	for _, c := range []struct {
		name   string
		wanted map[string]bool
	}{{"all modules", nil}, {"every symbol wanted", every}, {"symbols of 10 modules wanted", few}} {
		t.Run(c.name, func(t *testing.T) {
			got := readKernel(t, deb, k.Release, c.wanted)
			names := c.wanted
			if names == nil {
				names = every
				if len(got.Symvers.Exports) != len(want.Exports) {
					t.Errorf("%d exports read from the package, %d in %s", len(got.Symvers.Exports), len(want.Exports), k.Symvers)
				}
			}
			bad := 0
			for name := range names {
				w, wok := want.Exports[name]
				if g, ok := got.Symvers.Lookup(name); ok != wok || g != w {
					if bad++; bad <= 5 {
						t.Errorf("%s: read %+v (found %v), Module.symvers says %+v (found %v)", name, g, ok, w, wok)
					}
				}
			}
			if got.Reference == nil || got.Reference.Vermagic == "" {
				t.Error("no reference module (vermagic) was read")
			}
			if len(got.InTree) < 1000 || len(got.Builtin) == 0 {
				t.Errorf("%d in-tree and %d built-in modules read", len(got.InTree), len(got.Builtin))
			}
			if c.wanted != nil && len(c.wanted) < 1000 && got.parsed > len(got.InTree)/10 {
				t.Errorf("%d of %d in-tree modules parsed in full for %d wanted symbols", got.parsed, len(got.InTree), len(c.wanted))
			}
			t.Logf("%s: %d of %d in-tree modules parsed, %d symbols wanted; %s", got.Release, got.parsed, len(got.InTree), len(c.wanted), got.Provenance)
		})
	}
}

// A package that ships its kernel's symvers file (RHEL's kernel-core: lib/modules/K/symvers.gz)
// is judged by that file, and its in-tree modules are only scanned: here an unpacked
// directory of a real kernel with the headers' Module.symvers put there, gzipped.
func TestReadUsesThePackagesSymvers(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	dir := t.TempDir()
	testkit.HardlinkTree(t, k.ModulesDir(), filepath.Join(dir, "lib", "modules", k.Release))
	plain, err := os.ReadFile(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "lib", "modules", k.Release, "symvers.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	few := neededBy(t, filepath.Join(k.ModulesDir(), "kernel", "drivers", "net", "ethernet"), 10)
	got := readKernel(t, dir, k.Release, few)
	want, err := symvers.Load(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Provenance, "symvers lib/modules/"+k.Release+"/symvers.gz from ") {
		t.Errorf("provenance %q does not name the package's symvers file", got.Provenance)
	}
	if len(got.Symvers.Exports) != len(want.Exports) {
		t.Errorf("%d exports, the symvers file has %d", len(got.Symvers.Exports), len(want.Exports))
	}
	if got.Reference == nil || got.parsed > len(got.InTree)/10 {
		t.Errorf("reference %v; %d of %d in-tree modules parsed in full", got.Reference != nil, got.parsed, len(got.InTree))
	}
	t.Logf("%d of %d in-tree modules parsed; %s", got.parsed, len(got.InTree), got.Provenance)
}

func readKernel(t *testing.T, deb, release string, wanted map[string]bool) *Kernel {
	t.Helper()
	pkg, err := pkgfile.Open(deb)
	if err != nil {
		t.Fatal(err)
	}
	kernels, err := Read(pkg, wanted)
	if err != nil {
		t.Fatal(err)
	}
	if len(kernels) != 1 || kernels[0].Release != release {
		t.Fatalf("read %d kernels, want only %s", len(kernels), release)
	}
	return kernels[0]
}

// neededBy is kabi.SymbolsNeeded of the first n modules under dir.
func neededBy(t *testing.T, dir string, n int) map[string]bool {
	t.Helper()
	var mods []*module.Module
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") || len(mods) == n {
			return err
		}
		m, err := module.Open(p)
		mods = append(mods, m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return kabi.SymbolsNeeded(mods...)
}
