package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"golang.org/x/sys/unix"
)

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/src/kernels/K")
	mk("lib/modules/K")
	mk("lib/modules/OLD/extra")
	mk("lib/modules/NEW/weak-updates")
	link("/usr/src/kernels/K", "lib/modules/K/build")                        // RHEL: absolute
	link("/lib/modules/OLD/extra/x.ko", "lib/modules/NEW/weak-updates/x.ko") // RHEL weak link
	link("../../OLD/extra/y.ko", "lib/modules/NEW/weak-updates/y.ko")        // relative
	link("../../../../../../../../etc/passwd", "lib/modules/NEW/weak-updates/z.ko")
	link("loop", "lib/modules/NEW/loop")

	for rel, want := range map[string]string{
		"lib/modules/K/build/Module.symvers": "usr/src/kernels/K/Module.symvers",
		"lib/modules/NEW/weak-updates/x.ko":  "lib/modules/OLD/extra/x.ko",
		"lib/modules/NEW/weak-updates/y.ko":  "lib/modules/OLD/extra/y.ko",
		"/lib/modules/K":                     "lib/modules/K",
	} {
		got, err := Resolve(root, rel)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("Resolve(%s) = %s, %v; want %s", rel, got, err, want)
		}
	}
	if _, err := Resolve(root, "lib/modules/NEW/weak-updates/z.ko"); !errors.Is(err, ErrEscapes) {
		t.Errorf("escaping link: err = %v", err)
	}
	if _, err := Resolve(root, "lib/modules/NEW/loop"); err == nil {
		t.Errorf("self-referencing link resolved")
	}
	if !Within(root, filepath.Join(root, "a/b")) || Within(root, filepath.Dir(root)) || Within(root, root+"x/y") {
		t.Errorf("Within is wrong")
	}
}

