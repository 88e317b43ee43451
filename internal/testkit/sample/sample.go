// Package sample gives tests sandbox roots made of the embedded sample (testdata/sample, see
// its README): three kernels and three modules, offline and in milliseconds, laid out as
// scripts/demo.sh lays them out. (A package of its own: testkit is imported by the tests of
// the packages this one needs.)
package sample

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
)

// The sample's kernels.
const (
	K50 = "6.1.0-50-amd64"
	K53 = "6.1.0-53-amd64"
	K54 = "6.1.0-54-amd64"
)

// Module is the host path of the sample's build of module (kabidemo, kabiprov,
// kabiuser) for release (K50 or K54), xz-compressed.
func Module(release, module string) string {
	return filepath.Join(testkit.RepoDir(), "testdata", "sample", "modules", release, module+".ko.xz")
}

// Root makes a root holding the sample's three kernels (symvers and one in-tree module
// each), kabiguard's depmod.d, and kabidemo, kabiprov and kabiuser in K50's extra/,
// nothing linked yet. It returns the root.
func Root(tb testing.TB) string {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "lib", "modules"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, k := range []string{K50, K53, K54} {
		src := filepath.Join(testkit.RepoDir(), "testdata", "sample", "kernels", k)
		if out, err := exec.Command("cp", "-r", src, filepath.Join(root, "lib", "modules", k)).CombinedOutput(); err != nil {
			tb.Fatalf("cp -r %s: %v: %s", src, err, out)
		}
	}
	for _, m := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		testkit.Install(tb, root, K50, "extra/"+m+"/"+m+".ko.xz", Module(K50, m))
	}
	conf := filepath.Join(root, "etc", "depmod.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "depmod.d", "kabiguard.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "kabiguard.conf"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		tb.Fatal(err)
	}
	return root
}

// Image writes at path the initramfs that scripts/demo-initrd (dracut's layout) makes
// of release's tree under root as it is now: every module file, weak-updates links followed
// and their targets' content copied, and depmod's modules.* files; zstd. It returns path.
func Image(tb testing.TB, root, release, path string) string {
	tb.Helper()
	dir := filepath.Join(root, "lib", "modules", release)
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n")),
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !kmod.IsModule(rel) && !strings.HasPrefix(rel, "modules.") || strings.HasPrefix(filepath.Base(rel), ".") {
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
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := (initramfs.Writer{Compression: compression.Zstd, MTime: 1700000000}).WriteFile(path, files); err != nil {
		tb.Fatal(err)
	}
	return path
}
