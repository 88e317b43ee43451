package gate

// The gate against real Debian kernels and modules built for them, in sandbox roots (--root):
// needs root, the Debian archive on first use, kmod, gcc and make (internal/testkit).

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

func gateConfig(t *testing.T, root, required string, extra string) *config.Config {
	t.Helper()
	dir := filepath.Join(root, config.RequiredDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test.conf"), []byte(required), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, config.MainFile), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// symbolMismatch derives, independently of kabiguard, one symbol whose CRC in the module
// (modprobe --dump-modversions) differs from the kernel's Module.symvers: name, want, have.
func symbolMismatch(t *testing.T, ko, symvers string) []string {
	t.Helper()
	out, err := exec.Command("modprobe", "--dump-modversions", ko).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(symvers)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	have := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Split(sc.Text(), "\t"); len(fs) >= 2 {
			have[fs[1]] = fs[0]
		}
	}
	var all []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		crc, sym, _ := strings.Cut(line, "\t")
		if h, ok := have[sym]; ok && h != crc {
			all = append(all, sym, crc, h)
		}
	}
	return all
}

func gateFor(t *testing.T, opt Options) *Result {
	t.Helper()
	res, err := Check(opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestGateRealKernels: a module built for 6.1.0-50 in its extra/, kernels 53 and 54 beside it.
func TestGateRealKernels(t *testing.T) {
	k50, k53, k54 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53"), testkit.FetchKernel(t, "6.1.0-54")
	demo := testkit.BuildModules(t, k50, filepath.Join("..", "testdata", "src", "kabidemo"))["kabidemo"]
	pair := testkit.BuildModules(t, k50, filepath.Join("..", "testdata", "src", "kabipair"))
	root := testkit.NewRoot(t, k50, k53, k54)
	testkit.Install(t, root, k50.Release, "extra/kabidemo.ko", demo)
	testkit.Install(t, root, k50.Release, "extra/kabiprov.ko", pair["kabiprov"])
	testkit.Install(t, root, k50.Release, "extra/kabiuser.ko", pair["kabiuser"])
	testkit.Depmod(t, root, k50.Release)
	bad := symbolMismatch(t, demo, k54.Symvers)
	if len(bad) == 0 {
		t.Fatalf("fixture: kabidemo built for %s was expected to have a CRC that %s does not match", k50.Release, k54.Release)
	}
	if len(symbolMismatch(t, demo, k53.Symvers)) != 0 {
		t.Fatalf("fixture: kabidemo built for %s was expected to match every CRC of %s", k50.Release, k53.Release)
	}

	cfg := gateConfig(t, root, "kabidemo\n", "")
	t.Run("pending until linked", func(t *testing.T) {
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: cfg})
		if res.OK || res.Action != Refuse || !strings.Contains(res.Modules[0].Reason, "not linked") {
			t.Fatalf("before kabiguard link: %+v", res)
		}
	})
	if _, err := weakupdates.Sync(cfg, weakupdates.SyncOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	t.Run("native", func(t *testing.T) {
		res := gateFor(t, Options{Root: root, Kernel: k50.Release, Config: cfg})
		if !res.OK || res.Action != Pass || res.Modules[0].State != "native" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("weak", func(t *testing.T) {
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: cfg})
		m := res.Modules[0]
		if !res.OK || m.State != "weak" || m.From != k50.Release || !strings.Contains(m.Path, "/weak-updates/") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("incompatible names symbol and CRCs", func(t *testing.T) {
		res := gateFor(t, Options{Root: root, Kernel: k54.Release, Config: cfg})
		m := res.Modules[0]
		if res.OK || res.Action != Refuse || m.State != "incompatible" {
			t.Fatalf("%+v", res)
		}
		found := false
		for i := 0; i < len(bad); i += 3 {
			if strings.Contains(m.Reason, bad[i]) && strings.Contains(m.Reason, bad[i+1]) && strings.Contains(m.Reason, bad[i+2]) {
				found = true
			}
		}
		if !found || !strings.HasPrefix(m.Reason, "kabidemo ") {
			t.Fatalf("reason %q names none of the derived mismatches %v", m.Reason, bad)
		}
	})
	t.Run("warn", func(t *testing.T) {
		c := gateConfig(t, t.TempDir(), "kabidemo\n", "on_missing_required = warn\n")
		res := gateFor(t, Options{Root: root, Kernel: k54.Release, Config: c})
		if res.OK || res.Action != Warn {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("no build anywhere", func(t *testing.T) {
		// (drbd is in Debian's tree: "in-tree" below would pass it.)
		c := gateConfig(t, t.TempDir(), "npreal2\n", "")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: c})
		if res.OK || !strings.Contains(res.Modules[0].Reason, "no build of npreal2 is compatible with any installed kernel") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("in-tree", func(t *testing.T) {
		// Debian builds drbd and xfs as modules; both need libcrc32c, which modules.dep says.
		c := gateConfig(t, t.TempDir(), "xfs early\ndrbd\n", "")
		img := filepath.Join(t.TempDir(), "initrd.img")
		dir := "usr/lib/modules/" + k54.Release + "/kernel/"
		writeTestImage(t, img, dir+"fs/xfs/xfs.ko")
		res := gateFor(t, Options{Root: root, Kernel: k54.Release, Config: c, Initrds: []string{img}})
		if res.OK || !strings.Contains(res.Failed()[0].Reason, "its dependency libcrc32c is not") {
			t.Fatalf("%+v", res)
		}
		writeTestImage(t, img, dir+"fs/xfs/xfs.ko", dir+"lib/libcrc32c.ko")
		res = gateFor(t, Options{Root: root, Kernel: k54.Release, Config: c, Initrds: []string{img}})
		if !res.OK || res.Modules[0].State != "native" || res.Modules[1].Initrd != "yes" {
			t.Fatalf("%+v", res)
		}
	})

	early := gateConfig(t, t.TempDir(), "kabiuser early\n", "")
	dir := t.TempDir()
	base := "usr/lib/modules/" + k53.Release + "/weak-updates/"
	t.Run("early with its dependency", func(t *testing.T) {
		img := filepath.Join(dir, "both.img")
		writeTestImage(t, img, base+"kabiuser.ko", base+"kabiprov.ko")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early, Initrds: []string{img}})
		m := res.Modules[0]
		if !res.OK || m.Initrd != "yes" || strings.Join(m.Depends, ",") != "kabiprov" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("early in the staging area", func(t *testing.T) {
		staging := t.TempDir()
		writeTestImage(t, filepath.Join(staging, "initrd"), base+"kabiuser.ko", base+"kabiprov.ko")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early, StagingArea: staging})
		if !res.OK || len(res.Initrds) != 1 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("early without its dependency", func(t *testing.T) {
		img := filepath.Join(dir, "user.img")
		writeTestImage(t, img, base+"kabiuser.ko")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early, Initrds: []string{img}})
		if res.OK || !strings.Contains(res.Modules[0].Reason, "dependency kabiprov is not") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("early missing from the image", func(t *testing.T) {
		img := filepath.Join(dir, "none.img")
		writeTestImage(t, img, "usr/lib/modules/"+k53.Release+"/kernel/fs/xfs/xfs.ko")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early, Initrds: []string{img}})
		if res.OK || !strings.Contains(res.Modules[0].Reason, "does not contain it") {
			t.Fatalf("%+v", res)
		}
		res = gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early, Initrds: []string{img}, NoInitrd: true})
		if !res.OK {
			t.Fatalf("--no-initrd still looked: %+v", res)
		}
	})
	t.Run("early without any image", func(t *testing.T) {
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: early})
		if res.OK || !strings.Contains(res.Modules[0].Reason, "has no initramfs") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("dependency gone", func(t *testing.T) {
		// modules.dep still lists the provider, whose file is gone: modprobe would fail.
		link := filepath.Join(root, "lib", "modules", k53.Release, "weak-updates", "kabiprov.ko")
		target, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(link)
		defer os.Symlink(target, link)
		c := gateConfig(t, t.TempDir(), "kabiuser\n", "")
		res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: c})
		if res.OK {
			t.Fatalf("%+v", res)
		}
	})
}

