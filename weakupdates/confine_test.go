package weakupdates

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
)

type syncOut struct {
	res *Result
	err error
}

// syncRoot runs Sync of root as `kabiguard link --no-initramfs` does (the real depmod
// included), within a deadline.
func syncRoot(t *testing.T, root string, dryRun bool) (*Result, error) {
	t.Helper()
	cfg, err := config.Load(root)
	if err != nil {
		return nil, err
	}
	out := testkit.WithDeadline(t, time.Minute, "Sync", func() syncOut {
		r, e := Sync(cfg, SyncOptions{Root: root, DryRun: dryRun})
		return syncOut{r, e}
	})
	return out.res, out.err
}

func syncErr(t *testing.T, root string) error {
	t.Helper()
	_, err := syncRoot(t, root, false)
	return err
}

// links lists the symlinks below dir (relative path -> target).
func linksUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink != 0 {
			rel, _ := filepath.Rel(dir, p)
			out[rel], _ = os.Readlink(p)
		}
		return nil
	})
	return out
}

// Finding 1: a kernel's weak-updates that is a symlink out of the root, by an absolute target
// (which depmod -b and the kernel would follow on the host) or by a relative one climbing out,
// is refused with one error naming it; nothing is written outside, an existing symlink there is
// not overwritten, and the other kernels are still linked.
func TestWeakUpdatesSymlinkOutsideRootRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		relative bool
		want     error
	}{
		{"absolute", false, rootfs.ErrToolEscape},
		{"relative", true, rootfs.ErrEscapes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			dec := testkit.NewDecoys(t)
			dec.Write(t, "wu/README", "an admin's directory\n")
			must(t, os.Symlink("/etc/hostname", filepath.Join(dec.Dir, "wu/kabiprov.ko.xz")))
			must(t, os.MkdirAll(filepath.Join(dec.Dir, "wu/kabidemo"), 0o755))
			must(t, os.Symlink("/etc/hostname", filepath.Join(dec.Dir, "wu/kabidemo/kabidemo.ko.xz")))
			dec.Seal(t)
			weak := filepath.Join(kmod.ModulesDir(root, k53), "weak-updates")
			target := filepath.Join(dec.Dir, "wu")
			if tc.relative {
				target, _ = filepath.Rel(filepath.Dir(weak), target)
			}
			must(t, os.Symlink(target, weak))

			err := syncErr(t, root)
			if err == nil {
				t.Fatal("link through a weak-updates outside the root succeeded")
			}
			if !errors.Is(err, tc.want) && !strings.Contains(err.Error(), tc.want.Error()) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), weak) {
				t.Errorf("error %q does not name %s", err, weak)
			}
			dec.Unchanged(t)
			if !tc.relative {
				// The other kernels are linked all the same.
				if got := linksUnder(t, filepath.Join(kmod.ModulesDir(root, k54), "weak-updates")); len(got) != 2 {
					t.Errorf("6.1.0-54 links: %v, want kabiprov and kabiuser", got)
				}
			}
			// Every run refuses again, never "up to date".
			if err := syncErr(t, root); err == nil {
				t.Error("second run succeeded")
			}
			dec.Unchanged(t)
		})
	}
}

// Finding 1: an absolute lib symlink in the root (lib -> /H/lib) means the root's H/lib for
// kabiguard, but the host's /H/lib for depmod -b: no link is written and depmod is not run.
// /H is a decoy holding a copy of the tree, as a host would; it must not change.
func TestAbsoluteLibSymlinkRefused(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	dec := testkit.NewDecoys(t)
	host := filepath.Join(dec.Dir, "lib")
	inRoot := filepath.Join(root, host)
	must(t, os.MkdirAll(filepath.Dir(inRoot), 0o755))
	must(t, os.Rename(filepath.Join(root, "lib"), inRoot))
	must(t, os.MkdirAll(dec.Dir, 0o755))
	must(t, exec.Command("cp", "-a", inRoot, host).Run())
	dec.Seal(t)
	must(t, os.Symlink(host, filepath.Join(root, "lib")))

	err := syncErr(t, root)
	if err == nil || !strings.Contains(err.Error(), rootfs.ErrToolEscape.Error()) {
		t.Fatalf("link with an absolute lib symlink: %v, want a refusal (%v)", err, rootfs.ErrToolEscape)
	}
	dec.Unchanged(t)
	for _, k := range []string{k53, k54} {
		if got := linksUnder(t, filepath.Join(inRoot, "modules", k)); len(got) != 0 {
			t.Errorf("%s: links written in a refused kernel: %v", k, got)
		}
		if _, err := os.Stat(filepath.Join(inRoot, "modules", k, "modules.dep")); err == nil {
			t.Errorf("%s: depmod ran", k)
		}
	}
}

