package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Releases of the embedded sample (testdata/sample).
const (
	SampleK50 = "6.1.0-50-amd64"
	SampleK53 = "6.1.0-53-amd64"
	SampleK54 = "6.1.0-54-amd64"
)

// SampleDemoRoot builds in a fresh directory the root scripts/demo.sh has at its step 3, from
// the embedded sample, offline, in milliseconds: kernels 6.1.0-50, -53 and -54 (symvers and
// one in-tree module each), kabidemo, kabiprov and kabiuser in 6.1.0-50's extra/, "kabidemo
// early" in etc/kabiguard/required.d/demo.conf and kabiguard's depmod.d file. No link is made
// and no depmod has run.
func SampleDemoRoot(tb testing.TB) string {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "root")
	sample := filepath.Join(RepoDir(), "testdata", "sample")
	for _, k := range []string{SampleK50, SampleK53, SampleK54} {
		copyTree(tb, filepath.Join(sample, "kernels", k), filepath.Join(root, "lib", "modules", k))
	}
	for _, m := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		copyFile(tb, filepath.Join(sample, "modules", SampleK50, m+".ko.xz"),
			filepath.Join(filepath.Join(root, "lib", "modules", SampleK50), "extra", m, m+".ko.xz"))
	}
	writeFile(tb, filepath.Join(root, "etc/kabiguard/required.d/demo.conf"), "kabidemo early\n")
	copyFile(tb, filepath.Join(RepoDir(), "depmod.d", "kabiguard.conf"), filepath.Join(root, "etc/depmod.d/kabiguard.conf"))
	return root
}

// Decoys is a directory outside every root under test, with files a confined command must never
// write (nor, through a symlink, read as if they were the root's). Unchanged fails the test if
// anything in it changed: a file's content, a symlink's target, an entry added or removed.
type Decoys struct {
	Dir  string
	sums string
}

// NewDecoys makes the decoy directory; fill it (files, directories, symlinks), then call Seal.
func NewDecoys(tb testing.TB) *Decoys {
	tb.Helper()
	return &Decoys{Dir: filepath.Join(tb.TempDir(), "decoys")}
}

// Write puts a decoy file at rel, with content.
func (d *Decoys) Write(tb testing.TB, rel, content string) string {
	tb.Helper()
	p := filepath.Join(d.Dir, rel)
	writeFile(tb, p, content)
	return p
}

// Seal records the checksums that Unchanged compares against.
func (d *Decoys) Seal(tb testing.TB) { tb.Helper(); d.sums = d.checksums(tb) }

// Unchanged fails tb when anything below Dir changed since Seal.
func (d *Decoys) Unchanged(tb testing.TB) {
	tb.Helper()
	if now := d.checksums(tb); now != d.sums {
		tb.Errorf("files outside the root changed:\nbefore:\n%s\nafter:\n%s", d.sums, now)
	}
}

func (d *Decoys) checksums(tb testing.TB) string {
	tb.Helper()
	var lines []string
	if _, err := os.Lstat(d.Dir); os.IsNotExist(err) {
		return "(absent)" // a host directory that must not come to exist
	}
	err := filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.Dir, p)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			lines = append(lines, rel+" -> "+t)
		case e.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			lines = append(lines, rel+" "+hex.EncodeToString(sum[:]))
		default:
			lines = append(lines, rel+" "+e.Type().String())
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Mkfifo makes a FIFO at p (its directory created).
func Mkfifo(tb testing.TB, p string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mkfifo", p).CombinedOutput(); err != nil {
		tb.Fatalf("mkfifo %s: %v %s", p, err, out)
	}
}

// WithDeadline runs fn in a goroutine and fails tb if it has not returned within d: a command
// that blocks on a FIFO must not hang the test run with it.
func WithDeadline[T any](tb testing.TB, d time.Duration, what string, fn func() T) T {
	tb.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		tb.Fatalf("%s did not return within %v (blocked?)", what, d)
	}
	panic("unreachable")
}

func copyTree(tb testing.TB, src, dst string) {
	tb.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		copyFile(tb, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, dst, string(data))
}

func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// DKMSInstalled records under root, as DKMS does for a build it installed, that module name's
// build for kernel is DKMS's (var/lib/dkms/NAME/1.0/KERNEL/x86_64/module/NAME.ko.xz): DKMS
// removes it with that kernel.
func DKMSInstalled(tb testing.TB, root, name, kernel string) {
	tb.Helper()
	writeFile(tb, filepath.Join(root, "var/lib/dkms", name, "1.0", kernel, "x86_64", "module", name+".ko.xz"), "")
}
