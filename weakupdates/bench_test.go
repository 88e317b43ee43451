package weakupdates

// Benchmarks on a sandbox root of 6 real Debian kernels with 20 external modules (root, the
// Debian archive on first use: see internal/testkit). `make bench` prints the ratios.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

var benchABIs = []string{"6.1.0-47", "6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55", "6.1.0-56"}

var (
	benchOnce sync.Once
	benchRoot string
)

// benchSandbox builds, once per test binary, a root with 6 kernels where 6.1.0-50's extra/
// holds 20 external modules: the project's kabidemo, kabiprov+kabiuser (a dependency pair),
// Debian's v4l2loopback, and 8 provider/user pairs of real driver modules taken out of every
// kernel's own tree (so no kernel has them natively) and installed as 6.1.0-50's builds.
func benchSandbox(b *testing.B) string {
	benchOnce.Do(func() {
		var ks []*testkit.Kernel
		for _, abi := range benchABIs {
			ks = append(ks, testkit.FetchKernel(b, abi))
		}
		dir, err := os.MkdirTemp("", "kabiguard-bench")
		if err != nil {
			b.Fatal(err)
		}
		root := filepath.Join(dir, "root")
		for _, k := range ks {
			testkit.AddKernel(b, root, k)
		}
		os.MkdirAll(filepath.Join(root, "etc", "depmod.d"), 0o755)
		conf, _ := os.ReadFile(filepath.Join(testkit.RepoDir(), "depmod.d", "kabiguard.conf"))
		os.WriteFile(filepath.Join(root, "etc", "depmod.d", "kabiguard.conf"), conf, 0o644)

		k50 := ks[1]
		install := func(name, src string) {
			testkit.Install(b, root, k50.Release, filepath.Join("extra", name, filepath.Base(src)), src)
		}
		for _, s := range []string{"kabidemo", "kabipair"} {
			for name, p := range testkit.BuildModules(b, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", s)) {
				install(name, p)
			}
		}
		install("v4l2loopback", testkit.V4L2Loopback(b, k50))
		for _, rel := range driverPairs(b, k50.ModulesDir(), 8) {
			for _, k := range ks {
				os.Remove(filepath.Join(root, "lib", "modules", k.Release, rel))
			}
			install(strings.TrimSuffix(filepath.Base(rel), ".ko"), filepath.Join(k50.ModulesDir(), rel))
		}
		for _, k := range ks {
			testkit.Depmod(b, root, k.Release)
		}
		benchRoot = root
	})
	if benchRoot == "" {
		b.Fatal("sandbox setup failed earlier")
	}
	return benchRoot
}

// driverPairs picks n (user, provider) pairs from a kernel's modules.dep under drivers/: the
// user depends on exactly the provider, the provider on nothing, and nothing else uses either.
func driverPairs(b *testing.B, dir string, n int) []string {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	deps := map[string][]string{}
	users := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, _ := strings.Cut(sc.Text(), ":")
		deps[mod] = strings.Fields(rest)
		for _, d := range deps[mod] {
			users[d]++
		}
	}
	var mods []string
	for m := range deps {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	var out []string
	for _, m := range mods {
		d := deps[m]
		if len(out) >= 2*n || !strings.HasPrefix(m, "kernel/drivers/") || len(d) != 1 || users[m] != 0 {
			continue
		}
		if p := d[0]; len(deps[p]) == 0 && users[p] == 1 && strings.HasPrefix(p, "kernel/drivers/") {
			out = append(out, m, p)
		}
	}
	if len(out) < 2*n {
		b.Fatalf("only %d driver modules in pairs", len(out))
	}
	return out
}

// BenchmarkPlan is the planning step alone: scan the 6 trees, read every external module and
// the 6 kernels' exports, decide every link, diff against the disk. No depmod.
func BenchmarkPlan(b *testing.B) {
	root := benchSandbox(b)
	cfg := config.Default()
	for range b.N {
		if _, err := Preview(cfg, root, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddKernel: `weak-modules --add-kernel K --no-initramfs` end to end (links created
// from scratch, the real depmod once) against a single `depmod -a K` on the same tree.
func BenchmarkAddKernel(b *testing.B) {
	root := benchSandbox(b)
	const k = "6.1.0-53-amd64"
	bin := filepath.Join(b.TempDir(), "weak-modules")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/weak-modules").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v %s", err, out)
	}
	b.Run("weak-modules", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			os.RemoveAll(filepath.Join(root, "lib", "modules", k, "weak-updates"))
			b.StartTimer()
			out, err := exec.Command(bin, "--basedir", root, "--add-kernel", k, "--no-initramfs").CombinedOutput()
			if err != nil {
				b.Fatalf("%v %s", err, out)
			}
		}
		b.StopTimer()
		n, _ := filepath.Glob(filepath.Join(root, "lib", "modules", k, "weak-updates", "*", "*.ko*"))
		b.ReportMetric(float64(len(n)), "links")
	})
	b.Run("depmod", func(b *testing.B) {
		for range b.N {
			out, err := exec.Command("depmod", "-C", filepath.Join(root, "etc", "depmod.d"), "-b", root, "-a", k).CombinedOutput()
			if err != nil {
				b.Fatalf("%v %s", err, out)
			}
		}
	})
}
