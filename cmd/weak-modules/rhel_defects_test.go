package main

// One test per defect of RHEL's weak-modules (../shared/reference/prior-art.md §1.11, R1-R12),
// each showing kabiguard's drop-in does not have it. Real kernels, real modules, real depmod;
// the only stand-ins are spies that record calls to depmod/modinfo/dracut, and one depmod that
// fails on purpose (fault injection).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// weakModulesRaw runs weak-modules with exactly args plus --basedir.
func (s *scenario) weakModulesRaw(stdin string, args ...string) (int, string) {
	var out bytes.Buffer
	code := run(append([]string{"--basedir", s.root}, args...), strings.NewReader(stdin), &out, &out)
	return code, out.String()
}

// spyDir makes a directory of wrapper scripts, put first on PATH, that log each call of the
// named tools to log and then run the real tool (or fail, when fail is set).
func spyDir(t *testing.T, fail bool, tools ...string) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(dir, "calls.log")
	for _, tool := range tools {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
		body := "#!/bin/sh\necho \"" + tool + " $*\" >>" + log + "\nexec " + real + " \"$@\"\n"
		if fail {
			body = "#!/bin/sh\necho \"" + tool + " $*\" >>" + log + "\necho '" + tool + ": injected failure' >&2\nexit 1\n"
		}
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return dir, log
}

func calls(t *testing.T, log, tool string) int {
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, tool+" ") {
			n++
		}
	}
	return n
}

// R1: RHEL reads symvers.xz with zcat, gets nothing and rejects every module. kabiguard reads
// a kernel's symvers in every compression from every place RHEL uses.
func TestR1SymversEveryCompression(t *testing.T) {
	for _, c := range []struct{ place, tool string }{
		{"boot/symvers-%s.xz", "xz"}, {"lib/modules/%s/symvers.zst", "zstd"}, {"boot/symvers-%s.gz", "gzip"},
	} {
		t.Run(c.tool, func(t *testing.T) {
			s := newScenario(t, abiA, abiB)
			A, B := rel(abiA), rel(abiB)
			s.install(A, "kabidemo", "")
			// B's exports only in the compressed file.
			src := filepath.Join(s.root, "usr", "src", "linux-headers-"+B, "Module.symvers")
			dst := filepath.Join(s.root, strings.Replace(c.place, "%s", B, 1))
			os.MkdirAll(filepath.Dir(dst), 0o755)
			out, err := exec.Command("sh", "-c", c.tool+" -c <"+src+" >"+dst).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v %s", c.tool, err, out)
			}
			os.Remove(src)
			s.mustWeakModules("", "--add-kernel", B)
			if !linkedModules(t, s.root, B)["kabidemo"] {
				t.Fatalf("kabidemo not linked into %s with only %s", B, dst)
			}
		})
	}
}

// R3: RHEL ignores .ko.zst modules. kabiguard links them and depmod indexes the link.
func TestR3ZstdModules(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", ".zst")
	s.mustWeakModules("", "--add-kernel", B)
	if !depmodIndexes(t, s.root, B, "weak-updates/kabidemo/kabidemo.ko.zst") {
		t.Fatalf("no indexed .ko.zst link in %s: %v", B, links(t, s.root))
	}
}

// R4: RHEL's --remove-modules keeps links while the file still exists (DKMS calls it before
// deleting), so they dangle afterwards, and skips depmod. kabiguard re-points them to another
// compatible build at once, or removes them, and runs depmod.
func TestR4RemoveModulesBeforeDeletion(t *testing.T) {
	s := newScenario(t, abiA, abiB, abiC)
	A, B, C := rel(abiA), rel(abiB), rel(abiC)
	for _, name := range []string{"kabiprov", "kabiuser"} {
		s.install(A, name, "")
		s.install(B, name, "")
	}
	s.install(B, "kabidemo", "")
	s.mustWeakModules("", "--add-kernel", C)
	before := links(t, s.root)
	// B's builds are about to go; the files still exist.
	var list []string
	for _, name := range []string{"kabiprov", "kabiuser", "kabidemo"} {
		list = append(list, filepath.Join(s.root, "lib/modules", B, "extra", name, name+".ko"))
	}
	s.mustWeakModules(strings.Join(list, "\n")+"\n", "--remove-modules")
	for l, target := range links(t, s.root) {
		if strings.Contains(target, "/"+B+"/") {
			t.Errorf("%s still points into the removed build: %s", l, target)
		}
	}
	for _, name := range []string{"kabiprov", "kabiuser"} {
		l := C + "/weak-updates/" + name + "/" + name + ".ko"
		if before[l] == "" || !strings.Contains(links(t, s.root)[l], "/"+A+"/") {
			t.Errorf("%s: was %q, want it re-pointed to A's build, got %q", l, before[l], links(t, s.root)[l])
		}
		if !depmodIndexes(t, s.root, C, "weak-updates/"+name+"/"+name+".ko") {
			t.Errorf("depmod did not re-index %s", C)
		}
	}
	for _, p := range list {
		os.Remove(p)
	}
	if d := dangling(t, s.root); len(d) > 0 {
		t.Fatalf("dangling after deletion: %v", d)
	}
}

