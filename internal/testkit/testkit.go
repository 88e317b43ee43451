// Package testkit gives tests real Debian kernels, real out-of-tree modules built against
// their headers, and sandbox roots made of hard-linked copies of those trees.
//
// Everything heavy is cached outside the repository in $KABIGUARD_TEST_CACHE (default
// /var/cache/kabiguard-test): the .debs, their extractions (scripts/fetch-kernel.sh) and module
// builds keyed by the hash of their sources. These tests need root, the Debian archive on first
// use, and kmod, gcc and make (.ci/run installs them). A missing prerequisite fails the test
// with the reason. The one exception is the fast tier: under `go test -short` every test that
// needs a download, a long build or root is skipped, and Slow and NeedsRoot are the only places
// that decide it.
package testkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Kernel is one real Debian kernel in the cache.
type Kernel struct {
	ABI     string // "6.1.0-54", "6.12.107+deb12"
	Release string // uname -r: "6.1.0-54-amd64"
	Root    string // dpkg -x of the image package: boot/, lib/modules/<Release>/ (indexed by depmod)
	Headers string // the kbuild tree modules are built against (make -C Headers M=...)
	Symvers string // Headers/Module.symvers
}

// ModulesDir is the kernel's module tree inside its cached image.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib", "modules", k.Release) }

// CacheDir is where downloads and builds are kept between runs.
func CacheDir() string {
	if d := os.Getenv("KABIGUARD_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/kabiguard-test"
}

// RepoDir is the repository's top directory, found from this source file.
func RepoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	fetchMu sync.Mutex
	fetched = map[string]*Kernel{}
)

