package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

type wmOut struct {
	code int
	out  string
}

// weakModulesIn runs weak-modules in-process within a deadline.
func weakModulesIn(t *testing.T, stdin string, args ...string) wmOut {
	t.Helper()
	return testkit.WithDeadline(t, time.Minute, "weak-modules "+strings.Join(args, " "), func() wmOut {
		var out bytes.Buffer
		code := run(args, strings.NewReader(stdin), &out, &out)
		return wmOut{code, out.String()}
	})
}

// Finding 13: a release that is no single directory name is a usage error (exit 2), and
// nothing under the root changes.
func TestInvalidReleaseRefused(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	before := treeState(t, root)
	for _, k := range []string{"../../../x", "..", ".", "a/b", "x/../" + testkit.SampleK53, ""} {
		for _, op := range []string{"--remove-kernel", "--add-kernel"} {
			got := weakModulesIn(t, "", "--basedir", root, op, k, "--no-initramfs")
			if got.code != 2 {
				t.Errorf("%s %q: exit %d\n%s", op, k, got.code, got.out)
			}
		}
	}
	if after := treeState(t, root); after != before {
		t.Errorf("the tree changed:\n%s\n---\n%s", before, after)
	}
}

// Finding 13: a mistyped --basedir is a usage error (exit 2) and nothing is created.
func TestMistypedBasedir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"--add-kernel", testkit.SampleK53}, {"--remove-kernel", testkit.SampleK53}, {"--add-modules", "--dry-run"}} {
		got := weakModulesIn(t, "", append([]string{"--basedir", root, "--no-initramfs"}, args...)...)
		if got.code != 2 || !strings.Contains(got.out, "no such root directory") {
			t.Errorf("%v: exit %d\n%s", args, got.code, got.out)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("%v created %s", args, root)
		}
	}
}

// Finding 8: a FIFO named x.ko in extra/ does not hang weak-modules; it is never opened, it is
// reported as a build that cannot be read (finding 11: exit 1 where the tree without it gives
// 0), and everything else is done as on the tree without it. --dry-run creates no lock file.
func TestFIFOModuleNoHangWeakModules(t *testing.T) {
	clean, hostile := testkit.SampleDemoRoot(t), testkit.SampleDemoRoot(t)
	fifo := filepath.Join(hostile, "lib/modules", testkit.SampleK50, "extra/x.ko")
	testkit.Mkfifo(t, fifo)
	for _, args := range [][]string{
		{"--add-kernel", testkit.SampleK53, "--dry-run"},
		{"--add-kernel", testkit.SampleK53, "--no-initramfs"},
		{"--add-modules", "--no-initramfs"},
	} {
		stdin := ""
		if args[0] == "--add-modules" {
			stdin = filepath.Join("lib/modules", testkit.SampleK50, "extra/kabidemo/kabidemo.ko.xz")
		}
		want := weakModulesIn(t, filepath.Join(clean, stdin), append([]string{"--basedir", clean}, args...)...)
		got := weakModulesIn(t, filepath.Join(hostile, stdin), append([]string{"--basedir", hostile}, args...)...)
		if want.code != 0 || got.code != 1 || !strings.Contains(got.out, fifo+": cannot be read") {
			t.Errorf("%v with a FIFO x.ko: exit %d (without it %d); want 1 naming %s\n%s", args, got.code, want.code, fifo, got.out)
		}
		if gl, wl := linksOf(t, hostile), linksOf(t, clean); gl != wl {
			t.Errorf("%v with a FIFO x.ko made other links:\n%s\nwithout it:\n%s", args, gl, wl)
		}
		if args[len(args)-1] == "--dry-run" {
			if _, err := os.Lstat(filepath.Join(hostile, "lib/modules/.kabiguard.lock")); !os.IsNotExist(err) {
				t.Errorf("--dry-run created the lock file")
			}
		}
	}
}

// linksOf lists the weak-updates links of a root, relative to it, with their targets.
func linksOf(t *testing.T, root string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(root, "lib", "modules"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel+" -> "+target)
		}
		return nil
	})
	return strings.Join(out, "\n")
}
