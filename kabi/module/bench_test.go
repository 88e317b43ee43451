package module

// Benchmarks on a real kernel tree (root, the Debian archive on first use: see internal/testkit).
// `make bench` runs them and prints the ratios; nothing here asserts a time.

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

func treeModules(b *testing.B) []string {
	b.Helper()
	k := testkit.FetchKernel(b, "6.1.0-54")
	var files []string
	filepath.WalkDir(k.ModulesDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), ".ko") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 3000 {
		b.Fatalf("only %d modules", len(files))
	}
	return files
}

// BenchmarkParseTree reads the symbol versions of every module of a Debian 6.1 tree (4000+
// signed .ko files): kabiguard's parser in one process against `modprobe --dump-modversions`
// once per file, the way scripts (and RHEL's weak-modules) use it.
func BenchmarkParseTree(b *testing.B) {
	files := treeModules(b)
	// Both sides read the same files: start both with them in the page cache.
	for _, p := range files {
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("kabiguard", func(b *testing.B) {
		for range b.N {
			for _, p := range files {
				if _, err := Open(p); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(files)), "modules")
	})
	b.Run("modprobe", func(b *testing.B) {
		for range b.N {
			for _, p := range files {
				if err := exec.Command("modprobe", "--dump-modversions", p).Run(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(files)), "modules")
	})
}
