// Package e2e runs the project's host integration (make install, the kernel-install plugins,
// the Debian kernel hooks) with the real kernel-install, run-parts, depmod and real Debian
// kernels, inside private mount namespaces so the host is never touched.
//
// These tests need root (mount namespaces, overlayfs, bind mounts) and what .ci/run installs:
// systemd (kernel-install), debianutils (run-parts), kmod, util-linux (unshare), gcc and make
// (module builds), and the Debian archive on first use (internal/testkit).
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// sandbox is a host view made of private copies, entered by every command it runs:
//
//	/etc              bind mount of a copy of the host's /etc (dir/etc)
//	/usr              overlayfs: the host's /usr below, dir/usr.up above (make install lands there)
//	/usr/lib/modules  bind mount of root/lib/modules (/lib is a link to usr/lib on Debian 12)
//	/usr/src          bind mount of root/usr/src (the kernels' Module.symvers)
//	/boot             bind mount of root/boot, when the host has a /boot to mount on
//
// The overlay's upper directory lives on disk, so what one command installs the next one sees;
// every command gets a fresh namespace, which vanishes with it.
type sandbox struct {
	t    *testing.T
	dir  string // scratch: etc, usr.up, usr.work, esp, kconf, tmp, images, log
	root string // testkit root: lib/modules, boot, usr/src
	bin  string // binaries built for this run
}

func repoDir() string { return testkit.RepoDir() }

// newSandbox makes a sandbox holding kernels, installs the project into it with the real
// `make install` (PREFIX=/usr), and replaces the host's Debian kernel hooks in its /etc by
// recorders, so run-parts runs ours among stand-ins that log their turn.
func newSandbox(t *testing.T, kernels ...*testkit.Kernel) *sandbox {
	t.Helper()
	testkit.NeedsRoot(t, "runs kernel-install and the hooks in a private mount namespace (unshare -m)")
	sb := &sandbox{t: t, dir: t.TempDir(), root: testkit.NewRoot(t, kernels...)}
	sb.bin = filepath.Join(sb.dir, "bin")
	for _, d := range []string{"usr.up", "usr.work", "esp", "kconf", "tmp", "images"} {
		must(t, os.MkdirAll(filepath.Join(sb.dir, d), 0o755))
	}
	must(t, os.MkdirAll(filepath.Join(sb.root, "usr", "src"), 0o755))
	must(t, os.MkdirAll(filepath.Join(sb.root, "boot"), 0o755))
	runHost(t, "cp", "-a", "/etc", filepath.Join(sb.dir, "etc"))
	// kernel-install: bls layout into a scratch BOOT_ROOT (recipe R6).
	must(t, os.WriteFile(filepath.Join(sb.dir, "kconf", "install.conf"), []byte("layout=bls\ninitrd_generator=none\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(sb.dir, "kconf", "entry-token"), []byte("testtoken\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(sb.dir, "kconf", "cmdline"), []byte("root=/dev/vda1 ro\n"), 0o644))
	// The host's own kernel hooks and plugins (e.g. the real dkms) must not run: stand-ins log
	// their turn.
	for _, d := range []string{"postinst.d", "postrm.d", "install.d"} {
		dir := filepath.Join(sb.dir, "etc", "kernel", d)
		must(t, os.RemoveAll(dir))
		must(t, os.MkdirAll(dir, 0o755))
	}
	log := filepath.Join(sb.dir, "hooks.log")
	rec := func(dir, name, extra string) {
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $1\" >>%s\n%s", name, log, extra)
		must(t, os.WriteFile(filepath.Join(sb.dir, "etc", "kernel", dir, name), []byte(script), 0o755))
	}
	rec("postinst.d", "dkms", "")
	// Like Debian's dracut hook: the image goes next to the kernel image. Its content comes from
	// images/initrd-KVER when the test put one there.
	rec("postinst.d", "dracut", fmt.Sprintf("if [ -f %s/images/initrd-$1 ]; then cp %s/images/initrd-$1 \"${2%%/*}/initrd.img-$1\"; fi\n", sb.dir, sb.dir))
	rec("postinst.d", "zz-update-grub", "")
	// Like DKMS on removal: its build for the kernel goes before our hook runs.
	rec("postrm.d", "dkms", "rm -rf /lib/modules/$1/extra\n")
	rec("postrm.d", "zz-update-grub", "")
	// A stand-in initramfs generator for kernel-install: puts images/staged-KVER into the
	// staging area, as 50-dracut does on Fedora.
	must(t, os.WriteFile(filepath.Join(sb.dir, "etc", "kernel", "install.d", "60-testinitrd.install"), []byte(fmt.Sprintf(
		"#!/bin/sh\n[ \"$1\" = add ] || exit 0\nif [ -f %s/images/staged-$2 ]; then cp %s/images/staged-$2 \"$KERNEL_INSTALL_STAGING_AREA/initrd\"; fi\n",
		sb.dir, sb.dir)), 0o755))

	start := time.Now()
	goBin := testkit.GoTool()
	out, code := sb.run(fmt.Sprintf("make -s -C %s install GO=%s BIN=%s PREFIX=/usr", repoDir(), goBin, sb.bin))
	if code != 0 {
		t.Fatalf("make install in the sandbox: exit %d\n%s", code, out)
	}
	t.Logf("make install into the sandbox: %v", time.Since(start).Round(time.Millisecond))
	return sb
}

