package imagesync

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// BenchmarkRefreshVsDracut: the same module change on a real kernel (6.1.0-53, kabidemo
// weak-linked from the 6.1.0-50 build, which is then rebuilt) brought into the default-set
// initramfs by a full `dracut --force` and by Refresh, for zstd (the goal), gzip
// (dracut's default: pigz when nothing is configured) and xz. `make bench` prints the ratios.
// Needs root, dracut, the Debian archive on first use.
func BenchmarkRefreshVsDracut(b *testing.B) {
	k50, k53 := testkit.FetchKernel(b, "6.1.0-50"), testkit.FetchKernel(b, "6.1.0-53")
	kg := testkit.BuildBinary(b, "kabiguard")
	for _, compress := range []string{"zstd", "gzip", "xz"} {
		b.Run(compress, func(b *testing.B) { benchRefresh(b, k50, k53, kg, "--"+compress) })
	}
}

func benchRefresh(b *testing.B, k50, k53 *testkit.Kernel, kg, compress string) {
	root := testkit.NewRoot(b, k50, k53)
	build := testkit.BuildModules(b, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	installed := testkit.Install(b, root, k50.Release, "extra/kabidemo/kabidemo.ko", build)
	if _, err := weakupdates.Sync(config.Default(), weakupdates.SyncOptions{Root: root}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	img := filepath.Join(root, "boot", "initrd.img-"+k53.Release)
	dracut := func() {
		os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755)
		os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
		out, err := exec.Command("dracut", "-q", "--force", "--kver", k53.Release,
			"--kmoddir", filepath.Join(root, "lib", "modules", k53.Release),
			"--tmpdir", filepath.Join(dir, "tmp"), "--conf", "/dev/null", "--confdir", filepath.Join(dir, "conf.d"),
			"--no-hostonly", compress, "--add-drivers", "kabidemo", img).CombinedOutput()
		if err != nil {
			b.Fatalf("dracut: %v %s", err, out)
		}
	}
	// The module is rebuilt: DKMS put a new build (here the one made against 6.1.0-53's
	// headers, compatible with both kernels) where the link points.
	rebuilt := testkit.BuildModules(b, k53, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	change := func() {
		if out, err := exec.Command("cp", rebuilt, installed).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
	}
	b.Run("dracut", func(b *testing.B) {
		for range b.N {
			dracut()
		}
	})
	if _, err := os.Stat(img); err != nil { // -bench filtered the dracut run out: make the image
		dracut()
	}
	if rep, err := Verify(root, k53.Release, img, config.Default()); err != nil || !rep.OK() {
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range rep.Modules {
			if m.State != ModCurrent {
				b.Logf("%+v", m)
			}
		}
		b.Fatalf("dracut's own image does not verify: %v, missing %v", err, rep.MissingEarly)
	}
	stale := filepath.Join(dir, "stale.img")
	if out, err := exec.Command("cp", img, stale).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	change()
	restore := func(b *testing.B) { // the stale image back, untimed
		b.StopTimer()
		if out, err := exec.Command("cp", stale, img).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		b.StartTimer()
	}
	b.Run("kabiguard", func(b *testing.B) {
		for range b.N {
			restore(b)
			res, err := Refresh(root, k53.Release, img, config.Default(), false)
			if err != nil || len(res.Replaced) != 1 {
				b.Fatalf("refresh: %v %+v", err, res)
			}
		}
	})
	// The command an admin or a hook runs, a fresh process each time as dracut is: what the
	// ratio in `make bench` is computed from.
	b.Run("kabiguard-cli", func(b *testing.B) {
		for range b.N {
			restore(b)
			out, err := exec.Command(kg, "initramfs", "refresh", "--root", root, "-k", k53.Release, img).CombinedOutput()
			if os.Getenv("KABIGUARD_TRACE") != "" {
				os.Stderr.Write(out) // the steps' times
			}
			if err != nil || !strings.Contains(string(out), "replaced") {
				b.Fatalf("kabiguard initramfs refresh: %v\n%s", err, out)
			}
		}
	})
	// The refreshed image holds the rebuilt module: the timing is of work actually done.
	if rep, err := Verify(root, k53.Release, img, config.Default()); err != nil || !rep.OK() {
		b.Fatalf("the refreshed image does not verify: %v %+v", err, rep)
	}
}
