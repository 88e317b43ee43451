package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// BenchmarkFleet is issue 15's measure: one real kernel package (linux-image-6.1.0-56)
// against 1000 hosts' manifests. "kabiguard" is the whole command as an admin runs it (a fresh
// process: reading the package once, reading and judging the 1000 manifests, writing the JSON);
// "judge" is the fleet part alone, the package read once beforehand; "read" is that read.
func BenchmarkFleet(b *testing.B) {
	deb := testkit.ImageDeb(b, "6.1.0-56")
	dir := fleetManifests(b, 1000)
	b.Run("kabiguard", func(b *testing.B) {
		bin := testkit.BuildBinary(b, "kabiguard")
		for b.Loop() {
			cmd := exec.Command(bin, "forecast", "--json", "--manifest", dir, deb)
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = io.Discard, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: some host loses a module
				b.Fatalf("forecast --manifest: %v\n%s", err, stderr.String())
			}
		}
	})
	files, err := Files([]string{dir})
	if err != nil {
		b.Fatal(err)
	}
	all, err := LoadAll(files)
	if err != nil {
		b.Fatal(err)
	}
	wanted := Wanted(all) // what the command reads the package for
	var pkg *pkgfile.Package
	var kernels []*forecast.Kernel
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			var err error
			if pkg, err = pkgfile.Open(deb); err == nil {
				kernels, err = forecast.Read(pkg, wanted)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("judge", func(b *testing.B) {
		for b.Loop() {
			seen.modules = nil // as a fresh process: every distinct module decoded once
			manifests, err := LoadAll(files)
			if err != nil {
				b.Fatal(err)
			}
			if reports := Judge(pkg, kernels, manifests); len(reports) != len(files) {
				b.Fatalf("%d reports for %d manifests", len(reports), len(files))
			}
		}
	})
}

// fleetManifests writes n synthetic manifests derived from one real host: kernels 6.1.0-54
// and 6.1.0-55 with real modules (v4l2loopback, kabidemo, kabipair built against each, and
// 40 of 6.1.0-55's in-tree drivers installed as external builds). Each host keeps a random
// part of those builds and requires one to three of the modules it has; one in ten shares
// builds across series. Returns the directory.
func fleetManifests(tb testing.TB, n int) string {
	tb.Helper()
	k54, k55 := testkit.FetchKernel(tb, "6.1.0-54"), testkit.FetchKernel(tb, "6.1.0-55")
	root := testkit.NewRoot(tb, k54, k55)
	for _, k := range []*testkit.Kernel{k54, k55} {
		testkit.Install(tb, root, k.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(tb, k))
		for _, src := range []string{"kabidemo", "kabipair"} {
			for name, p := range testkit.BuildModules(tb, k, filepath.Join(testkit.RepoDir(), "testdata", "src", src)) {
				testkit.Install(tb, root, k.Release, "extra/"+name+".ko", p)
			}
		}
	}
	count := 0
	filepath.WalkDir(filepath.Join(k55.ModulesDir(), "kernel", "drivers", "net", "ethernet"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") || count == 40 {
			return err
		}
		testkit.Install(tb, root, k55.Release, "extra/"+filepath.Base(p), p)
		count++
		return nil
	})
	base, err := Collect(root, "")
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	rng := rand.New(rand.NewPCG(15, 1000))
	var size int64
	for i := range n {
		m := *base
		m.Host = fmt.Sprintf("node%04d", i)
		m.Kernels = nil
		var names []string
		for _, k := range base.Kernels {
			k.Builds = keep(rng, k.Builds)
			k.Links = nil
			for _, b := range k.Builds {
				names = append(names, b.Name)
			}
			m.Kernels = append(m.Kernels, k)
		}
		m.Config.Required = nil
		for j := 0; j < 1+rng.IntN(3) && len(names) > 0; j++ {
			m.Config.Required = append(m.Config.Required, config.Required{Name: names[rng.IntN(len(names))], Source: "synthetic"})
		}
		if i%10 == 0 {
			m.Config.ShareBuilds = "any"
		}
		data, err := json.Marshal(&m)
		if err != nil {
			tb.Fatal(err)
		}
		size += int64(len(data))
		if err := os.WriteFile(filepath.Join(dir, m.Host+".json"), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("%d manifests, %d KiB on average", n, size/int64(n)>>10)
	return dir
}

// keep returns each build with probability 1/2, in order.
func keep(rng *rand.Rand, builds []Build) []Build {
	var out []Build
	for _, b := range builds {
		if rng.IntN(2) == 0 {
			out = append(out, b)
		}
	}
	return out
}
