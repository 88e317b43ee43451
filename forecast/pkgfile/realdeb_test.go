package pkgfile

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// realImageDeb is the linux-image package of a real Debian kernel (downloaded once into the
// test cache).
func realImageDeb(t *testing.T, abi string) string {
	t.Helper()
	testkit.FetchKernel(t, abi)
	debs, _ := filepath.Glob(filepath.Join(testkit.CacheDir(), "debs", "linux-image-"+abi+"-amd64-unsigned_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one linux-image-%s-amd64-unsigned .deb in the cache, found %v", abi, debs)
	}
	return debs[0]
}

// A real kernel package reads as the tree the real dpkg-deb unpacks from it: every file, its
// mode, size and content, every symlink.
func TestRealKernelDeb(t *testing.T) {
	for _, abi := range []string{"6.1.0-55"} {
		t.Run(abi, func(t *testing.T) {
			deb := realImageDeb(t, abi)
			pkg := mustOpen(t, deb)
			if want := "linux-image-" + abi + "-amd64-unsigned"; pkg.Name != want {
				t.Errorf("package name %q, want %q", pkg.Name, want)
			}
			out := t.TempDir()
			dpkgDeb(t, "-x", deb, out)
			got := collect(t, pkg)
			compareTrees(t, got, collect(t, mustOpen(t, out)))
			if len(got) < 1000 {
				t.Errorf("only %d entries in a kernel package", len(got))
			}
		})
	}
}

// BenchmarkReadKernelDeb reads every file of a real kernel package through, against the real
// dpkg-deb -x of the same package (make bench prints the ratio; a forecast reads the package
// this way instead of unpacking it).
func BenchmarkReadKernelDeb(b *testing.B) {
	testkit.FetchKernel(b, "6.1.0-55")
	debs, _ := filepath.Glob(filepath.Join(testkit.CacheDir(), "debs", "linux-image-6.1.0-55-amd64-unsigned_*.deb"))
	if len(debs) != 1 {
		b.Fatalf("want one .deb, found %v", debs)
	}
	b.Run("kabiguard", func(b *testing.B) {
		for b.Loop() {
			pkg := mustOpen(b, debs[0])
			if err := pkg.Walk(func(f File, body io.Reader) error { _, err := io.Copy(io.Discard, body); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dpkg-deb", func(b *testing.B) {
		for b.Loop() {
			out := b.TempDir()
			dpkgDeb(b, "-x", debs[0], out)
			b.StopTimer()
			os.RemoveAll(out)
			b.StartTimer()
		}
	})
}
