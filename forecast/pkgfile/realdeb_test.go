package pkgfile

import (
	"io"
	"os"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// A real kernel package reads as the tree the real dpkg-deb unpacks from it: every file, its
// mode, size and content, every symlink.
func TestRealKernelDeb(t *testing.T) {
	for _, abi := range []string{"6.1.0-55"} {
		t.Run(abi, func(t *testing.T) {
			deb := testkit.ImageDeb(t, abi)
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
	deb := testkit.ImageDeb(b, "6.1.0-55")
	b.Run("kabiguard", func(b *testing.B) {
		for b.Loop() {
			pkg := mustOpen(b, deb)
			if err := pkg.Walk(func(f File, body io.Reader) error { _, err := io.Copy(io.Discard, body); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dpkg-deb", func(b *testing.B) {
		for b.Loop() {
			out := b.TempDir()
			dpkgDeb(b, "-x", deb, out)
			b.StopTimer()
			os.RemoveAll(out)
			b.StartTimer()
		}
	})
}
