package forecast

import (
	"testing"

	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// imageDeb is the real linux-image package of a Debian kernel ABI (in the test cache).
func imageDeb(t testing.TB, abi string) (string, *testkit.Kernel) {
	t.Helper()
	return testkit.ImageDeb(t, abi), testkit.FetchKernel(t, abi)
}

// The exports a forecast reads from a real Debian kernel package, which ships no symvers,
// equal the headers package's Module.symvers: every symbol, CRC, module, type and namespace.
func TestReadDerivesTheHeadersSymvers(t *testing.T) {
	deb, k := imageDeb(t, "6.1.0-55")
	pkg, err := pkgfile.Open(deb)
	if err != nil {
		t.Fatal(err)
	}
	kernels, err := Read(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if len(kernels) != 1 || kernels[0].Release != k.Release {
		t.Fatalf("read %d kernels, want only %s", len(kernels), k.Release)
	}
	got := kernels[0]
	want, err := symvers.Load(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Symvers.Exports) != len(want.Exports) {
		t.Errorf("%d exports read from the package, %d in %s", len(got.Symvers.Exports), len(want.Exports), k.Symvers)
	}
	bad := 0
	for name, w := range want.Exports {
		if g, ok := got.Symvers.Exports[name]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("%s: read %+v (found %v), Module.symvers says %+v", name, g, ok, w)
			}
		}
	}
	if got.Reference == nil || got.Reference.Vermagic == "" {
		t.Error("no reference module (vermagic) was read")
	}
	if len(got.InTree) < 1000 || len(got.Builtin) == 0 {
		t.Errorf("%d in-tree and %d built-in modules read", len(got.InTree), len(got.Builtin))
	}
	t.Logf("%s: %s", got.Release, got.Provenance)
}
