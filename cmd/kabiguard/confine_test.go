package main

// Hostile trees against the commands, on the embedded sample (offline, seconds): nothing is
// written or read outside --root, no FIFO hangs a command, a mistyped --root is an error, and
// link --dry-run neither locks nor fails where the real run succeeds.

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
)

type cmdOut struct {
	code   int
	stdout string
	stderr string
}

// kabiguard runs the command in-process within a deadline (a FIFO opened for reading would
// block it forever).
func kabiguard(t *testing.T, args ...string) cmdOut {
	t.Helper()
	return testkit.WithDeadline(t, time.Minute, "kabiguard "+strings.Join(args, " "), func() cmdOut {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return cmdOut{code, out.String(), errOut.String()}
	})
}

// sampleImage writes ROOT/boot/initramfs-RELEASE.img as scripts/demo-initrd does.
func sampleImage(t *testing.T, root, release string) {
	t.Helper()
	dir := kmod.ModulesDir(root, release)
	files := []initramfs.File{initramfs.Symlink("lib", "usr/lib"), initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n"))}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !kmod.IsModule(rel) && !strings.HasPrefix(rel, "modules.") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, initramfs.Regular("usr/lib/modules/"+release+"/"+filepath.ToSlash(rel), 0o644, data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(root, "boot", "initramfs-"+release+".img")
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (initramfs.Writer{Compression: compression.Zstd}).WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
}

// Finding 8: a FIFO named x.ko in extra/ hangs none of link, status and gate. status and the
// gate answer as they do on the same tree without it; link does the same work but, since a
// build could not be read (finding 11), exits non-zero naming it.
func TestFIFOModuleNoHang(t *testing.T) {
	clean, hostile := testkit.SampleDemoRoot(t), testkit.SampleDemoRoot(t)
	testkit.Mkfifo(t, filepath.Join(kmod.ModulesDir(hostile, testkit.SampleK50), "extra/x.ko"))
	for _, args := range [][]string{
		{"link", "--no-initramfs"},
		{"status"},
		{"gate", "-k", testkit.SampleK53},
		{"link"},
	} {
		want := kabiguard(t, append(args, "--root", clean)...)
		got := kabiguard(t, append(args, "--root", hostile)...)
		switch {
		case args[0] == "link" && (want.code != 0 || got.code == 0 || !strings.Contains(got.stderr, "extra/x.ko: cannot be read")):
			t.Errorf("%v with a FIFO x.ko: exit %d (without it %d); want non-zero naming x.ko\n%s%s", args, got.code, want.code, got.stdout, got.stderr)
		case args[0] != "link" && got.code != want.code:
			t.Errorf("%v with a FIFO x.ko: exit %d, without %d\n%s%s", args, got.code, want.code, got.stdout, got.stderr)
		}
	}
	if got := kabiguard(t, "status", "--root", hostile); !strings.Contains(got.stdout, "x ") {
		t.Errorf("status does not show the unreadable build x:\n%s", got.stdout)
	}
}

// Finding 8: a FIFO as the configuration file is an error naming it, at once.
func TestFIFOConfigNoHang(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	conf := filepath.Join(root, "etc/kabiguard/kabiguard.conf")
	testkit.Mkfifo(t, conf)
	for _, args := range [][]string{{"link"}, {"status"}, {"gate", "-k", testkit.SampleK53}} {
		got := kabiguard(t, append(args, "--root", root)...)
		if got.code != 2 || !strings.Contains(got.stderr, conf+": not a regular file (FIFO)") {
			t.Errorf("%v with a FIFO config: exit %d\n%s", args, got.code, got.stderr)
		}
	}
}

// Finding 13: a mistyped --root is an error (exit 2) and nothing is created.
func TestMistypedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"link"}, {"link", "--dry-run"}, {"status"}, {"gate", "-k", testkit.SampleK53}} {
		got := kabiguard(t, append(args, "--root", root)...)
		if got.code != 2 || !strings.Contains(got.stderr, "root "+root+": no such root directory") {
			t.Errorf("%v --root %s: exit %d\n%s", args, root, got.code, got.stderr)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("%v created %s", args, root)
		}
	}
}

// Finding 13: link --dry-run succeeds wherever the real run does, and creates no file. It
// used to fail once a kernel with links and an image was removed: the image refresh it
// previewed read the tree on disk, whose links the dry run had (rightly) not removed.
func TestLinkDryRunWhereRealRunSucceeds(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	lock := filepath.Join(root, "lib/modules/.kabiguard.lock")
	stage := func(name string) {
		t.Helper()
		os.Remove(lock)
		dry := kabiguard(t, "link", "--dry-run", "--root", root)
		if dry.code != 0 {
			t.Fatalf("%s: link --dry-run: exit %d\n%s%s", name, dry.code, dry.stdout, dry.stderr)
		}
		if _, err := os.Lstat(lock); !os.IsNotExist(err) {
			t.Fatalf("%s: link --dry-run created the lock file", name)
		}
		if real := kabiguard(t, "link", "--root", root); real.code != 0 {
			t.Fatalf("%s: link: exit %d\n%s%s", name, real.code, real.stdout, real.stderr)
		}
	}
	stage("fresh root")
	sampleImage(t, root, testkit.SampleK53)
	sampleImage(t, root, testkit.SampleK54)
	stage("linked, with images")
	if err := os.RemoveAll(kmod.ModulesDir(root, testkit.SampleK50)); err != nil {
		t.Fatal(err)
	}
	stage("6.1.0-50 removed")
}

// Finding 1: link through a weak-updates that is a symlink out of the root: one error line
// naming it, exit non-zero, nothing outside changed.
func TestLinkWeakUpdatesOutsideRoot(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	dec := testkit.NewDecoys(t)
	dec.Write(t, "wu/README", "the admin's\n")
	dec.Seal(t)
	weak := filepath.Join(kmod.ModulesDir(root, testkit.SampleK53), "weak-updates")
	if err := os.Symlink(filepath.Join(dec.Dir, "wu"), weak); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := kabiguard(t, "link", "--root", root)
		if got.code == 0 || !strings.Contains(got.stderr, weak+": ") || strings.Count(strings.TrimSpace(got.stderr), "\n") != 0 {
			t.Errorf("link: exit %d, want one error line naming %s\n%s", got.code, weak, got.stderr)
		}
		dec.Unchanged(t)
	}
}