// Finding 1: Depmod itself refuses a kernel directory the host resolves elsewhere.
func TestDepmodRefusesHostEscape(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	dec := testkit.NewDecoys(t)
	dec.Write(t, "k/kernel/placeholder", "x\n")
	dec.Seal(t)
	dir := kmod.ModulesDir(root, "6.1.0-99-amd64")
	must(t, os.Symlink(filepath.Join(dec.Dir, "k"), dir))
	err := kmod.Depmod(root, "6.1.0-99-amd64", "")
	if !errors.Is(err, rootfs.ErrToolEscape) {
		t.Fatalf("Depmod: %v, want %v", err, rootfs.ErrToolEscape)
	}
	dec.Unchanged(t)
}

// Finding 13: a mistyped root is an error and nothing is created, not even by Lock.
func TestLockMistypedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "no-such-root")
	if _, err := Lock(root); !errors.Is(err, rootfs.ErrNoRoot) {
		t.Fatalf("Lock: %v, want %v", err, rootfs.ErrNoRoot)
	}
	if _, err := Sync(config.Default(), SyncOptions{Root: root}); !errors.Is(err, rootfs.ErrNoRoot) {
		t.Fatalf("Sync: %v, want %v", err, rootfs.ErrNoRoot)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatalf("%s was created", root)
	}
}

