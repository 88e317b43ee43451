package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// FetchArchKernel returns a Debian kernel of another architecture (arch "i386" with flavour
// "686-pae", "arm64" with "arm64", ...): its linux-image-ABI-FLAVOUR-unsigned package
// extracted into Root and indexed by depmod, and its linux-headers-ABI-FLAVOUR package's
// Module.symvers. Nothing is built against it (its kbuild tools are of its architecture).
//
// apt downloads the packages with a private configuration: the other architecture's package
// lists live in the cache (CacheDir()/apt-foreign), so the host's dpkg architectures and apt
// state never change. Downloads and extractions are cached like FetchKernel's.
func FetchArchKernel(tb testing.TB, abi, arch, flavour string) *Kernel {
	tb.Helper()
	Slow(tb, "downloads the Debian "+arch+" kernel "+abi)
	fetchMu.Lock()
	defer fetchMu.Unlock()
	release := abi + "-" + flavour
	if k, ok := fetched[release]; ok {
		return k
	}
	unlock := lockFile(tb, ".foreign.lock")
	defer unlock()
	dir := filepath.Join(CacheDir(), "kernels", release)
	k := &Kernel{
		ABI:     abi,
		Release: release,
		Root:    filepath.Join(dir, "image"),
		Headers: filepath.Join(dir, "headers", "usr", "src", "linux-headers-"+release),
	}
	k.Symvers = filepath.Join(k.Headers, "Module.symvers")
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		image := aptDownload(tb, arch, "linux-image-"+release+"-unsigned")
		headers := aptDownload(tb, arch, "linux-headers-"+release)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		run(tb, "", "dpkg", "-x", image, k.Root)
		run(tb, "", "dpkg", "-x", headers, filepath.Join(dir, "headers"))
		// An installed kernel has depmod's indexes (its postinst makes them); depmod reads
		// modules of any architecture.
		run(tb, "", "depmod", "-b", k.Root, release)
		if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for _, p := range []string{k.ModulesDir(), k.Symvers, filepath.Join(k.Root, "boot", "vmlinuz-"+release)} {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("kernel %s in the cache is incomplete: %v", release, err)
		}
	}
	fetched[release] = k
	return k
}

// aptDownload returns the cached .deb of pkg for arch, downloading it with apt-get when
// absent (after an update of the private lists when apt does not know it yet).
func aptDownload(tb testing.TB, arch, pkg string) string {
	tb.Helper()
	debs := filepath.Join(CacheDir(), "debs")
	if m, _ := filepath.Glob(filepath.Join(debs, pkg+"_*_"+arch+".deb")); len(m) > 0 {
		return m[0]
	}
	state := filepath.Join(CacheDir(), "apt-foreign")
	for _, d := range []string{debs, filepath.Join(state, "lists", "partial"), filepath.Join(state, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	opts := []string{
		"-q",
		"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
		"-o", "Dir::Cache::archives=" + filepath.Join(state, "archives"),
		"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
		"-o", "APT::Architectures::=" + arch,
	}
	dl := append(append([]string{}, opts...), "download", pkg+":"+arch)
	if _, err := runErr(debs, "apt-get", dl...); err != nil {
		// A failed index (a mirror mid-sync) is reported but does not stop the others.
		runErr("", "apt-get", append(append([]string{}, opts...), "update")...)
		if out, err := runErr(debs, "apt-get", dl...); err != nil {
			tb.Fatalf("apt-get download %s:%s: %v\n%s", pkg, arch, err, out)
		}
	}
	m, _ := filepath.Glob(filepath.Join(debs, pkg+"_*_"+arch+".deb"))
	if len(m) == 0 {
		tb.Fatalf("apt-get download %s:%s left no .deb in %s", pkg, arch, debs)
	}
	return m[0]
}

// lockFile takes an exclusive lock on the cache's file name (other test binaries fetch in
// parallel).
func lockFile(tb testing.TB, name string) func() {
	tb.Helper()
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(CacheDir(), name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	return func() { f.Close() }
}

// runErr runs a command and returns its combined output and error.
func runErr(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// ImageRoot makes a root holding only what k's image package installs: /boot/vmlinuz-K and
// the module tree with depmod's indexes, hard-linked from the cache; no headers, so no
// symvers. Like NewRoot, it must not be written into in place.
func ImageRoot(tb testing.TB, k *Kernel) string {
	tb.Helper()
	root := tb.TempDir()
	HardlinkTree(tb, k.ModulesDir(), filepath.Join(root, "lib", "modules", k.Release))
	boot := filepath.Join(root, "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Link(filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release), filepath.Join(boot, "vmlinuz-"+k.Release)); err != nil {
		tb.Fatal(err)
	}
	return root
}

// ImageDeb is the linux-image-ABI-amd64-unsigned .deb of a real Debian kernel, fetched into the
// test cache with the kernel (FetchKernel), for tests that read or install the package itself.
func ImageDeb(tb testing.TB, abi string) string {
	tb.Helper()
	FetchKernel(tb, abi)
	debs, _ := filepath.Glob(filepath.Join(CacheDir(), "debs", "linux-image-"+abi+"-amd64-unsigned_*.deb"))
	if len(debs) != 1 {
		tb.Fatalf("want one linux-image-%s-amd64-unsigned .deb in the test cache, found %v", abi, debs)
	}
	return debs[0]
}