// FetchKernel downloads and extracts the kernel of abi (image and headers) unless the cache
// has it, and returns it.
func FetchKernel(tb testing.TB, abi string) *Kernel {
	tb.Helper()
	Slow(tb, "downloads the Debian kernel "+abi)
	fetchMu.Lock()
	defer fetchMu.Unlock()
	if k, ok := fetched[abi]; ok {
		return k
	}
	out := run(tb, "", "sh", filepath.Join(RepoDir(), "scripts", "fetch-kernel.sh"), abi, "all")
	dir := strings.TrimSpace(lastLine(out))
	k := &Kernel{
		ABI:     abi,
		Release: abi + "-amd64",
		Root:    filepath.Join(dir, "image"),
		Headers: filepath.Join(dir, "headers", "usr", "src", "linux-headers-"+abi+"-amd64"),
	}
	k.Symvers = filepath.Join(k.Headers, "Module.symvers")
	for _, p := range []string{k.ModulesDir(), k.Symvers, filepath.Join(k.ModulesDir(), "modules.dep")} {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("kernel %s in the cache is incomplete: %v", abi, err)
		}
	}
	fetched[abi] = k
	return k
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// run executes a command and fails tb with its output when it fails.
func run(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// lockCache takes the cache's build lock (other test binaries build in parallel).
func lockCache(tb testing.TB) func() {
	tb.Helper()
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(CacheDir(), ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	return func() { f.Close() }
}

// hashTree is a content hash of the regular files under dir, names included.
func hashTree(tb testing.TB, dir string) string {
	tb.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// BuildModules builds the Kbuild module sources in srcDir against k's headers and returns the
// built .ko files by module name. Builds are cached by source hash, so a second run is free.
func BuildModules(tb testing.TB, k *Kernel, srcDir string) map[string]string {
	tb.Helper()
	Slow(tb, "builds modules against downloaded kernel headers")
	srcDir, _ = filepath.Abs(srcDir)
	return buildCached(tb, k, filepath.Base(srcDir), srcDir, "modules")
}

// V4L2Loopback builds the real DKMS module of Debian's v4l2loopback-dkms (its source in
// /usr/src/v4l2loopback-*) against k's headers, and returns the .ko.
func V4L2Loopback(tb testing.TB, k *Kernel) string {
	tb.Helper()
	Slow(tb, "builds v4l2loopback against downloaded kernel headers")
	srcs, _ := filepath.Glob("/usr/src/v4l2loopback-*")
	if len(srcs) == 0 {
		tb.Fatal("no /usr/src/v4l2loopback-*: install v4l2loopback-dkms (.ci/run does)")
	}
	sort.Strings(srcs)
	mods := buildCached(tb, k, filepath.Base(srcs[len(srcs)-1]), srcs[len(srcs)-1], "modules")
	p, ok := mods["v4l2loopback"]
	if !ok {
		tb.Fatalf("v4l2loopback build produced %v", mods)
	}
	return p
}

func buildCached(tb testing.TB, k *Kernel, name, srcDir, target string) map[string]string {
	tb.Helper()
	unlock := lockCache(tb)
	defer unlock()
	out := filepath.Join(CacheDir(), "builds", k.ABI, name+"-"+hashTree(tb, srcDir))
	if _, err := os.Stat(filepath.Join(out, ".done")); err != nil {
		os.RemoveAll(out)
		if err := os.MkdirAll(out, 0o755); err != nil {
			tb.Fatal(err)
		}
		run(tb, "", "cp", "-a", srcDir+"/.", out)
		run(tb, "", "make", "-s", "-C", k.Headers, "M="+out, target)
		if err := os.WriteFile(filepath.Join(out, ".done"), nil, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	mods := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(out, "*.ko"))
	more, _ := filepath.Glob(filepath.Join(out, "*", "*.ko"))
	for _, p := range append(files, more...) {
		mods[strings.TrimSuffix(filepath.Base(p), ".ko")] = p
	}
	if len(mods) == 0 {
		tb.Fatalf("building %s against %s produced no module", srcDir, k.Release)
	}
	return mods
}

// HardlinkTree copies the tree src to dst with hard links (cheap for a 400 MB module tree).
// Tools that replace files by rename (depmod, kabiguard) never change the cached originals;
// tests must not write into a linked file in place.
func HardlinkTree(tb testing.TB, src, dst string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		tb.Fatal(err)
	}
	run(tb, "", "cp", "-al", src, dst)
}

// NewRoot makes a sandbox root holding the given installed kernels as a Debian host has them:
// boot/ files, lib/modules/<release>/ with depmod's indexes, the headers' Module.symvers at
// usr/src/linux-headers-<release>/, and a depmod.d that searches weak-updates/ (the file
// kabiguard installs). It returns the root.
func NewRoot(tb testing.TB, kernels ...*Kernel) string {
	tb.Helper()
	root := tb.TempDir()
	for _, k := range kernels {
		AddKernel(tb, root, k)
	}
	conf := filepath.Join(root, "etc", "depmod.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(RepoDir(), "depmod.d", "kabiguard.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "kabiguard.conf"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return root
}

// AddKernel installs k into root as NewRoot does (a later `kernel-install add`'s files).
func AddKernel(tb testing.TB, root string, k *Kernel) {
	tb.Helper()
	HardlinkTree(tb, k.ModulesDir(), filepath.Join(root, "lib", "modules", k.Release))
	boot := filepath.Join(root, "boot")
	os.MkdirAll(boot, 0o755)
	for _, f := range []string{"vmlinuz-", "System.map-", "config-"} {
		src := filepath.Join(k.Root, "boot", f+k.Release)
		if err := os.Link(src, filepath.Join(boot, f+k.Release)); err != nil {
			tb.Fatal(err)
		}
	}
	src := filepath.Join(root, "usr", "src", "linux-headers-"+k.Release)
	os.MkdirAll(src, 0o755)
	if err := os.Link(k.Symvers, filepath.Join(src, "Module.symvers")); err != nil {
		tb.Fatal(err)
	}
}

// Install copies a built module into root's tree of release at rel (for example
// "extra/kabidemo.ko"), as a DKMS or kmod package would; the copy is a new file, never a link
// into the cache.
func Install(tb testing.TB, root, release, rel, module string) string {
	tb.Helper()
	data, err := os.ReadFile(module)
	if err != nil {
		tb.Fatal(err)
	}
	dst := filepath.Join(root, "lib", "modules", release, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// Depmod runs the real depmod for release under root, with root's depmod.d.
func Depmod(tb testing.TB, root, release string) {
	tb.Helper()
	run(tb, "", "depmod", "-C", filepath.Join(root, "etc", "depmod.d"), "-b", root, release)
}

// DracutTree returns a private copy of the host's dracut tree (/usr/lib/dracut) with the
// project's 90kabiguard module added, for running the real dracut with dracutbasedir set to
// it (recipe R4 of host-interfaces.md): the host's dracut installation is never touched.
func DracutTree(tb testing.TB) string {
	tb.Helper()
	Slow(tb, "runs the real dracut")
	d := filepath.Join(tb.TempDir(), "dracut")
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	run(tb, "", "cp", "-a", "/usr/lib/dracut/.", d)
	run(tb, "", "cp", "-a", filepath.Join(RepoDir(), "dracut", "90kabiguard"), filepath.Join(d, "modules.d"))
	return d
}

// BuildBinary builds the project's command cmd/<name> as make install does (static,
// stripped) and returns its path.
func BuildBinary(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", p, "./cmd/"+name)
	cmd.Dir = RepoDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	return p
}
