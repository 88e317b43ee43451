package imagesync

// Refresh on real kernels (root, the Debian archive on first use, kmod, dracut-core for
// lsinitrd: .ci/run installs them). The images are made by the project's writer in every
// compression the kernel accepts; dracut's lsinitrd reads the refreshed image back as the
// independent oracle.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

type refreshFixture struct {
	root           string
	k53            string
	build50, own53 string // kabidemo built for 6.1.0-50 and for 6.1.0-53
}

// newRefreshFixture: kabidemo (the 6.1.0-50 build) in 50's extra/, linked into 53 by the real
// planner and depmod.
func newRefreshFixture(t *testing.T) *refreshFixture {
	k50 := testkit.FetchKernel(t, "6.1.0-50")
	k53 := testkit.FetchKernel(t, "6.1.0-53")
	f := &refreshFixture{root: testkit.NewRoot(t, k50, k53), k53: k53.Release}
	f.build50 = testkit.BuildModules(t, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	f.own53 = testkit.BuildModules(t, k53, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	testkit.Install(t, f.root, k50.Release, "extra/kabidemo/kabidemo.ko", f.build50)
	if _, err := weakupdates.Sync(config.Default(), weakupdates.SyncOptions{Root: f.root}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "lib/modules", f.k53, "weak-updates/kabidemo/kabidemo.ko")); err != nil {
		t.Fatalf("the planner did not link kabidemo into %s: %v", f.k53, err)
	}
	return f
}

// image writes an initramfs for 6.1.0-53 holding a stale kabidemo (53's own old build, xz)
// at the weak-updates path, one in-tree module and depmod's files, plus an init.
func (f *refreshFixture) image(t *testing.T, format compression.Format, early bool) string {
	t.Helper()
	dir := "usr/lib/modules/" + f.k53 + "/"
	stale, err := os.ReadFile(f.own53)
	if err != nil {
		t.Fatal(err)
	}
	var xzStale bytes.Buffer
	zw, _ := compression.NewWriter(&xzStale, compression.XZ)
	zw.Write(stale)
	zw.Close()
	crc, err := os.ReadFile(filepath.Join(f.root, "lib/modules", f.k53, "kernel/lib/crc-itu-t.ko"))
	if err != nil {
		t.Fatal(err)
	}
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\necho hello\n")),
		initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko.xz", 0o644, xzStale.Bytes()),
		initramfs.Regular(dir+"kernel/lib/crc-itu-t.ko", 0o644, crc),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko.xz:\nkernel/lib/crc-itu-t.ko:\n")),
		initramfs.Regular(dir+"modules.order", 0o644, []byte("kernel/lib/crc-itu-t.ko\n")),
	}
	w := initramfs.Writer{Compression: format, MTime: 1700000000}
	if early {
		w.Early = []initramfs.File{
			initramfs.Regular("early_cpio", 0o644, []byte("1\n")),
			initramfs.Regular("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("microcode\n")),
		}
	}
	img := filepath.Join(f.root, "boot", "initrd.img-"+f.k53)
	if err := w.WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
	return img
}

// lsinitrdFile is dracut's reading of one file of an image, decompressed.
func lsinitrdFile(t *testing.T, img, name string) []byte {
	t.Helper()
	out, err := exec.Command("lsinitrd", "-f", name, img).Output()
	if err != nil {
		t.Fatalf("lsinitrd -f %s: %v", name, err)
	}
	plain, _, err := compression.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func TestRefreshEveryCompression(t *testing.T) {
	f := newRefreshFixture(t)
	want, _ := os.ReadFile(f.build50)
	for _, c := range []struct {
		format compression.Format
		early  bool
	}{
		{compression.Gzip, false}, {compression.Zstd, true}, {compression.XZ, false},
		{compression.LZ4, false}, {compression.None, true},
	} {
		t.Run(string(c.format), func(t *testing.T) {
			img := f.image(t, c.format, c.early)
			rep, err := Verify(f.root, f.k53, img, config.Default())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || len(rep.Modules) != 2 {
				t.Fatalf("a stale image verified: %+v", rep)
			}
			res, err := Refresh(f.root, f.k53, img, config.Default(), false)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Replaced) != 1 || !strings.HasSuffix(res.Replaced[0], "kabidemo.ko.xz") {
				t.Fatalf("replaced %v", res.Replaced)
			}
			if rep, err = Verify(f.root, f.k53, img, config.Default()); err != nil || !rep.OK() {
				t.Fatalf("after refresh: %+v %v", rep, err)
			}
			im, err := initramfs.Open(img, initramfs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			segs := len(im.Segments)
			if got := im.Segments[segs-1].Compression; got != c.format || (segs == 2) != c.early {
				t.Fatalf("compression %s with %d segments; want %s, early %v", got, segs, c.format, c.early)
			}
			// dracut's reader sees the linked build and the modules.dep the real depmod wrote.
			dir := "usr/lib/modules/" + f.k53 + "/"
			if got := lsinitrdFile(t, img, dir+"weak-updates/kabidemo/kabidemo.ko.xz"); !bytes.Equal(got, want) {
				t.Fatal("the refreshed image does not hold the 6.1.0-50 build")
			}
			dep := string(lsinitrdFile(t, img, dir+"modules.dep"))
			if !strings.Contains(dep, "weak-updates/kabidemo/kabidemo.ko.xz:") || !strings.Contains(dep, "kernel/lib/crc-itu-t.ko:") {
				t.Fatalf("modules.dep in the image:\n%s", dep)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(img), ".*")); len(left) > 0 {
				t.Fatalf("temporary files left behind: %v", left)
			}
		})
	}
}

// A required early module the image lacks cannot be fixed by replacing files.
func TestRefreshNeedsRebuild(t *testing.T) {
	f := newRefreshFixture(t)
	img := f.image(t, compression.Zstd, false)
	cfg := config.Default()
	cfg.Required = []config.Required{{Name: "xfs", Early: true}}
	before, _ := os.ReadFile(img)
	_, err := Refresh(f.root, f.k53, img, cfg, false)
	if !errors.Is(err, ErrNeedsRebuild) || !strings.Contains(err.Error(), "xfs") {
		t.Fatalf("err %v; want ErrNeedsRebuild naming xfs", err)
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Fatal("the image changed although refresh refused")
	}
}

// TestRefreshStaleInEarlySegment: Rewrite edits only the last segment, so a stale copy in an
// earlier one needs the generator, and the error names the segment as messages count them.
func TestRefreshStaleInEarlySegment(t *testing.T) {
	f := newRefreshFixture(t)
	dir := "usr/lib/modules/" + f.k53 + "/"
	stale, _ := os.ReadFile(f.own53)
	w := initramfs.Writer{Compression: compression.Gzip, MTime: 1,
		Early: []initramfs.File{initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko", 0o644, stale)}}
	img := filepath.Join(f.root, "boot", "initrd.img-"+f.k53)
	if err := w.WriteFile(img, []initramfs.File{
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n")),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko:\n")),
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img)
	_, err := Refresh(f.root, f.k53, img, config.Default(), false)
	want := fmt.Sprintf("%s: %s is in segment 1, not the last", img, dir+"weak-updates/kabidemo/kabidemo.ko")
	if !errors.Is(err, ErrNeedsRebuild) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v; want ErrNeedsRebuild with %q", err, want)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("the image changed although refresh refused")
	}
}

// When the build a weak link used goes (its kernel removed), the tree no longer has the
// module: refresh drops the image's copy instead of booting a build nothing vouches for, and
// a required early module with no build anywhere is reported, not rebuilt for.
func TestRefreshDropsModulesGoneFromTree(t *testing.T) {
	f := newRefreshFixture(t)
	img := f.image(t, compression.Zstd, false)
	if err := os.RemoveAll(filepath.Join(f.root, "lib/modules/6.1.0-50-amd64")); err != nil {
		t.Fatal(err)
	}
	if _, err := weakupdates.Sync(config.Default(), weakupdates.SyncOptions{Root: f.root}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Required = []config.Required{{Name: "kabidemo", Early: true}}
	res, err := Refresh(f.root, f.k53, img, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || len(res.Unavailable) != 1 || res.Unavailable[0] != "kabidemo" {
		t.Fatalf("%+v", res)
	}
	// The copy goes (its directory, now empty, may stay: harmless, as dracut leaves some).
	out, err := exec.Command("lsinitrd", img).Output()
	if err != nil || strings.Contains(string(out), "kabidemo.ko") || !strings.Contains(string(out), "crc-itu-t.ko") {
		t.Fatalf("lsinitrd after refresh: %v\n%s", err, out)
	}
}

// dracut strips unsigned modules as it copies them: such a copy is the same build; another
// build of the same module is not.
func TestStrippedCopyIsSameBuild(t *testing.T) {
	f := newRefreshFixture(t)
	stripped := filepath.Join(t.TempDir(), "kabidemo.ko")
	if out, err := exec.Command("strip", "--strip-debug", "-o", stripped, f.build50).CombinedOutput(); err != nil {
		t.Fatalf("strip: %v %s", err, out)
	}
	a, _ := os.ReadFile(stripped)
	orig, _ := os.ReadFile(f.build50)
	if bytes.Equal(a, orig) {
		t.Fatal("strip changed nothing: the test proves nothing")
	}
	if same, err := sameModule(a, f.build50, new([]byte)); err != nil || !same {
		t.Fatalf("stripped copy not recognised: %v", err)
	}
	if same, err := sameModule(a, f.own53, new([]byte)); err != nil || same {
		t.Fatalf("another build taken for the same: %v", err)
	}
}

// A stale copy whose current build needs a module the image does not carry cannot be fixed by
// replacing files: the image would hold a module that cannot load. kabiuser (6.1.0-50 build,
// weak-linked into 6.1.0-53) needs kabiprov; the image holds an old kabiuser alone.
func TestRefreshNewDependencyNeedsRebuild(t *testing.T) {
	f := newRefreshFixture(t)
	pair := testkit.BuildModules(t, testkit.FetchKernel(t, "6.1.0-50"), filepath.Join(testkit.RepoDir(), "testdata", "src", "kabipair"))
	testkit.Install(t, f.root, "6.1.0-50-amd64", "extra/kabipair/kabiprov.ko", pair["kabiprov"])
	testkit.Install(t, f.root, "6.1.0-50-amd64", "extra/kabipair/kabiuser.ko", pair["kabiuser"])
	if _, err := weakupdates.Sync(config.Default(), weakupdates.SyncOptions{Root: f.root}); err != nil {
		t.Fatal(err)
	}
	dir := "usr/lib/modules/" + f.k53 + "/"
	img := filepath.Join(f.root, "boot", "initrd.img-"+f.k53)
	if err := (initramfs.Writer{Compression: compression.Gzip}).WriteFile(img, []initramfs.File{
		initramfs.Regular(dir+"extra/kabiuser.ko", 0o644, []byte("an old kabiuser that needed nothing")),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("extra/kabiuser.ko:\n")),
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(f.root, f.k53, img, config.Default())
	if err != nil || rep.OK() || rep.Modules[0].State != ModStale {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	before, _ := os.ReadFile(img)
	_, err = Refresh(f.root, f.k53, img, config.Default(), false)
	if !errors.Is(err, ErrNeedsRebuild) || !strings.Contains(err.Error(), "kabiuser needs kabiprov") {
		t.Fatalf("err %v; want ErrNeedsRebuild naming kabiprov", err)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("the image changed although refresh refused")
	}
}

// Rebuild runs the generator KERNEL_INSTALL_INITRD_GENERATOR names with dracut's options into
// a temporary file, and replaces the image only when the generator succeeded.
func TestRebuildGenerator(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "initrd.img-K")
	os.WriteFile(img, []byte("old image"), 0o600)
	gen := filepath.Join(dir, "gen")
	os.WriteFile(gen, []byte("#!/bin/sh\necho \"$@\" >"+filepath.Join(dir, "args")+"\n[ \"$FAIL\" ] && { echo half >\"$4\"; echo 'gen: broken' >&2; exit 1; }\necho new image >\"$4\"\n"), 0o755)
	t.Setenv("KERNEL_INSTALL_INITRD_GENERATOR", gen)
	t.Setenv("FAIL", "1")
	if err := Rebuild("/", "K", img); err == nil || !strings.Contains(err.Error(), "gen: broken") {
		t.Fatalf("a failing generator: %v", err)
	}
	if b, _ := os.ReadFile(img); string(b) != "old image" {
		t.Fatalf("a failed rebuild changed the image: %q", b)
	}
	t.Setenv("FAIL", "")
	if err := Rebuild("/", "K", img); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if b, _ := os.ReadFile(img); string(b) != "new image\n" || string(args) != "--force --kver K "+rootfs.TempName(img, os.Getpid())+"\n" {
		t.Fatalf("image %q, generator args %q", b, args)
	}
	if st, _ := os.Stat(img); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v; want the old image's 0600", st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*kabiguard*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	t.Setenv("KERNEL_INSTALL_INITRD_GENERATOR", "none")
	if err := Rebuild("/", "K", img); err == nil || !strings.Contains(err.Error(), `"none"`) {
		t.Fatalf("generator none: %v", err)
	}
}

// TestRefreshHardlinkedCopy: a stale copy that is one of two hard links to the same inode
// cannot be replaced record by record (the other name would keep the old build); Refresh
// rewrites the whole archive instead, and every name of the group holds the new build.
func TestRefreshHardlinkedCopy(t *testing.T) {
	f := newRefreshFixture(t)
	want, _ := os.ReadFile(f.build50)
	dir := "usr/lib/modules/" + f.k53 + "/"
	stale, _ := os.ReadFile(f.own53)
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko", 0o644, stale),
		initramfs.Hardlink(dir+"extra/kabidemo.ko", dir+"weak-updates/kabidemo/kabidemo.ko"),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko:\n")),
	}
	img := filepath.Join(f.root, "boot", "initrd.img-"+f.k53)
	if err := (initramfs.Writer{Compression: compression.Gzip, MTime: 1}).WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
	im, err := initramfs.Open(img, initramfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = initramfs.RewriteFile(img, initramfs.Edit{Decide: func(rec initramfs.Entry) ([]byte, bool, bool, error) {
		return want, rec.Name == dir+"weak-updates/kabidemo/kabidemo.ko", false, nil
	}})
	im.Close()
	if !errors.Is(err, initramfs.ErrCannotEdit) {
		t.Fatalf("record-by-record rewrite of a hard link: %v, want ErrCannotEdit", err)
	}
	res, err := Refresh(f.root, f.k53, img, config.Default(), false)
	if err != nil || len(res.Replaced) != 2 { // both names are module paths of the kernel
		t.Fatalf("refresh: %+v %v", res, err)
	}
	for _, name := range []string{dir + "weak-updates/kabidemo/kabidemo.ko", dir + "extra/kabidemo.ko"} {
		if got := lsinitrdFile(t, img, name); !bytes.Equal(got, want) {
			t.Errorf("%s does not hold the 6.1.0-50 build after refresh", name)
		}
	}
	if rep, err := Verify(f.root, f.k53, img, config.Default()); err != nil || !rep.OK() {
		t.Fatalf("after refresh: %+v %v", rep, err)
	}
}

// A module file the tree has at the image's path but modules.dep does not list yet (depmod
// has not run since it came) is reported as such, and refresh refuses to drop it; once the
// real depmod ran, the same copy is current.
func TestRefreshKeepsModuleDepmodHasNotSeen(t *testing.T) {
	f := newRefreshFixture(t)
	data, err := os.ReadFile(f.own53)
	if err != nil {
		t.Fatal(err)
	}
	// kabidemo's 6.1.0-53 build, installed a second time under another name, as a kmod package
	// would put it, before its scriptlet ran depmod.
	host := testkit.Install(t, f.root, f.k53, "extra/late/late.ko", f.own53)
	inImage := "usr/lib/modules/" + f.k53 + "/extra/late/late.ko"
	img := filepath.Join(f.root, "boot", "initrd.img-"+f.k53)
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular(inImage, 0o644, data),
		initramfs.Regular("usr/lib/modules/"+f.k53+"/modules.dep", 0o644, []byte("extra/late/late.ko:\n")),
	}
	if err := (initramfs.Writer{Compression: compression.Gzip}).WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img)

	rep, err := Verify(f.root, f.k53, img, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Modules) != 1 || rep.Modules[0].State != ModNotInTree || rep.Modules[0].Unlisted != host {
		t.Fatalf("verify: %+v, want late not-in-tree with its host file %s", rep.Modules, host)
	}
	_, err = Refresh(f.root, f.k53, img, config.Default(), false)
	if err == nil || !strings.Contains(err.Error(), "run 'depmod -b "+f.root+" -a "+f.k53+"' first") || errors.Is(err, ErrNeedsRebuild) {
		t.Fatalf("refresh: %v, want a refusal naming depmod", err)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(after, before) {
		t.Fatal("the refused refresh changed the image")
	}

	if out, err := exec.Command("depmod", "-b", f.root, "-a", f.k53).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	rep, err = Verify(f.root, f.k53, img, config.Default())
	if err != nil || len(rep.Modules) != 1 || rep.Modules[0].State != ModCurrent {
		t.Fatalf("after depmod: %v %+v, want late current", err, rep)
	}

	// A dangling link in its place is no module depmod would index: the copy is dropped (the
	// image's only module: depmod then runs over an empty tree).
	if err := os.Remove(host); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/late.ko", host); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("depmod", "-b", f.root, "-a", f.k53).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	res, err := Refresh(f.root, f.k53, img, config.Default(), false)
	if err != nil || len(res.Removed) != 1 || res.Removed[0] != inImage {
		t.Fatalf("refresh with a dangling link in the tree: %v %+v, want %s dropped", err, res, inImage)
	}
}
