package testkit

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RPMVersion splits a Debian kernel release into an RPM version and release, the way RHEL's
// kernel-core-5.14.0-503.el9.x86_64 carries uname -r 5.14.0-503.el9.x86_64: "6.1.0-54-amd64"
// is version 6.1.0, release 54.amd64 (an RPM release has no '-').
func RPMVersion(release string) (version, rel string) {
	version, rest, _ := strings.Cut(release, "-")
	return version, strings.ReplaceAll(rest, "-", ".")
}

// KernelCoreRPM builds, with the real rpmbuild, a kernel-core package of k laid out as RHEL
// ships it: lib/modules/K/{vmlinuz, System.map, config, symvers.gz (the headers' real
// Module.symvers), modules.order, modules.builtin, modules.builtin.modinfo} and, of the module
// tree, only the in-tree modules named in modules (with what modules.dep says they need). It
// provides installonlypkg(kernel), so dnf keeps several installed, and returns the .rpm.
func KernelCoreRPM(tb testing.TB, k *Kernel, modules ...string) string {
	tb.Helper()
	top := tb.TempDir()
	mdir := filepath.Join("lib", "modules", k.Release)
	dst := filepath.Join(top, "tree", mdir)
	files := map[string]string{ // in the package -> from the cache
		"vmlinuz":    filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release),
		"System.map": filepath.Join(k.Root, "boot", "System.map-"+k.Release),
		"config":     filepath.Join(k.Root, "boot", "config-"+k.Release),
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		files[f] = filepath.Join(k.ModulesDir(), f)
	}
	for _, rel := range inTreeModules(tb, k, modules) {
		files[rel] = filepath.Join(k.ModulesDir(), rel)
	}
	for rel, src := range files {
		copyFile(tb, src, filepath.Join(dst, rel))
	}
	gzipFile(tb, k.Symvers, filepath.Join(dst, "symvers.gz"))
	version, release := RPMVersion(k.Release)
	spec := fmt.Sprintf(`Name: kernel-core
Version: %s
Release: %s
Summary: The Debian kernel %s laid out as RHEL's kernel-core
License: GPL-2.0-only
Provides: installonlypkg(kernel)
%%description
Test package made by kabiguard's tests.
%%install
cp -a %s/. %%{buildroot}/
%%files
/%s
`, version, release, k.Release, filepath.Join(top, "tree"), mdir)
	return RPMBuild(tb, top, spec)
}

// RPMBuild builds the binary package of spec (its text) with the real rpmbuild under top
// (gzip payload: quick; no post-install processing, which would strip or compress the files)
// and returns the one .rpm it made.
func RPMBuild(tb testing.TB, top, spec string) string {
	tb.Helper()
	if _, err := exec.LookPath("rpmbuild"); err != nil {
		tb.Fatal("rpmbuild not found: install rpm (.ci/run does)")
	}
	p := filepath.Join(top, "package.spec")
	writeFile(tb, p, spec)
	run(tb, "", "rpmbuild", "-bb", "--nodeps", "--target", "x86_64", "--define", "_topdir "+top,
		"--define", "_binary_payload w1.gzdio", "--define", "__os_install_post %{nil}",
		"--define", "debug_package %{nil}", "--define", "_build_id_links none", p)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	if len(rpms) != 1 {
		tb.Fatalf("rpmbuild %s made %v, want one package", p, rpms)
	}
	return rpms[0]
}

// inTreeModules are the paths (relative to k's module tree) of the named modules and of the
// modules they depend on, from k's modules.dep.
func inTreeModules(tb testing.TB, k *Kernel, names []string) []string {
	tb.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[strings.ReplaceAll(n, "-", "_")] = true
	}
	f, err := os.Open(filepath.Join(k.ModulesDir(), "modules.dep"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var paths []string
	found := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, deps, _ := strings.Cut(sc.Text(), ":")
		name := strings.ReplaceAll(strings.SplitN(filepath.Base(mod), ".", 2)[0], "-", "_")
		if want[name] && !found[name] {
			found[name] = true
			paths = append(paths, mod)
			paths = append(paths, strings.Fields(deps)...)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	for n := range want {
		if !found[n] {
			tb.Fatalf("%s has no in-tree module %s", k.Release, n)
		}
	}
	return paths
}

func gzipFile(tb testing.TB, src, dst string) {
	tb.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}
