package main

// `kabiguard initramfs ls/verify/refresh` on images made by the real dracut with the project's
// 90kabiguard module (recipe R4: a private copy of dracut's tree, --kmoddir, host
// configuration ignored; the host's /lib/modules is never touched). Needs root, dracut-core,
// kmod, zstd, gcc/make for the module builds and the Debian archive on first use.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// dracutGenerator writes a generator script that runs the real dracut isolated from the host
// (its own copy of dracut's tree with 90kabiguard, no host configuration) with the project's
// module, zstd and the given dracut modules; it appends its arguments to calls. It stands in
// for dracut wherever KERNEL_INSTALL_INITRD_GENERATOR names the generator.
func dracutGenerator(t *testing.T, root, dracutModules string) (gen, calls string) {
	t.Helper()
	d := t.TempDir()
	for _, dir := range []string{"conf.d", "tmp"} {
		os.MkdirAll(filepath.Join(d, dir), 0o755)
	}
	tree := testkit.DracutTree(t)
	gate := testkit.BuildBinary(t, "kabiguard-gate")
	calls = filepath.Join(d, "calls")
	gen = filepath.Join(d, "dracut-isolated")
	script := `#!/bin/sh
echo "$*" >>'` + calls + `'
export dracutbasedir='` + tree + `'
export KABIGUARD_CONFDIR='` + filepath.Join(root, "etc", "kabiguard") + `' KABIGUARD_GATE='` + gate + `'
exec dracut -q --conf /dev/null --confdir '` + filepath.Join(d, "conf.d") + `' --tmpdir '` + filepath.Join(d, "tmp") + `' \
	--no-hostonly --zstd -m '` + dracutModules + `' "$@"
`
	if err := os.WriteFile(gen, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return gen, calls
}

// TestInitramfsOnDracutImage: kabidemo, kabiprov and kabiuser built for 6.1.0-50 are
// weak-linked into 6.1.0-53 by `link`; dracut puts them into 53's image as it does on a real
// host: each weak-updates link a symlink in the image plus the file it points at. Then:
// verify and refresh find it current; a rebuilt kabidemo makes it stale and refresh replaces
// exactly that module, keeping the others in the modules.dep the real depmod writes; a
// required early module the image lacks sends refresh to the generator
// (KERNEL_INSTALL_INITRD_GENERATOR), with progress.
func TestInitramfsOnDracutImage(t *testing.T) {
	k50, k53 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53")
	root := testkit.NewRoot(t, k50, k53)
	demo := filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo")
	pair := testkit.BuildModules(t, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabipair"))
	installed := testkit.Install(t, root, k50.Release, "extra/kabidemo/kabidemo.ko", testkit.BuildModules(t, k50, demo)["kabidemo"])
	testkit.Install(t, root, k50.Release, "extra/kabipair/kabiprov.ko", pair["kabiprov"])
	testkit.Install(t, root, k50.Release, "extra/kabipair/kabiuser.ko", pair["kabiuser"])
	required := filepath.Join(root, "etc", "kabiguard", "required.d", "test.conf")
	os.MkdirAll(filepath.Dir(required), 0o755)
	os.WriteFile(required, []byte("kabidemo early\nkabiuser early\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"link", "--root", root}, &out, &errOut); code != 0 {
		t.Fatalf("link: %d %s", code, errOut.String())
	}
	gen, calls := dracutGenerator(t, root, "base kabiguard")
	t.Setenv("KERNEL_INSTALL_INITRD_GENERATOR", gen)
	img := filepath.Join(root, "boot", "initrd.img-"+k53.Release)
	kmoddir := filepath.Join(root, "lib", "modules", k53.Release)
	if out, err := exec.Command(gen, "--force", "--kver", k53.Release, "--kmoddir", kmoddir, img).CombinedOutput(); err != nil {
		t.Fatalf("dracut: %v\n%s", err, out)
	}
	cli := func(args ...string) (int, string) {
		out.Reset()
		errOut.Reset()
		code := run(append(args, "--root", root, "-k", k53.Release, img), &out, &errOut)
		return code, strings.ReplaceAll(out.String()+errOut.String(), root, "$ROOT")
	}
	modDir := "usr/lib/modules/" + k53.Release + "/"
	lsinitrd := func(name string) string {
		b, err := exec.Command("lsinitrd", "-f", modDir+name, img).Output()
		if err != nil {
			t.Fatalf("lsinitrd -f %s: %v", name, err)
		}
		return string(b)
	}
	// dracut's layout: the weak-updates entry is a symlink in the image.
	if ls, _ := exec.Command("lsinitrd", img).Output(); !strings.Contains(string(ls), "weak-updates/kabidemo/kabidemo.ko -> ") {
		t.Fatalf("dracut did not keep the weak-updates link as a symlink:\n%s", ls)
	}

	if code, s := cli("initramfs", "verify"); code != 0 || !strings.Contains(s, "all current") {
		t.Fatalf("verify of dracut's fresh image: exit %d\n%s", code, s)
	}
	if code, s := cli("initramfs", "refresh"); code != 0 || !strings.Contains(s, "up to date") {
		t.Fatalf("refresh of dracut's fresh image: exit %d\n%s", code, s)
	}
	code, s := cli("initramfs", "ls")
	t.Logf("ls (head):\n%s", strings.Join(strings.SplitN(s, "\n", 6)[:5], "\n"))
	if code != 0 || !strings.Contains(s, "weak-updates/kabidemo/kabidemo.ko -> ") || !strings.Contains(s, "zstd") ||
		!strings.Contains(s, "kabiuser.ko -> ../../") || !strings.Contains(s, "[current]") {
		t.Fatalf("ls: exit %d\n%s", code, s)
	}

	// DKMS rebuilt kabidemo where the link points (the build made against 53's headers).
	os.Remove(installed)
	testkit.Install(t, root, k50.Release, "extra/kabidemo/kabidemo.ko", testkit.BuildModules(t, k53, demo)["kabidemo"])
	rebuilt, _ := os.ReadFile(installed)
	code, s = cli("initramfs", "verify")
	if code != 1 || !strings.Contains(s, "kabidemo  stale") || strings.Contains(s, "kabiuser  stale") {
		t.Fatalf("verify after the rebuild: exit %d\n%s", code, s)
	}
	t.Logf("verify (stale):\n%s", s)
	var rep imagesync.VerifyReport
	if code, s := cli("initramfs", "verify", "--json"); code != 1 || json.Unmarshal([]byte(s), &rep) != nil || len(rep.Modules) != 3 || rep.Compression != "zstd" {
		t.Fatalf("verify --json: exit %d\n%s", code, s)
	}
	before, _ := os.ReadFile(img)
	if code, s := cli("initramfs", "refresh", "--dry-run"); code != 0 || !strings.Contains(s, "would replace "+modDir+"weak-updates/kabidemo/kabidemo.ko") {
		t.Fatalf("refresh --dry-run: exit %d\n%s", code, s)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("--dry-run changed the image")
	}
	code, s = cli("initramfs", "refresh")
	if code != 0 || !strings.Contains(s, "replaced "+modDir+"weak-updates/kabidemo/kabidemo.ko;") {
		t.Fatalf("refresh: exit %d\n%s", code, s)
	}
	t.Logf("refresh:\n%s", s)
	if code, s := cli("initramfs", "verify"); code != 0 || !strings.Contains(s, "3 modules of "+k53.Release+", all current") {
		t.Fatalf("verify after refresh: exit %d\n%s", code, s)
	}
	// dracut's own reader: the new build at the path modules.dep names, every module still
	// indexed by the real depmod, kabiuser after its provider.
	// As on the host, the weak-updates link stays a link and the file it leads to (where
	// dracut put the link's target) holds the rebuilt build.
	ls, _ := exec.Command("lsinitrd", img).Output()
	m := regexp.MustCompile(`(?m) (usr/lib/modules/[^ ]+/weak-updates/kabidemo)/kabidemo\.ko -> (\S+)$`).FindStringSubmatch(string(ls))
	if m == nil || !strings.Contains(string(ls), "6.1.0-50-amd64/extra/kabipair/kabiprov.ko") {
		t.Fatalf("lsinitrd after refresh: the link or the pair is gone:\n%s", ls)
	}
	target, err := exec.Command("lsinitrd", "-f", path.Join(m[1], m[2]), img).Output()
	if err != nil || string(target) != string(rebuilt) {
		t.Fatalf("lsinitrd -f %s: not the rebuilt kabidemo (%v, %d bytes)", path.Join(m[1], m[2]), err, len(target))
	}
	dep := lsinitrd("modules.dep")
	for _, want := range []string{"weak-updates/kabidemo/kabidemo.ko:", "weak-updates/kabipair/kabiuser.ko: weak-updates/kabipair/kabiprov.ko", "weak-updates/kabipair/kabiprov.ko:"} {
		if !strings.Contains(dep, want) {
			t.Fatalf("modules.dep in the refreshed image lacks %q:\n%s", want, dep)
		}
	}

	// A required early module the image lacks: only the generator can add it.
	os.WriteFile(required, []byte("kabidemo early\nkabiuser early\ncrc_itu_t early\n"), 0o644)
	before, _ = os.ReadFile(img)
	if code, s := cli("initramfs", "refresh", "--dry-run"); code != 0 || !strings.Contains(s, "would rebuild") || !strings.Contains(s, "crc_itu_t") {
		t.Fatalf("refresh --dry-run needing a rebuild: exit %d\n%s", code, s)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("--dry-run rebuilt the image")
	}
	if code, s := cli("initramfs", "verify"); code != 1 || !strings.Contains(s, "crc_itu_t  missing") {
		t.Fatalf("verify without a required early module: exit %d\n%s", code, s)
	}
	code, s = cli("initramfs", "refresh")
	if code != 0 || !strings.Contains(s, "kernel 1 of 1") || !strings.Contains(s, "rebuilt") {
		t.Fatalf("refresh needing a rebuild: exit %d\n%s", code, s)
	}
	t.Logf("refresh (rebuild):\n%s", s)
	if b, _ := os.ReadFile(calls); strings.Count(string(b), "\n") != 2 || !strings.Contains(string(b), "--force --kver "+k53.Release) {
		t.Fatalf("generator calls:\n%s", b)
	}
	if code, s := cli("initramfs", "verify"); code != 0 || !strings.Contains(s, "4 modules of "+k53.Release+", all current") {
		t.Fatalf("verify after the rebuild: exit %d\n%s", code, s)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "boot", "*kabiguard*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
