package forecast

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// BenchmarkForecast is issue 13's measure: kabiguard forecast of a real Debian kernel package
// (a fresh process, as an admin runs it) against a host with 20 external modules, beside one
// dpkg-deb -x of the same package. make bench prints the ratio.
func BenchmarkForecast(b *testing.B) {
	host := testkit.FetchKernel(b, "6.1.0-55")
	deb, _ := imageDeb(b, "6.1.0-56")
	root := testkit.NewRoot(b, host)
	// 20 real modules of the host kernel, treated as external builds (extra/).
	n := 0
	filepath.WalkDir(filepath.Join(host.ModulesDir(), "kernel", "drivers", "net", "ethernet"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") || n == 20 {
			return err
		}
		testkit.Install(b, root, host.Release, "extra/"+filepath.Base(p), p)
		n++
		return nil
	})
	testkit.Depmod(b, root, host.Release)
	bin := testkit.BuildBinary(b, "kabiguard")
	b.Run("kabiguard", func(b *testing.B) {
		for b.Loop() {
			out, err := exec.Command(bin, "forecast", "--root", root, "--json", deb).CombinedOutput()
			if err != nil {
				b.Fatalf("forecast: %v\n%s", err, out)
			}
		}
	})
	b.Run("dpkg-deb", func(b *testing.B) {
		for b.Loop() {
			out := b.TempDir()
			if o, err := exec.Command("dpkg-deb", "-x", deb, out).CombinedOutput(); err != nil {
				b.Fatalf("dpkg-deb -x: %v\n%s", err, o)
			}
			b.StopTimer()
			os.RemoveAll(out)
			b.StartTimer()
		}
	})
}