// R5: RHEL's --add-modules is all-or-nothing per call. kabiguard decides per module: one
// incompatible module does not keep a compatible one out.
func TestR5PerModuleDecisions(t *testing.T) {
	s := newScenario(t, abiA, abiC)
	A, C := rel(abiA), rel(abiC)
	fromA := map[string]string{"kabidemo": s.builds[A]["kabidemo"], "kabiprov": s.builds[A]["kabiprov"]}
	rejected := s.rejectedByDepmod(C, fromA)
	if rejected["kabiprov"] || !rejected["kabidemo"] {
		t.Fatalf("fixture assumption broken: depmod rejects %v in %s; want kabidemo only", rejected, C)
	}
	list := s.install(A, "kabidemo", "") + "\n" + s.install(A, "kabiprov", "") + "\n"
	code, out := s.weakModules(list, "--add-modules")
	got := linkedModules(t, s.root, C)
	if code != 0 || !got["kabiprov"] || got["kabidemo"] {
		t.Fatalf("exit %d, linked %v; want kabiprov only\n%s", code, got, out)
	}
}

// R6: RHEL's --dry-run still runs dracut. kabiguard's changes nothing and runs nothing.
func TestR6DryRunRunsNothing(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", "")
	img := s.staleImage(t, B)
	imgBefore, _ := os.ReadFile(img)
	_, log := spyDir(t, false, "depmod", "dracut")
	before := treeState(t, s.root)
	code, out := s.weakModulesRaw("", "--add-kernel", B, "--dry-run", "--dracut", "dracut")
	if code != 0 || !strings.Contains(out, "kabidemo") {
		t.Fatalf("exit %d; want the planned link printed:\n%s", code, out)
	}
	if n := calls(t, log, "dracut") + calls(t, log, "depmod"); n != 0 {
		t.Fatalf("--dry-run ran %d tools", n)
	}
	if treeState(t, s.root) != before {
		t.Fatal("--dry-run changed the tree")
	}
	if imgAfter, _ := os.ReadFile(img); !bytes.Equal(imgBefore, imgAfter) {
		t.Fatal("--dry-run changed the initramfs")
	}
}

// R7: RHEL el9 needs dracut even with --no-initramfs. kabiguard does not look for it.
func TestR7NoInitramfsNeedsNoDracut(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", "")
	code, out := s.weakModulesRaw("", "--add-kernel", B, "--no-initramfs", "--dracut", "/nonexistent/dracut")
	if code != 0 || !linkedModules(t, s.root, B)["kabidemo"] {
		t.Fatalf("exit %d, links %v\n%s", code, links(t, s.root), out)
	}
}

// R8: RHEL validates with a priority order that differs from the runtime one. kabiguard never
// weak-links a module the kernel has itself (updates/ here), and the real depmod with the
// root's depmod.d decides what modprobe loads.
func TestR8NativeBuildWins(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", "")
	native := filepath.Join("updates", "kabidemo.ko")
	os.MkdirAll(filepath.Join(s.root, "lib/modules", B, "updates"), 0o755)
	copyFile(t, s.builds[B]["kabidemo"], filepath.Join(s.root, "lib/modules", B, native))
	testkit.Depmod(t, s.root, B) // the package that put it there indexes it
	s.mustWeakModules("", "--add-kernel", B)
	if linkedModules(t, s.root, B)["kabidemo"] {
		t.Fatalf("weak link made although %s has its own build", B)
	}
	if !depmodIndexes(t, s.root, B, native) {
		t.Fatal("modules.dep does not resolve kabidemo to the native build")
	}
}

// R9: RHEL identifies modules by file name. kabiguard uses the module's own name (.modinfo),
// like the loader: a renamed file of a module the kernel already has is not linked twice.
func TestR9IdentityByModuleName(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	os.MkdirAll(filepath.Join(s.root, "lib/modules", A, "extra", "vendor"), 0o755)
	copyFile(t, s.builds[A]["kabiprov"], filepath.Join(s.root, "lib/modules", A, "extra", "vendor", "kabiprov-1.2.ko"))
	s.install(B, "kabiprov", "")
	s.mustWeakModules("", "--add-kernel", B)
	if l := links(t, s.root); len(l) != 0 {
		t.Fatalf("%s has kabiprov; a renamed build of it was linked anyway: %v", B, l)
	}
	var out bytes.Buffer
	runKabiguard(t, &out, "status", "--root", s.root)
	if !strings.Contains(out.String(), "kabiprov-1.2.ko") || strings.Contains(out.String(), "kabiprov_1.2") {
		t.Fatalf("status does not show the renamed file as module kabiprov:\n%s", out.String())
	}
}

