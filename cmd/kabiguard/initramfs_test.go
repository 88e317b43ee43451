package main

// `kabiguard initramfs` on a real kernel pair (root, the Debian archive on first use).

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

func TestInitramfsVerifyRefreshCLI(t *testing.T) {
	k50, k53 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53")
	root := testkit.NewRoot(t, k50, k53)
	src := filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo")
	testkit.Install(t, root, k50.Release, "extra/kabidemo/kabidemo.ko", testkit.BuildModules(t, k50, src)["kabidemo"])
	var out, errOut bytes.Buffer
	if code := run([]string{"link", "--root", root}, &out, &errOut); code != 0 {
		t.Fatalf("link: %d %s", code, errOut.String())
	}
	// An image made before the link: it holds 53's own older build.
	old, _ := os.ReadFile(testkit.BuildModules(t, k53, src)["kabidemo"])
	dir := "usr/lib/modules/" + k53.Release + "/"
	img := filepath.Join(root, "boot", "initrd.img-"+k53.Release)
	w := initramfs.Writer{Compression: compression.Gzip, MTime: 1700000000}
	if err := w.WriteFile(img, []initramfs.File{
		initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko", 0o644, old),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko:\n")),
	}); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string) {
		out.Reset()
		errOut.Reset()
		code := run(append(args, "--root", root, "-k", k53.Release, img), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, s := cli("initramfs", "verify"); code != 1 || !strings.Contains(s, "kabidemo  stale") {
		t.Fatalf("verify of a stale image: exit %d\n%s", code, s)
	} else {
		t.Logf("verify (stale):\n%s", strings.ReplaceAll(s, root, ""))
	}
	if code, s := cli("initramfs", "refresh", "--dry-run"); code != 0 || !strings.Contains(s, "would replace") {
		t.Fatalf("refresh --dry-run: exit %d\n%s", code, s)
	}
	if code, s := cli("initramfs", "verify"); code != 1 {
		t.Fatalf("--dry-run changed the image: verify exit %d\n%s", code, s)
	}
	if code, s := cli("initramfs", "refresh"); code != 0 || !strings.Contains(s, "replaced") {
		t.Fatalf("refresh: exit %d\n%s", code, s)
	} else {
		t.Logf("refresh:\n%s", strings.ReplaceAll(s, root, ""))
	}
	if code, s := cli("initramfs", "verify"); code != 0 || !strings.Contains(s, "all current") {
		t.Fatalf("verify after refresh: exit %d\n%s", code, s)
	} else {
		t.Logf("verify (refreshed):\n%s", strings.ReplaceAll(s, root, ""))
	}
	if code, s := cli("initramfs", "ls"); code != 0 || !strings.Contains(s, "kabidemo.ko  [current]") {
		t.Fatalf("ls: exit %d\n%s", code, s)
	}
	// Bad input: one line naming the file, exit 2.
	os.WriteFile(img, []byte("\x1f\x8b garbage"), 0o600)
	if code, s := cli("initramfs", "verify"); code != 2 || !strings.Contains(s, img) || strings.Count(strings.TrimSpace(s), "\n") != 0 {
		t.Fatalf("corrupt image: exit %d\n%s", code, s)
	}
}
