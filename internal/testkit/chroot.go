package testkit

// Debian 12 chroots for end-to-end tests: real apt, dpkg, DKMS and initramfs generators.
//
// scripts/debian-chroot.sh makes, once, a cached `debootstrap --variant=minbase bookworm` tree
// under $KABIGUARD_TEST_CACHE/chroot and runs commands chrooted in a private mount namespace
// (/proc, /sys, /dev and the shared .deb cache mounted only for the command's lifetime, so no
// mount outlives it and the host's mount table never changes). Each test gets its own copy:
// hard links for the bulk (dpkg and apt replace files by rename, so a hard-linked file is never
// written through), full copies of /etc and /var (the in-place writers: logs, debconf, dpkg's
// and apt's state). The copy's cleanup proves the cached tree was not written through.

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Chroot is one test's private Debian 12 tree.
type Chroot struct {
	Dir  string // the tree on the host
	tb   testing.TB
	base string
}

// chrootScript is the helper that builds the cache and runs commands.
func chrootScript() string { return filepath.Join(RepoDir(), "scripts", "debian-chroot.sh") }

// NewChroot copies the cached Debian 12 minbase tree (made on first use, which needs the
// archive and a few minutes) for tb and returns it. The copy is removed with tb's temporary
// directory; the cleanup fails tb if a file shared with the cache was changed in place.
func NewChroot(tb testing.TB) *Chroot {
	tb.Helper()
	NeedsRoot(tb, "debootstraps and chroots into a Debian 12 tree")
	start := time.Now()
	base := strings.TrimSpace(lastLine(run(tb, "", "sh", chrootScript(), "base")))
	dir := filepath.Join(tb.TempDir(), "root")
	unlock := lockChrootCache(tb)
	before := fingerprint(tb, base)
	copyChroot(tb, base, dir)
	unlock()
	tb.Cleanup(func() {
		if after := fingerprint(tb, base); after != before {
			tb.Errorf("the cached chroot %s changed while the test ran: something wrote through a hard link (an in-place writer outside /etc and /var)", base)
		}
	})
	tb.Logf("chroot %s ready in %s (from %s)", dir, time.Since(start).Round(time.Millisecond), base)
	return &Chroot{Dir: dir, tb: tb, base: base}
}

// lockChrootCache takes the lock the script takes while it builds or refreshes the cache.
func lockChrootCache(tb testing.TB) func() {
	tb.Helper()
	f, err := os.OpenFile(filepath.Join(CacheDir(), "chroot", ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	return func() { f.Close() }
}

// copyChroot makes dst a copy of the cached tree src: hard links everywhere, then real copies of
// etc/ and var/ (logs are appended, debconf and dpkg databases rewritten, not always by
// rename); apt's lists stay hard-linked (only `apt-get update` writes them, by rename).
func copyChroot(tb testing.TB, src, dst string) {
	tb.Helper()
	run(tb, "", "cp", "-al", src, dst)
	for _, d := range []string{"etc", "var"} {
		if err := os.RemoveAll(filepath.Join(dst, d)); err != nil {
			tb.Fatal(err)
		}
		run(tb, "", "cp", "-a", "--reflink=auto", filepath.Join(src, d), filepath.Join(dst, d))
	}
	lists := filepath.Join(dst, "var", "lib", "apt", "lists")
	if err := os.RemoveAll(lists); err != nil {
		tb.Fatal(err)
	}
	run(tb, "", "cp", "-al", filepath.Join(src, "var", "lib", "apt", "lists"), lists)
}

// fingerprint hashes name, inode, size and modification time of every file of the cached tree
// that copies share by hard link (all but etc/, var/, the cache's own markers and directories),
// so a write through any link shows.
func fingerprint(tb testing.TB, dir string) uint64 {
	tb.Helper()
	h := fnv.New64a()
	skip := map[string]bool{"etc": true, "var": true, ".done": true}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			// A copy's directories are its own (cp -al links files only), and a directory's
			// time changes whenever the script's put makes and drops a temporary file in it.
			fmt.Fprintf(h, "%s\x00dir\n", rel)
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%o\n", rel, st.Ino, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		return nil
	})
	if err != nil {
		tb.Fatalf("fingerprinting the cached chroot: %v", err)
	}
	return h.Sum64()
}

// For returns c bound to tb (a subtest): its failures then stop tb, not the test that made c.
func (c *Chroot) For(tb testing.TB) *Chroot {
	d := *c
	d.tb = tb
	return &d
}

// Path is the host path of the chroot's absolute path p.
func (c *Chroot) Path(p string) string { return filepath.Join(c.Dir, p) }

// Run runs `sh -c cmd` in the chroot and returns its interleaved stdout and stderr and its
// exit code (an error starting it fails the test). Every command and its time are logged.
func (c *Chroot) Run(cmd string) (string, int) {
	c.tb.Helper()
	start := time.Now()
	x := exec.Command("sh", chrootScript(), "run", c.Dir, cmd)
	var out bytes.Buffer
	x.Stdout, x.Stderr = &out, &out
	err := x.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		c.tb.Fatalf("chroot %s: %q: %v\n%s", c.Dir, cmd, err, out.String())
	}
	c.tb.Logf("[%6.1fs] chroot# %s  (exit %d)", time.Since(start).Seconds(), cmd, code)
	return out.String(), code
}

// MustRun runs cmd in the chroot and fails the test with its output unless it exits 0.
func (c *Chroot) MustRun(cmd string) string {
	c.tb.Helper()
	out, code := c.Run(cmd)
	if code != 0 {
		c.tb.Fatalf("chroot# %s: exit %d\n%s", cmd, code, out)
	}
	return out
}

// WriteFile writes the chroot's file p (absolute in the chroot), making its directory.
func (c *Chroot) WriteFile(p, data string) {
	c.tb.Helper()
	if err := os.MkdirAll(filepath.Dir(c.Path(p)), 0o755); err != nil {
		c.tb.Fatal(err)
	}
	if err := os.WriteFile(c.Path(p), []byte(data), 0o644); err != nil {
		c.tb.Fatal(err)
	}
}

// InstallKabiguard runs the project's `make install DESTDIR=<chroot>` as an admin would (the
// binaries are static, so they run in the chroot as built), building into a private bin dir so
// the repository's ./bin is left alone. It returns make's output.
func (c *Chroot) InstallKabiguard() string {
	c.tb.Helper()
	start := time.Now()
	bin := filepath.Join(c.tb.TempDir(), "bin")
	out := run(c.tb, "", "make", "-s", "-C", RepoDir(), "install", "DESTDIR="+c.Dir, "BIN="+bin,
		"GO="+GoTool())
	c.tb.Logf("[%6.1fs] make install DESTDIR=%s", time.Since(start).Seconds(), c.Dir)
	return out
}