// Finding 13: a dry run takes no lock (it completes while another process holds it) and
// creates no file, not even the lock file.
func TestDryRunTakesNoLock(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	lock := filepath.Join(root, "lib/modules/.kabiguard.lock")
	res, err := syncRoot(t, root, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if len(res.Changes) == 0 {
		t.Fatal("dry run found nothing to do on a fresh root")
	}
	if _, err := os.Lstat(lock); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s", lock)
	}
	for _, k := range []string{k53, k54} {
		if _, err := os.Lstat(filepath.Join(kmod.ModulesDir(root, k), "weak-updates")); !os.IsNotExist(err) {
			t.Errorf("dry run created %s's weak-updates", k)
		}
		if _, err := os.Lstat(depmodMarker(root, k)); !os.IsNotExist(err) {
			t.Errorf("dry run left a depmod marker in %s", k)
		}
	}
	unlock, err := Lock(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := syncRoot(t, root, true); err != nil { // fails the test if it waits for the lock
		t.Fatalf("dry run under another's lock: %v", err)
	}
}

// Finding 13: a directory where a link goes is called a directory.
func TestDirectoryAtLinkPathNamed(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	in := filepath.Join(kmod.ModulesDir(root, k54), "weak-updates/kabiprov/kabiprov.ko.xz")
	must(t, os.MkdirAll(in, 0o755))
	err := syncErr(t, root)
	if err == nil || !strings.Contains(err.Error(), in+": a directory is in the way") {
		t.Fatalf("link: %v, want %s called a directory", err, in)
	}
	if strings.Contains(err.Error(), "regular file") {
		t.Errorf("a directory called a regular file: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Finding 1, the other side: symlinks within the root are followed there, as long as the
// relative links made through them still lead to their builds (the kernel and depmod resolve
// them from where they land): merged /usr's relative lib -> usr/lib passes; a weak-updates
// that lives elsewhere in the root is refused with the reason, and no dangling link is made.
func TestDirectorySymlinksWithinRoot(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	must(t, os.MkdirAll(filepath.Join(root, "usr"), 0o755))
	must(t, os.Rename(filepath.Join(root, "lib"), filepath.Join(root, "usr/lib")))
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	modules := filepath.Join(root, "usr/lib/modules")
	must(t, os.MkdirAll(filepath.Join(root, "srv/weak54"), 0o755))
	must(t, os.Symlink("../../../../srv/weak54", filepath.Join(modules, k54, "weak-updates")))

	_, err := syncRoot(t, root, false)
	if err == nil || !strings.Contains(err.Error(), ErrLinkWouldDangle.Error()) || !strings.Contains(err.Error(), k54) || strings.Contains(err.Error(), k53) {
		t.Fatalf("link: %v, want 6.1.0-54 refused (%v), 6.1.0-53 linked", err, ErrLinkWouldDangle)
	}
	if got := linksUnder(t, filepath.Join(root, "srv/weak54")); len(got) != 0 {
		t.Errorf("links that dangle were made: %v", got)
	}
	got := linksUnder(t, filepath.Join(modules, k53, "weak-updates"))
	if len(got) != 3 {
		t.Errorf("6.1.0-53 links through lib -> usr/lib: %v", got)
	}
	for rel := range got {
		if _, err := os.Stat(filepath.Join(modules, k53, "weak-updates", rel)); err != nil {
			t.Errorf("6.1.0-53: %v", err)
		}
	}
	dep, _ := os.ReadFile(filepath.Join(modules, k53, "modules.dep"))
	if !strings.Contains(string(dep), "weak-updates/kabidemo/kabidemo.ko.xz") {
		t.Errorf("depmod did not index the links of 6.1.0-53:\n%s", dep)
	}
	// The second run has nothing to do for 6.1.0-53 and refuses 6.1.0-54 again.
	res, err := syncRoot(t, root, false)
	if err == nil {
		t.Error("second run succeeded")
	}
	for _, c := range res.Changes {
		if c.Kernel == k53 {
			t.Errorf("second run changes 6.1.0-53 again: %+v", c)
		}
	}
}

// Finding 1: a directory inside weak-updates that is a symlink out of the root (weak-updates/
// kabiprov -> /elsewhere) never gets a link written through it, and what is there is not
// overwritten. Where it leads to nothing inside the root (climbing out, or an absolute target
// the root lacks) it is a dangling link, replaced by the directory and link the plan wants; where
// the root has its target but the host's depmod would follow it to the host's, it is refused.
func TestLinkDirectorySymlinkOutsideRoot(t *testing.T) {
	for _, tc := range []string{"relative", "absolute-dangling", "absolute-existing"} {
		t.Run(tc, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			dec := testkit.NewDecoys(t)
			dec.Write(t, "d/README", "x\n")
			must(t, os.Symlink("/etc/hostname", filepath.Join(dec.Dir, "d/kabiprov.ko.xz")))
			dec.Seal(t)
			at := filepath.Join(kmod.ModulesDir(root, k54), "weak-updates/kabiprov")
			must(t, os.MkdirAll(filepath.Dir(at), 0o755))
			target := filepath.Join(dec.Dir, "d")
			switch tc {
			case "relative":
				target, _ = filepath.Rel(filepath.Dir(at), target)
			case "absolute-existing":
				must(t, os.MkdirAll(filepath.Join(root, target), 0o755))
			}
			must(t, os.Symlink(target, at))
			err := syncErr(t, root)
			if tc == "absolute-existing" {
				if err == nil || !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), rootfs.ErrToolEscape.Error()) {
					t.Errorf("link: %v, want %s refused (%v)", err, at, rootfs.ErrToolEscape)
				}
				if got := linksUnder(t, filepath.Join(root, target)); len(got) != 0 {
					t.Errorf("links written through it: %v", got)
				}
			} else {
				if err != nil {
					t.Errorf("link: %v", err)
				}
				if _, err := os.Stat(filepath.Join(at, "kabiprov.ko.xz")); err != nil {
					t.Errorf("the link is not made: %v", err)
				}
			}
			dec.Unchanged(t)
		})
	}
}
