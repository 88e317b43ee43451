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

// bootTestModule is a dracut module for tests: a pre-udev hook after the gate's that shows the
// kernel's module list on the console.
const bootTestSetup = `#!/bin/bash
check() { return 255; }
depends() { return 0; }
install() { inst_hook pre-udev 20 "$moddir/boottest-show.sh"; }
`

const bootTestShow = `#!/bin/sh
echo "boot-test: /proc/modules:" >/dev/console
while read -r line; do echo "$line"; done </proc/modules >/dev/console
echo "boot-test: done" >/dev/console
`

// isolatedDracut prepares a private copy of dracut's tree holding 90kabiguard and 99boottest
// and returns a function that runs the real dracut from it for kernel release of root
// (--kmoddir: nothing of the host's /lib/modules or dracut configuration is used or touched),
// zstd, with the project's module and root's etc/kabiguard.
func isolatedDracut(t *testing.T, root, release, gate string) func(img string) {
	t.Helper()
	d := t.TempDir()
	for _, dir := range []string{"conf.d", "tmp"} {
		os.MkdirAll(filepath.Join(d, dir), 0o755)
	}
	tree := testkit.DracutTree(t)
	bt := filepath.Join(tree, "modules.d", "99boottest")
	os.MkdirAll(bt, 0o755)
	os.WriteFile(filepath.Join(bt, "module-setup.sh"), []byte(bootTestSetup), 0o755)
	os.WriteFile(filepath.Join(bt, "boottest-show.sh"), []byte(bootTestShow), 0o755)
	return func(img string) {
		t.Helper()
		cmd := exec.Command("dracut", "-q", "--force", "--kver", release,
			"--kmoddir", filepath.Join(root, "lib", "modules", release),
			"--tmpdir", filepath.Join(d, "tmp"), "--conf", "/dev/null", "--confdir", filepath.Join(d, "conf.d"),
			"--no-hostonly", "--zstd", "-m", "base rootfs-block kabiguard boottest", img)
		cmd.Env = append(os.Environ(), "dracutbasedir="+tree,
			"KABIGUARD_CONFDIR="+filepath.Join(root, "etc", "kabiguard"), "KABIGUARD_GATE="+gate)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dracut: %v\n%s", err, out)
		}
	}
}

// TestBootRefreshedDracutImage: the real dracut builds 6.1.0-53's image while a bad
// weak-updates link (as RHEL's weak-modules can leave) points kabidemo at the 6.1.0-54 build;
// dracut keeps that link as a symlink in the image, with the 54 build behind it. Booted, the
// gate stops it with the kernel's reason. `kabiguard link --no-initramfs` then points the link at the
// compatible 6.1.0-50 build; `initramfs verify` says the image is stale; `initramfs refresh`
// rewrites it (zstd, as dracut made it) in a second; booted again, the gate loads kabidemo and
// the kernel lists it in /proc/modules.
func TestBootRefreshedDracutImage(t *testing.T) {
	k50, k53, k54 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53"), testkit.FetchKernel(t, "6.1.0-54")
	src := filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo")
	root := testkit.NewRoot(t, k50, k53, k54)
	testkit.Install(t, root, k50.Release, "extra/kabidemo/kabidemo.ko", testkit.BuildModules(t, k50, src)["kabidemo"])
	testkit.Install(t, root, k54.Release, "extra/kabidemo/kabidemo.ko", testkit.BuildModules(t, k54, src)["kabidemo"])
	required := filepath.Join(root, "etc", "kabiguard", "required.d", "cluster.conf")
	os.MkdirAll(filepath.Dir(required), 0o755)
	os.WriteFile(required, []byte("kabidemo early\n"), 0o644)
	kg := testkit.BuildBinary(t, "kabiguard")
	cli := func(args ...string) (int, string) {
		out, err := exec.Command(kg, args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, strings.ReplaceAll(string(out), root, "$ROOT")
	}
	// The bad link, and depmod over it, as a careless tool would leave them.
	link := filepath.Join(root, "lib", "modules", k53.Release, "weak-updates", "kabidemo", "kabidemo.ko")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink("../../../"+k54.Release+"/extra/kabidemo/kabidemo.ko", link); err != nil {
		t.Fatal(err)
	}
	testkit.Depmod(t, root, k53.Release)
	img := filepath.Join(root, "boot", "initrd.img-"+k53.Release)
	isolatedDracut(t, root, k53.Release, testkit.BuildBinary(t, "kabiguard-gate"))(img)
	vmlinuz := filepath.Join(k53.Root, "boot", "vmlinuz-"+k53.Release)
	const cmdline = "console=ttyS0 panic=-1 root=/dev/vda1 rd.shell=0 rd.info"

	lines := bootUntil(t, vmlinuz, img, cmdline, `Kernel panic|System halted|reboot: |^boot-test: done`)
	fatal := find(lines, `dracut: FATAL: kabiguard: required module kabidemo cannot load: `)
	if !regexp.MustCompile(`disagrees about version of symbol misc_(de)?register`).MatchString(fatal) || find(lines, `^boot-test: done`) != "" {
		t.Fatalf("the image with the 6.1.0-54 build was not stopped with the kernel's reason:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("before refresh: %s", fatal)

	// (link alone would refresh the image too; here the admin does it in two steps.)
	if code, s := cli("link", "--no-initramfs", "--root", root); code != 0 || !strings.Contains(s, "repoint") {
		t.Fatalf("link: exit %d\n%s", code, s)
	}
	if code, s := cli("initramfs", "verify", "--root", root, "-k", k53.Release, img); code != 1 || !strings.Contains(s, "kabidemo  stale") {
		t.Fatalf("verify: exit %d\n%s", code, s)
	} else {
		t.Logf("verify:\n%s", s)
	}
	code, s := cli("initramfs", "refresh", "--root", root, "-k", k53.Release, img)
	if code != 0 || !strings.Contains(s, "replaced usr/lib/modules/"+k53.Release+"/weak-updates/kabidemo/kabidemo.ko") {
		t.Fatalf("refresh: exit %d\n%s", code, s)
	}
	t.Logf("refresh:\n%s", s)
	if code, s := cli("initramfs", "verify", "--root", root, "-k", k53.Release, img); code != 0 {
		t.Fatalf("verify after refresh: exit %d\n%s", code, s)
	}

	lines = bootUntil(t, vmlinuz, img, cmdline, `Kernel panic|System halted|reboot: |^boot-test: done`)
	loaded := find(lines, `kabiguard: required modules loaded: kabidemo`)
	if loaded == "" || find(lines, `^kabidemo \d+ `) == "" || find(lines, `FATAL`) != "" {
		t.Fatalf("the refreshed image did not load kabidemo:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("after refresh: %s; /proc/modules: %s", loaded, find(lines, `^kabidemo \d+ `))
}
