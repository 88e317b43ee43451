package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// fixture: three real Debian kernels and kabidemo built against the first. Which later kernel
// its build loads into is derived here from the module's symbol versions and the kernels'
// Module.symvers, not assumed.
type fixture struct {
	k50, k53, k54 *testkit.Kernel
	demo          string     // kabidemo.ko built for k50
	bad           []mismatch // why it does not load into k54
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{k50: testkit.FetchKernel(t, "6.1.0-50"), k53: testkit.FetchKernel(t, "6.1.0-53"), k54: testkit.FetchKernel(t, "6.1.0-54")}
	f.demo = testkit.BuildModules(t, f.k50, filepath.Join(repoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	if mm := crcMismatches(t, f.demo, f.k53.Symvers); len(mm) != 0 {
		t.Fatalf("fixture: kabidemo built for %s should match every CRC of %s, differs in %v", f.k50.Release, f.k53.Release, mm)
	}
	f.bad = crcMismatches(t, f.demo, f.k54.Symvers)
	if len(f.bad) == 0 {
		t.Fatalf("fixture: kabidemo built for %s should differ from %s in some CRC", f.k50.Release, f.k54.Release)
	}
	return f
}

// namesMismatch reports whether out names the module and one derived mismatch with both CRCs.
func namesMismatch(out, module string, mm []mismatch) bool {
	if !strings.Contains(out, module) {
		return false
	}
	for _, m := range mm {
		if m.have != "" && strings.Contains(out, m.sym) && strings.Contains(out, m.want) && strings.Contains(out, m.have) {
			return true
		}
	}
	return false
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func modulesDepHas(t *testing.T, sb *sandbox, kver, entry string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sb.modDir(kver), "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains("\n"+string(data), "\n"+entry+":")
}

func noDangling(t *testing.T, sb *sandbox) {
	t.Helper()
	for l, dangling := range sb.links() {
		if dangling {
			t.Errorf("dangling link %s", l)
		}
	}
}

// TestKernelInstall: the real kernel-install (systemd 252) with layout=bls into a scratch
// BOOT_ROOT, scanning /etc/kernel/install.d and /usr/lib/kernel/install.d where make install put
// 45-kabiguard.install and 86-kabiguard-gate.install beside the stock 50-depmod, 85-initrd and
// 90-loaderentry. kabidemo is required.
func TestKernelInstall(t *testing.T) {
	f := loadFixture(t)
	r50, r53, r54 := f.k50.Release, f.k53.Release, f.k54.Release
	sb := newSandbox(t, f.k50)
	testkit.Install(t, sb.root, r50, "extra/kabidemo.ko", f.demo)
	testkit.Depmod(t, sb.root, r50)
	sb.writeEtc("kabiguard/required.d/test.conf", "kabidemo\n")

	out, _ := sb.run("kernel-install inspect")
	order := []string{"45-kabiguard.install", "50-depmod.install", "85-initrd.install", "86-kabiguard-gate.install", "90-loaderentry.install"}
	last := -1
	for _, p := range order {
		i := strings.Index(out, p)
		if i < last {
			t.Fatalf("kernel-install inspect: %s not in order %v:\n%s", p, order, out)
		}
		last = i
	}

	t.Run("native kernel gets an entry", func(t *testing.T) {
		out, code := sb.kernelInstall("add", r50, sb.vmlinuz(r50))
		if code != 0 || !exists(sb.entry(r50)) {
			t.Fatalf("exit %d, entry %v:\n%s", code, exists(sb.entry(r50)), out)
		}
	})

	link53 := filepath.Join(sb.modDir(r53), "weak-updates", "kabidemo.ko")
	t.Run("compatible kernel gets link, depmod and entry", func(t *testing.T) {
		testkit.AddKernel(t, sb.root, f.k53)
		out, code := sb.kernelInstall("add", r53, sb.vmlinuz(r53))
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		got, err := filepath.EvalSymlinks(link53)
		if err != nil || got != filepath.Join(sb.modDir(r50), "extra", "kabidemo.ko") {
			t.Fatalf("link %s -> %q (%v)\n%s", link53, got, err, out)
		}
		if !modulesDepHas(t, sb, r53, "weak-updates/kabidemo.ko") {
			t.Fatalf("depmod did not index the link for %s", r53)
		}
		if !exists(sb.entry(r53)) {
			t.Fatalf("no loader entry for %s:\n%s", r53, out)
		}
		// Through the host's real paths (/lib is a link to usr/lib): nothing left to change.
		if out, code := sb.run("/usr/sbin/kabiguard link --dry-run && /usr/sbin/kabiguard status"); code != 0 || !strings.Contains(out, "up to date") {
			t.Fatalf("after the add: exit %d\n%s", code, out)
		}
	})

	t.Run("incompatible kernel is refused without an entry", func(t *testing.T) {
		testkit.AddKernel(t, sb.root, f.k54)
		out, code := sb.kernelInstall("add", r54, sb.vmlinuz(r54))
		if code == 0 {
			t.Fatalf("kernel-install add %s succeeded:\n%s", r54, out)
		}
		if !namesMismatch(out, "kabidemo", f.bad) {
			t.Fatalf("the reason names none of %v:\n%s", f.bad, out)
		}
		for _, want := range []string{"kmod package built for " + r54, "required.d/test.conf:1", "on_missing_required = warn"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q among the ways out:\n%s", want, out)
			}
		}
		if exists(sb.entry(r54)) {
			t.Fatalf("loader entry written for a refused kernel")
		}
		if want := "no boot entry for " + r54 + ": kernel-install writes it in 90-loaderentry, after this gate"; !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
		if exists(filepath.Join(sb.modDir(r54), "weak-updates", "kabidemo.ko")) {
			t.Fatalf("incompatible build linked into %s", r54)
		}
		t.Logf("refusal:\n%s", tail(out, 12))
	})

	t.Run("warn lets it in", func(t *testing.T) {
		sb.writeEtc("kabiguard/kabiguard.conf", "on_missing_required = warn\n")
		defer sb.writeEtc("kabiguard/kabiguard.conf", "")
		out, code := sb.kernelInstall("add", r54, sb.vmlinuz(r54))
		if code != 0 || !exists(sb.entry(r54)) || !strings.Contains(out, "warning") || !namesMismatch(out, "kabidemo", f.bad) {
			t.Fatalf("exit %d, entry %v:\n%s", code, exists(sb.entry(r54)), out)
		}
		// Back to refuse with the entry of that install on disk: adding the kernel again is
		// refused, and the refusal names the entry that still boots it (kabiguard leaves it).
		sb.writeEtc("kabiguard/kabiguard.conf", "")
		out, code = sb.kernelInstall("add", r54, sb.vmlinuz(r54))
		if want := "boot entry " + sb.entry(r54) + " exists already"; code == 0 || !strings.Contains(out, want) || !exists(sb.entry(r54)) {
			t.Fatalf("add again under refuse: exit %d, want the refusal naming %q:\n%s", code, want, out)
		}
		if out, code := sb.kernelInstall("remove", r54); code != 0 || exists(sb.entry(r54)) {
			t.Fatalf("remove: exit %d:\n%s", code, out)
		}
	})

	// 45-kabiguard.install fails first here (no symvers and no image to derive the exports
	// from: the links cannot be planned), and
	// kernel-install stops at the first failing plugin, before 86 explains the refusal: the
	// admin must still read which module is lost, why, and the ways out.
	t.Run("refusal is explained when 45 fails before the gate", func(t *testing.T) {
		symvers := filepath.Join(sb.root, "usr", "src", "linux-headers-"+r54, "Module.symvers")
		must(t, os.Remove(symvers))
		defer func() { must(t, os.Link(f.k54.Symvers, symvers)) }()
		// The image goes where kabiguard does not look for one, and kernel-install gets it there.
		img, hidden := filepath.Join(sb.root, "boot", "vmlinuz-"+r54), filepath.Join(sb.root, "boot", "image-"+r54)
		must(t, os.Rename(img, hidden))
		defer func() { must(t, os.Rename(hidden, img)) }()
		out, code := sb.kernelInstall("add", r54, strings.Replace(sb.vmlinuz(r54), "vmlinuz-", "image-", 1))
		if code == 0 || exists(sb.entry(r54)) {
			t.Fatalf("kernel-install add %s without symvers: exit %d, entry %v:\n%s", r54, code, exists(sb.entry(r54)), out)
		}
		for _, want := range []string{"refusing kernel " + r54, "kabidemo", "no symvers for kernel " + r54,
			"Ways out", "required.d/test.conf:1", "on_missing_required = warn"} {
			if !strings.Contains(out, want) {
				t.Errorf("the refusal lacks %q:\n%s", want, out)
			}
		}
		t.Logf("refusal:\n%s", tail(out, 14))
	})

	t.Run("removing the build's kernel keeps links to builds that stay, none dangling", func(t *testing.T) {
		before := sb.links()
		out, code := sb.kernelInstall("remove", r50)
		if code != 0 || exists(sb.entry(r50)) {
			t.Fatalf("exit %d, entry %v:\n%s", code, exists(sb.entry(r50)), out)
		}
		// The kernel's package removes its own files; a kmod package's build in its extra/
		// stays installed (RHEL: kmod-* packages own those files and outlive the kernel they
		// were built for), so the other kernels' links into it stay, as RHEL's weak-modules
		// --remove-kernel leaves them.
		for l := range before {
			if target, _ := filepath.EvalSymlinks(l); strings.HasPrefix(target, sb.modDir(r50)+"/extra/") {
				if _, err := os.Stat(l); err != nil {
					t.Errorf("%s: the link into %s's kept build is gone: %v", l, r50, err)
				}
			}
		}
		if !exists(link53) || !modulesDepHas(t, sb, r53, "weak-updates/kabidemo.ko") {
			t.Fatalf("%s lost kabidemo, whose build stays installed", r53)
		}
		// Then the package manager deletes the kernel's own files (everything but extra/).
		ents, err := os.ReadDir(sb.modDir(r50))
		must(t, err)
		for _, e := range ents {
			if e.Name() != "extra" {
				must(t, os.RemoveAll(filepath.Join(sb.modDir(r50), e.Name())))
			}
		}
		noDangling(t, sb)
		if out, code := sb.run("/usr/sbin/kabiguard link --dry-run"); code != 0 || !strings.Contains(out, "up to date") {
			t.Fatalf("links left to fix after the removal: exit %d\n%s", code, out)
		}
	})
}

// TestKernelInstallEarly: a module required early must be inside the initramfs kernel-install
// was given, or that an earlier plugin put into the staging area.
func TestKernelInstallEarly(t *testing.T) {
	f := loadFixture(t)
	r50, r53 := f.k50.Release, f.k53.Release
	sb := newSandbox(t, f.k50, f.k53)
	testkit.Install(t, sb.root, r50, "extra/kabidemo.ko", f.demo)
	testkit.Depmod(t, sb.root, r50)
	sb.writeEtc("kabiguard/required.d/test.conf", "kabidemo early\n")
	demo, err := os.ReadFile(f.demo)
	must(t, err)
	dir := "usr/lib/modules/" + r53 + "/"
	with := filepath.Join(sb.dir, "images", "with.img")
	without := filepath.Join(sb.dir, "images", "without.img")
	writeImage(t, with, map[string][]byte{dir + "weak-updates/kabidemo.ko": demo, dir + "modules.dep": []byte("weak-updates/kabidemo.ko:\n")})
	writeImage(t, without, map[string][]byte{dir + "modules.dep": []byte("")})

	t.Run("given initrd lacks it", func(t *testing.T) {
		out, code := sb.kernelInstall("add", r53, sb.vmlinuz(r53), without)
		if code == 0 || exists(sb.entry(r53)) || !strings.Contains(out, "kabidemo is required early") {
			t.Fatalf("exit %d, entry %v:\n%s", code, exists(sb.entry(r53)), out)
		}
		// 45-kabiguard ran before the refusal: the link is there for the next attempt.
		if !exists(filepath.Join(sb.modDir(r53), "weak-updates", "kabidemo.ko")) {
			t.Fatalf("no link made")
		}
	})
	t.Run("given initrd has it", func(t *testing.T) {
		out, code := sb.kernelInstall("add", r53, sb.vmlinuz(r53), with)
		if code != 0 || !exists(sb.entry(r53)) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		must(t, os.Remove(sb.entry(r53)))
	})
	staged := filepath.Join(sb.dir, "images", "staged-"+r53)
	t.Run("staged initrd lacks it", func(t *testing.T) {
		runHost(t, "cp", without, staged)
		out, code := sb.kernelInstall("add", r53, sb.vmlinuz(r53))
		if code == 0 || exists(sb.entry(r53)) || !strings.Contains(out, "does not contain it") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("staged initrd has it", func(t *testing.T) {
		runHost(t, "cp", with, staged)
		out, code := sb.kernelInstall("add", r53, sb.vmlinuz(r53))
		if code != 0 || !exists(sb.entry(r53)) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		entry, _ := os.ReadFile(sb.entry(r53))
		if !strings.Contains(string(entry), "initrd") {
			t.Fatalf("the entry has no initrd:\n%s", entry)
		}
	})
}

// TestDebianHooks: the same through Debian's kernel hook directories, run as a kernel package's
// maintainer scripts run them (run-parts --exit-on-error, DEB_MAINT_PARAMS), among stand-ins for
// dkms, dracut and zz-update-grub that log their turn.
func TestDebianHooks(t *testing.T) {
	f := loadFixture(t)
	r50, r53, r54 := f.k50.Release, f.k53.Release, f.k54.Release
	sb := newSandbox(t, f.k50)
	testkit.Install(t, sb.root, r50, "extra/kabidemo.ko", f.demo)
	testkit.Depmod(t, sb.root, r50)
	sb.writeEtc("kabiguard/required.d/test.conf", "kabidemo early\n")
	demo, err := os.ReadFile(f.demo)
	must(t, err)
	dir := "usr/lib/modules/" + r53 + "/"
	writeImage(t, filepath.Join(sb.dir, "images", "initrd-"+r53), map[string][]byte{dir + "weak-updates/kabidemo.ko": demo})

	out, _ := sb.run("run-parts --test /etc/kernel/postinst.d")
	want := "/etc/kernel/postinst.d/dkms\n/etc/kernel/postinst.d/dkms-kabiguard\n/etc/kernel/postinst.d/dracut\n" +
		"/etc/kernel/postinst.d/zx-kabiguard-initrd\n/etc/kernel/postinst.d/zz-update-grub\n"
	if out != want {
		t.Fatalf("run-parts order:\n%s\nwant:\n%s", out, want)
	}

	t.Run("compatible kernel", func(t *testing.T) {
		testkit.AddKernel(t, sb.root, f.k53)
		out, code := sb.runParts("configure", "/etc/kernel/postinst.d", r53)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if got := sb.hookLog(); got != "dkms "+r53+"\ndracut "+r53+"\nzz-update-grub "+r53+"\n" {
			t.Fatalf("hooks ran:\n%s", got)
		}
		if !exists(filepath.Join(sb.modDir(r53), "weak-updates", "kabidemo.ko")) || !modulesDepHas(t, sb, r53, "weak-updates/kabidemo.ko") {
			t.Fatalf("no link or not indexed:\n%s", out)
		}
	})
	t.Run("incompatible kernel stops before the initramfs and the boot loader", func(t *testing.T) {
		testkit.AddKernel(t, sb.root, f.k54)
		out, code := sb.runParts("configure", "/etc/kernel/postinst.d", r54)
		if code == 0 || !namesMismatch(out, "kabidemo", f.bad) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if log := sb.hookLog(); !strings.Contains(log, "dkms "+r54) || strings.Contains(log, "dracut "+r54) || strings.Contains(log, "zz-update-grub "+r54) {
			t.Fatalf("hooks ran:\n%s", log)
		}
	})
	t.Run("early module missing from the new initramfs stops the boot loader", func(t *testing.T) {
		writeImage(t, filepath.Join(sb.dir, "images", "initrd-"+r53), map[string][]byte{dir + "modules.dep": nil})
		out, code := sb.runParts("configure", "/etc/kernel/postinst.d", r53)
		if code == 0 || !strings.Contains(out, "does not contain it") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if log := sb.hookLog(); strings.Count(log, "dracut "+r53) != 2 || strings.Count(log, "zz-update-grub "+r53) != 1 {
			t.Fatalf("hooks ran:\n%s", log)
		}
	})
	t.Run("other maintainer actions are ignored", func(t *testing.T) {
		if out, code := sb.runParts("abort-upgrade", "/etc/kernel/postinst.d", r54); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("removing the build's kernel leaves no dangling link", func(t *testing.T) {
		// dpkg has removed the package's files before postrm runs; DKMS's hook (the stand-in)
		// removes its build; ours re-points or removes what pointed there.
		for _, p := range []string{"kernel", "modules.dep", "modules.dep.bin", "modules.order", "modules.builtin"} {
			must(t, os.RemoveAll(filepath.Join(sb.modDir(r50), p)))
		}
		must(t, os.Remove(filepath.Join(sb.root, "boot", "vmlinuz-"+r50)))
		out, code := sb.runParts("remove", "/etc/kernel/postrm.d", r50)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		noDangling(t, sb)
		if exists(filepath.Join(sb.modDir(r53), "weak-updates", "kabidemo.ko")) || modulesDepHas(t, sb, r53, "weak-updates/kabidemo.ko") {
			t.Fatalf("%s keeps kabidemo from the removed kernel:\n%s", r53, out)
		}
		left, _ := filepath.Glob(filepath.Join(sb.root, "lib", "modules", "*", ".kabiguard-*"))
		if len(left) > 0 {
			t.Fatalf("left behind: %v", left)
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestHookScriptsMissingBinary: every host hook whose kabiguard binary (or gate, or parser) is
// gone while the hook stayed (a half-done uninstall) says so in one line naming the missing
// path; it fails when a module is required, so no kernel or image passes unchecked, and only
// warns when none is, so a half-removed kabiguard does not block kernel updates.
func TestHookScriptsMissingBinary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone", "kabiguard")
	helpers := map[string]string{ // stand-ins for dracut's logging and install helpers
		"bash": "derror() { echo \"$*\" >&2; }; dwarn() { echo \"$*\" >&2; }; dfatal() { echo \"$*\" >&2; }\n" +
			"inst_simple() { :; }; inst_hook() { :; }; initdir=$(mktemp -d)\n",
	}
	type script struct {
		name string
		cmd  []string // run from the repository; the release is 6.1.0-test
		env  []string
	}
	const rel = "6.1.0-test"
	deb := "DEB_MAINT_PARAMS=configure " + rel
	scripts := []script{
		{"45 add", []string{"install.d/45-kabiguard.install", "add", rel, "/efi/x", "/boot/vmlinuz"}, nil},
		{"45 remove", []string{"install.d/45-kabiguard.install", "remove", rel, "/efi/x"}, nil},
		{"86 add", []string{"install.d/86-kabiguard-gate.install", "add", rel, "/efi/x", "/boot/vmlinuz"}, nil},
		// No image argument: a refusal would point the boot elsewhere with the host's
		// linux-update-symlinks.
		{"postinst dkms-kabiguard", []string{"kernel/postinst.d/dkms-kabiguard", rel, ""}, []string{deb}},
		{"postinst zx-kabiguard-initrd", []string{"kernel/postinst.d/zx-kabiguard-initrd", rel, ""}, []string{deb}},
		{"postrm dkms-kabiguard", []string{"kernel/postrm.d/dkms-kabiguard", rel, "/boot/vmlinuz-" + rel}, []string{"DEB_MAINT_PARAMS=remove " + rel}},
		{"initramfs-tools hook, parser gone", []string{"sh", "initramfs-tools/hooks/kabiguard"},
			[]string{"version=" + rel, "DESTDIR=" + t.TempDir(), "KABIGUARD_REQUIRED_SH=" + missing}},
		{"initramfs-tools hook, gate gone", []string{"sh", "initramfs-tools/hooks/kabiguard"},
			[]string{"version=" + rel, "DESTDIR=" + t.TempDir(), "KABIGUARD_REQUIRED_SH=dracut/90kabiguard/kabiguard-required.sh", "KABIGUARD_GATE=" + missing}},
		{"dracut module, gate gone", []string{"bash", "-c", helpers["bash"] + ". dracut/90kabiguard/module-setup.sh && install"},
			[]string{"KABIGUARD_GATE=" + missing}},
	}
	// The gate and the initramfs parts act on early modules only: "v4l2loopback early" is
	// required for all; a plain requirement only warns where nothing needs the missing file.
	for _, s := range scripts {
		early := strings.Contains(s.name, "gate gone")
		for _, c := range []struct {
			conf string
			fail bool
		}{
			{"", false},
			{"# v4l2loopback early\n\n", false},
			{"v4l2loopback early # comment\n", true},
			{"v4l2loopback\n", !early},
		} {
			conf := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(conf, "required.d"), 0o755))
			if c.conf != "" {
				must(t, os.WriteFile(filepath.Join(conf, "required.d", "test.conf"), []byte(c.conf), 0o644))
			}
			cmd := exec.Command(s.cmd[0], s.cmd[1:]...)
			cmd.Dir = repoDir()
			cmd.Env = append(os.Environ(), "KABIGUARD="+missing, "KABIGUARD_CONFDIR="+conf, "KERNEL_INSTALL_VERBOSE=", "DEB_MAINT_PARAMS=")
			cmd.Env = append(cmd.Env, s.env...)
			var errb strings.Builder
			cmd.Stdout, cmd.Stderr = &errb, &errb
			code := 0
			if err := cmd.Run(); err != nil {
				ee, ok := err.(*exec.ExitError)
				if !ok {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			out := errb.String()
			want := 0
			if c.fail {
				want = 1
			}
			if code != want || strings.Count(out, "\n") != 1 || !strings.Contains(out, missing) {
				t.Errorf("%s, required.d %q: exit %d, output %q; want exit %d and one line naming %s", s.name, c.conf, code, out, want, missing)
			}
		}
	}
}
