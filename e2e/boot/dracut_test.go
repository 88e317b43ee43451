package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// dracutWith runs the real dracut with the project's 90kabiguard module for kernel k of root
// (recipe R4 of host-interfaces.md: a private copy of dracut's tree, --kmoddir, host
// configuration ignored) and returns dracut's output and error.
func dracutWith(t *testing.T, root string, k *testkit.Kernel, required, img string, gate string) (string, error) {
	t.Helper()
	d := t.TempDir()
	for _, dir := range []string{"conf.d", "tmp", "etc/kabiguard/required.d"} {
		os.MkdirAll(filepath.Join(d, dir), 0o755)
	}
	tree := testkit.DracutTree(t)
	os.WriteFile(filepath.Join(d, "etc/kabiguard/required.d/test.conf"), []byte(required), 0o644)
	cmd := exec.Command("dracut", "-q", "--force", "--kver", k.Release,
		"--kmoddir", filepath.Join(root, "lib", "modules", k.Release),
		"--tmpdir", filepath.Join(d, "tmp"), "--conf", "/dev/null", "--confdir", filepath.Join(d, "conf.d"),
		"--no-hostonly", "--gzip", "-m", "base rootfs-block kabiguard", img)
	cmd.Env = append(os.Environ(), "dracutbasedir="+tree,
		"KABIGUARD_CONFDIR="+filepath.Join(d, "etc", "kabiguard"), "KABIGUARD_GATE="+gate)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestDracutModule: the real dracut builds an image with 90kabiguard for kernel 6.1.0-54
// whose extra/ holds the 6.1.0-50 build of kabidemo (required, early); booted, dracut's
// pre-udev hook runs the gate and `die`s with the kernel's reason. A required early module
// that does not exist fails the build and leaves no image.
func TestDracutModule(t *testing.T) {
	k50, k54 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-54")
	root := testkit.NewRoot(t, k54)
	build50 := testkit.BuildModules(t, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	testkit.Install(t, root, k54.Release, "extra/kabidemo.ko", build50)
	testkit.Depmod(t, root, k54.Release)
	gate := testkit.BuildBinary(t, "kabiguard-gate")

	missing := filepath.Join(t.TempDir(), "missing.img")
	out, err := dracutWith(t, root, k54, "npreal2 early\n", missing, gate)
	if err == nil || !strings.Contains(out, "npreal2") {
		t.Fatalf("dracut built an image without the required early npreal2: %v\n%s", err, out)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a failed build left an image")
	}

	img := filepath.Join(t.TempDir(), "initrd.img")
	if out, err := dracutWith(t, root, k54, "kabidemo early\n", img, gate); err != nil {
		t.Fatalf("dracut: %v\n%s", err, out)
	}
	ls, err := exec.Command("lsinitrd", img).Output()
	if err != nil || !strings.Contains(string(ls), "usr/sbin/kabiguard-gate") || !strings.Contains(string(ls), "kabidemo.ko") {
		t.Fatalf("image lacks the gate or the module: %v\n%s", err, ls)
	}
	lines := bootUntil(t, filepath.Join(k54.Root, "boot", "vmlinuz-"+k54.Release), img,
		"console=ttyS0 panic=-1 root=/dev/vda1 rd.shell=0", `Kernel panic|System halted|reboot: `)
	fatal := find(lines, `dracut: FATAL: kabiguard: required module kabidemo cannot load: `)
	if !regexp.MustCompile(`disagrees about version of symbol misc_(de)?register`).MatchString(fatal) {
		t.Fatalf("no FATAL line with the kernel's reason:\n%s", strings.Join(lines, "\n"))
	}
	t.Log(fatal)
}

// TestDracutModuleRefusesBadRequired: the real dracut with 90kabiguard fails the build and
// leaves no image when required.d has a line kabiguard itself refuses (a path, a pattern, an
// unknown flag), naming the file and line; a '*' never expands to the files of dracut's
// working directory.
func TestDracutModuleRefusesBadRequired(t *testing.T) {
	k54 := testkit.FetchKernel(t, "6.1.0-54")
	root := testkit.NewRoot(t, k54)
	gate := testkit.BuildBinary(t, "kabiguard-gate")
	for required, want := range map[string]string{
		"../../etc/passwd early\n": `test.conf:1: "../../etc/passwd" is not a module name`,
		"* early\n":                `test.conf:1: "*" is not a module name`,
		"ext4 eraly\n":             `test.conf:1: unknown flag "eraly" after module ext4`,
	} {
		img := filepath.Join(t.TempDir(), "initrd.img")
		out, err := dracutWith(t, root, k54, required, img, gate)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%q: dracut %v, want a failure naming %q:\n%s", required, err, want, out)
		}
		if _, err := os.Stat(img); err == nil {
			t.Errorf("%q: a failed build left an image", required)
		}
	}
}