// R10: RHEL exits 0 after a failed depmod. kabiguard exits non-zero and names the failure.
func TestR10FailuresPropagate(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", "")
	spyDir(t, true, "depmod")
	code, out := s.weakModulesRaw("", "--add-kernel", B, "--no-initramfs")
	if code == 0 || !strings.Contains(out, "injected failure") {
		t.Fatalf("exit %d with a failing depmod:\n%s", code, out)
	}
}

// R11: RHEL forks per module and runs depmod per validation. kabiguard reads modules
// in-process and runs depmod exactly once per changed kernel, modinfo never.
func TestR11OneDepmodPerChangedKernel(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	for _, name := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		s.install(A, name, ".xz")
	}
	_, log := spyDir(t, false, "depmod", "modinfo")
	s.mustWeakModules("", "--add-kernel", B)
	if len(linkedModules(t, s.root, B)) != 3 {
		t.Fatalf("want 3 links in %s, got %v", B, links(t, s.root))
	}
	if d, m := calls(t, log, "depmod"), calls(t, log, "modinfo"); d != 1 || m != 0 {
		t.Fatalf("depmod ran %d times, modinfo %d; want 1 and 0", d, m)
	}
}

// R12: RHEL reuses the previous kernel's module groups for a kernel whose extra/ is empty.
// kabiguard plans every kernel from what is on disk: an empty extra/ changes nothing.
func TestR12EmptyExtra(t *testing.T) {
	s := newScenario(t, abiA, abiB, abiC)
	A, B, C := rel(abiA), rel(abiB), rel(abiC)
	for _, name := range []string{"kabiprov", "kabiuser"} {
		s.install(A, name, "")
	}
	os.MkdirAll(filepath.Join(s.root, "lib/modules", B, "extra"), 0o755)
	s.mustWeakModules("", "--add-kernel", B)
	s.mustWeakModules("", "--add-kernel", C)
	for _, k := range []string{B, C} {
		got := linkedModules(t, s.root, k)
		if !got["kabiprov"] || !got["kabiuser"] || len(got) != 2 {
			t.Errorf("%s: linked %v, want the pair from %s", k, got, A)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// R2: RHEL's weak-modules silently throws away a zstd initramfs it cannot read. kabiguard's
// refreshes it in place: still zstd, now holding the build the new link resolves to (dracut's
// lsinitrd reads it back).
func TestR2ZstdInitramfs(t *testing.T) {
	s := newScenario(t, abiA, abiB)
	A, B := rel(abiA), rel(abiB)
	s.install(A, "kabidemo", "")
	img := s.staleImage(t, B)
	dir := "usr/lib/modules/" + B + "/"
	_, log := spyDir(t, false, "dracut")
	code, out := s.weakModulesRaw("", "--add-kernel", B)
	if code != 0 || !strings.Contains(out, "refreshed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if n := calls(t, log, "dracut"); n != 0 {
		t.Fatalf("dracut ran %d times; a refresh was enough", n)
	}
	im, err := initramfs.Open(img, initramfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if c := im.Segments[len(im.Segments)-1].Compression; c != compression.Zstd {
		t.Fatalf("image is now %s", c)
	}
	got, err := exec.Command("lsinitrd", "-f", dir+"weak-updates/kabidemo/kabidemo.ko", img).Output()
	want, _ := os.ReadFile(s.builds[A]["kabidemo"])
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("lsinitrd: %v; the image does not hold %s's build", err, A)
	}
}

// staleImage writes release's initramfs (zstd) holding release's own old kabidemo build at
// the path its weak link will take, as an image made before the link existed.
func (s *scenario) staleImage(t *testing.T, release string) string {
	t.Helper()
	dir := "usr/lib/modules/" + release + "/"
	old, _ := os.ReadFile(s.builds[release]["kabidemo"])
	crc, err := os.ReadFile(filepath.Join(s.root, "lib/modules", release, "kernel/lib/crc-itu-t.ko"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(s.root, "boot", "initrd.img-"+release)
	w := initramfs.Writer{Compression: compression.Zstd, MTime: 1700000000}
	if err := w.WriteFile(img, []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko", 0o644, old),
		initramfs.Regular(dir+"kernel/lib/crc-itu-t.ko", 0o644, crc),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko:\nkernel/lib/crc-itu-t.ko:\n")),
	}); err != nil {
		t.Fatal(err)
	}
	return img
}