// run executes script with sh in a fresh private mount namespace over the sandbox; it returns
// stdout and stderr interleaved, and the exit status.
func (sb *sandbox) run(script string, env ...string) (string, int) {
	sb.t.Helper()
	pre := fmt.Sprintf(`set -e
mount --bind %[1]s/etc /etc
mount -t overlay -o lowerdir=/usr,upperdir=%[1]s/usr.up,workdir=%[1]s/usr.work overlay /usr
mkdir -p /usr/lib/modules /usr/src
mount --bind %[2]s/lib/modules /usr/lib/modules
mount --bind %[2]s/usr/src /usr/src
if [ -d /boot ]; then mount --bind %[2]s/boot /boot; fi
set +e
`, sb.dir, sb.root)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", pre+script)
	cmd.Env = append(os.Environ(),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TMPDIR="+filepath.Join(sb.dir, "tmp"),
		"KERNEL_INSTALL_CONF_ROOT="+filepath.Join(sb.dir, "kconf"),
		"BOOT_ROOT="+filepath.Join(sb.dir, "esp"),
	)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		sb.t.Fatalf("unshare: %v", err)
	}
	return out.String(), code
}

// kernelInstall runs the real kernel-install (plugins from /etc/kernel/install.d and
// /usr/lib/kernel/install.d as installed) and logs how long it took.
func (sb *sandbox) kernelInstall(args ...string) (string, int) {
	sb.t.Helper()
	start := time.Now()
	out, code := sb.run("kernel-install -v " + strings.Join(args, " "))
	sb.t.Logf("kernel-install %s: exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return out, code
}

// runParts runs a Debian kernel hook directory the way a kernel package's maintainer script
// does.
func (sb *sandbox) runParts(action, dir, kver string) (string, int) {
	sb.t.Helper()
	start := time.Now()
	exitOnError := ""
	if action == "configure" {
		exitOnError = "--exit-on-error"
	}
	out, code := sb.run(fmt.Sprintf("DEB_MAINT_PARAMS=%s run-parts --report %s --arg=%s --arg=/boot/vmlinuz-%s %s",
		action, exitOnError, kver, kver, dir))
	sb.t.Logf("run-parts %s %s (%s): exit %d in %v", dir, kver, action, code, time.Since(start).Round(time.Millisecond))
	return out, code
}

// vmlinuz is the path of kver's image as the sandbox's commands see it.
func (sb *sandbox) vmlinuz(kver string) string {
	if fi, err := os.Stat("/boot"); err == nil && fi.IsDir() {
		return "/boot/vmlinuz-" + kver
	}
	return filepath.Join(sb.root, "boot", "vmlinuz-"+kver)
}

func (sb *sandbox) modDir(kver string) string { return filepath.Join(sb.root, "lib", "modules", kver) }

func (sb *sandbox) entry(kver string) string {
	return filepath.Join(sb.dir, "esp", "loader", "entries", "testtoken-"+kver+".conf")
}

func (sb *sandbox) writeEtc(rel, content string) {
	sb.t.Helper()
	p := filepath.Join(sb.dir, "etc", rel)
	must(sb.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(sb.t, os.WriteFile(p, []byte(content), 0o644))
}

func (sb *sandbox) hookLog() string {
	data, _ := os.ReadFile(filepath.Join(sb.dir, "hooks.log"))
	return string(data)
}

// links returns every symlink under every kernel's weak-updates, with whether it dangles.
func (sb *sandbox) links() map[string]bool {
	sb.t.Helper()
	out := map[string]bool{}
	dirs, _ := filepath.Glob(filepath.Join(sb.root, "lib", "modules", "*", "weak-updates"))
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type()&fs.ModeSymlink != 0 {
				_, serr := os.Stat(p)
				out[p] = serr != nil
			}
			return nil
		})
	}
	return out
}

// writeImage writes an initramfs holding files (path in the image -> content).
func writeImage(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var list []initramfs.File
	for name, data := range files {
		list = append(list, initramfs.Regular(name, 0o644, data))
	}
	list = append(list, initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n")))
	must(t, initramfs.Writer{}.WriteFile(path, list))
}

// mismatch is a symbol whose CRC in a module differs from a kernel's export.
type mismatch struct{ sym, want, have string }

// crcMismatches derives a module's kABI verdict for a kernel independently of kabiguard: the
// symbol versions `modprobe --dump-modversions` reads from the module against the CRCs of the
// kernel's Module.symvers (a missing export counts, with have = "").
func crcMismatches(t *testing.T, ko, symvers string) []mismatch {
	t.Helper()
	out, err := exec.Command("modprobe", "--dump-modversions", ko).Output()
	if err != nil {
		t.Fatalf("modprobe --dump-modversions %s: %v", ko, err)
	}
	f, err := os.Open(symvers)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	have := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) >= 2 {
			have[fields[1]] = fields[0]
		}
	}
	var mm []mismatch
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		crc, sym, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if h := have[sym]; h != crc {
			mm = append(mm, mismatch{sym, crc, h})
		}
	}
	return mm
}

func runHost(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