func TestRootConfinesEveryOperation(t *testing.T) {
	outside := t.TempDir()
	decoy := filepath.Join(outside, "decoy")
	if err := os.WriteFile(decoy, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"lib/modules/K/extra", "lib/modules/N"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(dir, "lib/modules/N/weak-updates"))) // absolute, outside
	must(os.Symlink(decoy, filepath.Join(dir, "lib/modules/K/extra/abs.ko")))   // chroot: ROOT/<outside>/decoy
	must(os.Symlink("../../../../../"+outside+"/decoy", filepath.Join(dir, "lib/modules/K/extra/rel.ko")))
	must(syscall.Mkfifo(filepath.Join(dir, "lib/modules/K/extra/fifo.ko"), 0o644))

	r, err := Open(dir)
	must(err)
	defer r.Close()
	weak := r.Path("lib/modules/N/weak-updates")
	// The absolute link means ROOT/<outside>, which does not exist: nothing lands outside.
	if err := r.Symlink("x", filepath.Join(weak, "x.ko")); err == nil {
		t.Errorf("symlink created through a link whose target is missing inside the root")
	}
	if err := r.MkdirAll(filepath.Join(weak, "sub"), 0o755); err != nil {
		t.Fatalf("MkdirAll inside the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, outside, "sub")); err != nil {
		t.Errorf("MkdirAll did not follow the absolute link inside the root: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("the directory outside the root changed: %v", ents)
	}
	if _, err := r.ReadFile(r.Path("lib/modules/K/extra/abs.ko")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absolute link read: %v (want not-exist inside the root)", err)
	}
	if _, err := r.ReadFile(r.Path("lib/modules/K/extra/rel.ko")); !errors.Is(err, ErrEscapes) {
		t.Errorf("relative escaping link read: %v", err)
	}
	if _, err := r.ReadFile(r.Path("lib/modules/K/extra/fifo.ko")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("FIFO read: %v", err)
	}
	if _, err := r.ReadFile(filepath.Join(dir, "..", "x")); !errors.Is(err, ErrEscapes) {
		t.Errorf("path above the root: %v", err)
	}
	if _, err := r.ToolPath(filepath.Join(weak, "x.ko")); !errors.Is(err, ErrToolEscape) {
		t.Errorf("ToolPath through an absolute link out of the root: %v", err)
	}
	if p, err := r.ToolPath(r.Path("lib/modules/K")); err != nil || p != r.Path("lib/modules/K") {
		t.Errorf("ToolPath of a plain path: %s %v", p, err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoRoot) {
		t.Errorf("Open of a missing root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("Open created the missing root")
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Path("f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	fail := errors.New("boom")
	if err := r.WriteAtomic(p, 0o644, func(w io.Writer) error { w.Write([]byte("half")); return fail }); !errors.Is(err, fail) {
		t.Fatalf("failed write: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("failed write changed the file: %q", b)
	}
	if err := r.WriteAtomic(p, 0o644, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "new" || fi.Mode().Perm() != 0o644 {
		t.Errorf("after write: %q %v", b, fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left: %v", ents)
	}
}

// A replaced file keeps its owner and SELinux label: an initramfs in /boot or a config in
// /etc must not change hands or lose the label the boot loader's or a daemon's policy needs.
func TestCommitKeepsOwnerAndLabel(t *testing.T) {
	testkit.NeedsRoot(t, "owns a file as another user")
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Path("initrd.img")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	const uid, gid = 4321, 8765
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	label := []byte("system_u:object_r:boot_t:s0")
	labelled := unix.Setxattr(p, selinuxLabel, label, 0) == nil
	if err := r.WriteAtomic(p, 0, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid || fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced file is %d:%d %v, want %d:%d -rw-------", st.Uid, st.Gid, fi.Mode(), uid, gid)
	}
	if !labelled {
		t.Logf("this file system refuses %s; only the owner was checked", selinuxLabel)
		return
	}
	buf := make([]byte, 256)
	n, err := unix.Getxattr(p, selinuxLabel, buf)
	if err != nil || string(buf[:n]) != string(label) {
		t.Errorf("label after replace = %q, %v; want %q", buf[:max(n, 0)], err, label)
	}
}

// ".." after a symlink goes up from where the link points (chroot and kernel semantics), not
// lexically: modprobe reading "updates/link/../x.ko" loads the file beside the link's target,
// so kabiguard must judge that one too.
func TestDotDotAfterSymlinkIsPhysical(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"lib/modules/K/updates", "opt/vendor/drv"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	put := func(rel, data string) {
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("lib/modules/K/x.ko", "lexical")
	put("opt/vendor/x.ko", "physical")
	if err := os.Symlink("/opt/vendor/drv", filepath.Join(dir, "lib/modules/K/updates/link")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := dir + "/lib/modules/K/updates/link/../x.ko"
	host, _ := os.ReadFile(filepath.Join(dir, "opt/vendor/x.ko"))
	b, err := r.ReadFile(p)
	if err != nil || string(b) != string(host) {
		t.Errorf("ReadFile(%s) = %q, %v; want the file beside the link's target, %q", p, b, err, host)
	}
	if got, err := r.Resolve(p); err != nil || got != filepath.Join(dir, "opt/vendor/x.ko") {
		t.Errorf("Resolve(%s) = %s, %v", p, got, err)
	}
	if fi, err := r.Lstat(dir + "/lib/modules/K/updates/link/.."); err != nil || !fi.IsDir() {
		t.Errorf("Lstat of a path ending in '..': %v, %v", fi, err)
	}
	if _, err := r.ReadFile(dir + "/lib/modules/K/../../../../x"); !errors.Is(err, ErrEscapes) {
		t.Errorf("'..' above the root: err = %v, want ErrEscapes", err)
	}
}

// Only a regular file is replaced: a FIFO, a socket or a symlink at the path is somebody
// else's, and renaming over it would delete it. The temporary file goes; the path is as it was.
func TestWriteAtomicReplacesOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fifo, link := r.Path("kabiguard.prom"), r.Path("initrd.img")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("elsewhere", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, link} {
		err := r.WriteAtomic(p, 0o644, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("WriteAtomic over %s: err = %v, want ErrNotRegular", filepath.Base(p), err)
		}
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", fi, err)
	}
	if target, err := os.Readlink(link); err != nil || target != "elsewhere" {
		t.Errorf("the symlink was replaced: %q %v", target, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("temporary files left: %v", ents)
	}
}
