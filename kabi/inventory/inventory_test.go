package inventory

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

func scan(t *testing.T, root string) (*Inventory, error) {
	t.Helper()
	type out struct {
		inv *Inventory
		err error
	}
	o := testkit.WithDeadline(t, 30*time.Second, "Scan", func() out {
		inv, err := Scan(root)
		return out{inv, err}
	})
	return o.inv, o.err
}

func build(inv *Inventory, release, name string) *Build {
	for _, b := range inv.Tree(release).Builds {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Finding 8: a FIFO (or a directory) named x.ko in extra/ is a build that cannot be read, with
// the reason; it is never opened for reading, so the scan does not block.
func TestNonRegularModuleIsUnreadableBuild(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	extra := filepath.Join(root, "lib/modules", testkit.SampleK50, "extra")
	testkit.Mkfifo(t, filepath.Join(extra, "x.ko"))
	inv, err := scan(t, root)
	if err != nil {
		t.Fatal(err)
	}
	b := build(inv, testkit.SampleK50, "x")
	if b == nil || b.Err == nil || b.Module != nil {
		t.Fatalf("FIFO x.ko: %+v, want a build that cannot be read", b)
	}
	if !errors.Is(b.Err, rootfs.ErrNotRegular) || !strings.Contains(b.Err.Error(), "FIFO") || !strings.Contains(b.Err.Error(), "x.ko") {
		t.Errorf("FIFO x.ko: %v, want the path and why (not a regular file, FIFO)", b.Err)
	}
	if build(inv, testkit.SampleK50, "kabidemo") == nil || build(inv, testkit.SampleK50, "kabidemo").Err != nil {
		t.Error("the other builds are not read")
	}
}

// Finding 1: a module symlink in extra/ to an absolute path means that path inside the root,
// never the host's file (here a real module outside the root that must not be read).
func TestModuleSymlinkReadInsideRoot(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	dec := testkit.NewDecoys(t)
	src, _ := os.ReadFile(filepath.Join(root, "lib/modules", testkit.SampleK50, "extra/kabidemo/kabidemo.ko.xz"))
	host := dec.Write(t, "host.ko.xz", string(src))
	dec.Seal(t)
	extra := filepath.Join(root, "lib/modules", testkit.SampleK50, "extra")
	if err := os.Symlink(host, filepath.Join(extra, "evil.ko.xz")); err != nil {
		t.Fatal(err)
	}
	inv, err := scan(t, root)
	if err != nil {
		t.Fatal(err)
	}
	b := build(inv, testkit.SampleK50, "evil")
	if b == nil || b.Err == nil || !errors.Is(b.Err, fs.ErrNotExist) {
		t.Fatalf("evil.ko.xz -> %s: %+v, want the root's (absent) file, not the host's", host, b)
	}
	dec.Unchanged(t)
	// The same link made relative to the root's own build is followed.
	if err := os.Remove(filepath.Join(extra, "evil.ko.xz")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/lib/modules/"+testkit.SampleK50+"/extra/kabidemo/kabidemo.ko.xz", filepath.Join(extra, "evil.ko.xz"))
	inv, err = scan(t, root)
	if err != nil {
		t.Fatal(err)
	}
	// Its modinfo name is kabidemo; the lexically first path of the two wins (dedupe).
	if b := build(inv, testkit.SampleK50, "kabidemo"); b == nil || b.Err != nil || filepath.Base(b.Path) != "evil.ko.xz" {
		t.Fatalf("an absolute link within the root is not read: %+v", b)
	}
}

// Finding 1: a weak-updates or kernel directory that climbs out of the root is refused by name.
func TestDirectorySymlinkOutOfRootRefused(t *testing.T) {
	for _, which := range []string{"weak-updates", "kernel-dir"} {
		t.Run(which, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			dec := testkit.NewDecoys(t)
			dec.Write(t, "d/x.ko", "not a module\n")
			dec.Seal(t)
			at := filepath.Join(root, "lib/modules", testkit.SampleK53, "weak-updates")
			if which == "kernel-dir" {
				at = filepath.Join(root, "lib/modules", "6.1.0-99-amd64")
			}
			rel, _ := filepath.Rel(filepath.Dir(at), filepath.Join(dec.Dir, "d"))
			if err := os.Symlink(rel, at); err != nil {
				t.Fatal(err)
			}
			_, err := scan(t, root)
			if !errors.Is(err, rootfs.ErrEscapes) || !strings.Contains(err.Error(), at) {
				t.Fatalf("scan: %v, want %s refused (%v)", err, at, rootfs.ErrEscapes)
			}
			dec.Unchanged(t)
		})
	}
}

// A mistyped root is an error, not an empty system.
func TestScanMistypedRoot(t *testing.T) {
	if _, err := Scan(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, rootfs.ErrNoRoot) {
		t.Fatalf("Scan: %v, want %v", err, rootfs.ErrNoRoot)
	}
}