func writeTestImage(t *testing.T, path string, modules ...string) {
	t.Helper()
	files := []initramfs.File{initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n"))}
	for _, m := range modules {
		files = append(files, initramfs.Regular(m, 0o644, []byte("not a real module")))
	}
	if err := (initramfs.Writer{}).WriteFile(path, files); err != nil {
		t.Fatal(err)
	}
}

// TestGateWithoutSymvers: a kernel whose CRCs are unknown (no headers package, and no image to
// derive them from) cannot be vouched for: refused as undecided, never as incompatible, and
// the reason says what to install (the headers). With its image, the same kernel is judged
// from the exports derived from it.
func TestGateWithoutSymvers(t *testing.T) {
	k50, k53 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53")
	demo := testkit.BuildModules(t, k50, filepath.Join("..", "testdata", "src", "kabidemo"))["kabidemo"]
	root := testkit.NewRoot(t, k50, k53)
	testkit.Install(t, root, k50.Release, "extra/kabidemo.ko", demo)
	if err := os.RemoveAll(filepath.Join(root, "usr", "src", "linux-headers-"+k53.Release)); err != nil {
		t.Fatal(err)
	}
	cfg := gateConfig(t, root, "kabidemo\n", "")
	derived := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: cfg})
	if m := derived.Modules[0]; m.State == weakupdates.Undecided.String() || strings.Contains(m.Reason, "cannot tell") {
		t.Errorf("with its vmlinuz, the kernel is undecided: %+v", m)
	}
	if err := os.Remove(filepath.Join(root, "boot", "vmlinuz-"+k53.Release)); err != nil {
		t.Fatal(err)
	}
	res := gateFor(t, Options{Root: root, Kernel: k53.Release, Config: cfg})
	t.Log(res.Modules[0].Reason)
	if m := res.Modules[0]; res.OK || m.State != weakupdates.Undecided.String() || !strings.Contains(m.Reason, "cannot tell") || !strings.Contains(m.Reason, "headers") {
		t.Fatalf("%+v", res)
	}
}
