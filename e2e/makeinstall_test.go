package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

func makeTarget(t *testing.T, bin, destdir string, targets ...string) string {
	t.Helper()
	args := append([]string{"-s", "-C", repoDir()}, targets...)
	args = append(args, "DESTDIR="+destdir, "BIN="+bin, "GO="+testkit.GoTool())
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %v: %v\n%s", targets, err, out)
	}
	return string(out)
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, "/"+rel)
		}
		return err
	})
	sort.Strings(out)
	return out
}

// TestMakeInstallUninstall: make install puts every file where it belongs (the hooks with the
// binary's installed path filled in, Debian hook names run-parts accepts), never overwrites an
// admin's configuration, and make uninstall removes exactly what install put, keeping a
// modified configuration.
func TestMakeInstallUninstall(t *testing.T) {
	bin, d := t.TempDir(), t.TempDir()
	makeTarget(t, bin, d, "install")
	got := files(t, d)
	want := []string{
		"/etc/apt/apt.conf.d/60kabiguard",
		"/etc/kabiguard/kabiguard.conf",
		"/etc/kernel/postinst.d/dkms-kabiguard",
		"/etc/kernel/postinst.d/zx-kabiguard-initrd",
		"/etc/kernel/postrm.d/dkms-kabiguard",
		"/usr/lib/depmod.d/kabiguard.conf",
		"/usr/lib/kernel/install.d/45-kabiguard.install",
		"/usr/lib/kernel/install.d/86-kabiguard-gate.install",
		"/usr/lib/rpm/fileattrs/kabiguard.attr",
		"/usr/lib/systemd/system/kabiguard-metrics.service",
		"/usr/lib/systemd/system/kabiguard-metrics.timer",
		"/usr/sbin/kabiguard",
		"/usr/sbin/kabiguard-gate",
		"/usr/sbin/weak-modules",
		"/usr/share/bash-completion/completions/kabiguard",
		"/usr/share/bash-completion/completions/weak-modules",
		"/usr/share/fish/vendor_completions.d/kabiguard.fish",
		"/usr/share/fish/vendor_completions.d/weak-modules.fish",
		"/usr/share/initramfs-tools/hooks/kabiguard",
		"/usr/share/initramfs-tools/scripts/init-premount/kabiguard",
		"/usr/share/kabiguard/installed-files",
		"/usr/share/kabiguard/kabiguard.conf",
		"/usr/share/kabiguard/required.sh",
		"/usr/share/man/man5/kabiguard-required.5",
		"/usr/share/man/man5/kabiguard.conf.5",
		"/usr/share/man/man8/kabiguard-gate.8",
		"/usr/share/man/man8/kabiguard.8",
		"/usr/share/man/man8/weak-modules.8",
		"/usr/share/zsh/vendor-completions/_kabiguard",
	}
	if extra, _ := filepath.Glob(filepath.Join(repoDir(), "dracut", "90kabiguard", "*")); len(extra) > 0 {
		for _, p := range extra {
			want = append(want, "/usr/lib/dracut/modules.d/90kabiguard/"+filepath.Base(p))
		}
		if _, err := os.Stat(filepath.Join(repoDir(), "dracut", "dracut.conf.d", "90-kabiguard.conf")); err == nil {
			want = append(want, "/usr/lib/dracut/dracut.conf.d/90-kabiguard.conf")
		}
		sort.Strings(want)
	}
	if pd := dnfPluginDir(); pd != "" { // the dnf gate, where dnf 4 is installed (.ci/run installs it)
		want = append(want, pd+"/kabiguard.py", "/etc/dnf/plugins/kabiguard.conf")
		sort.Strings(want)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("installed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, err := os.Stat(filepath.Join(d, "etc", "kabiguard", "required.d")); err != nil || !fi.IsDir() {
		t.Fatalf("no required.d: %v", err)
	}
	for _, h := range []string{"usr/lib/kernel/install.d/45-kabiguard.install", "usr/lib/kernel/install.d/86-kabiguard-gate.install",
		"etc/kernel/postinst.d/dkms-kabiguard", "etc/kernel/postinst.d/zx-kabiguard-initrd", "etc/kernel/postrm.d/dkms-kabiguard"} {
		data, err := os.ReadFile(filepath.Join(d, h))
		must(t, err)
		if !strings.Contains(string(data), `: "${KABIGUARD:=/usr/sbin/kabiguard}"`) {
			t.Errorf("%s does not default to the installed binary", h)
		}
		if fi, _ := os.Stat(filepath.Join(d, h)); fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v", h, fi.Mode())
		}
	}
	// run-parts skips names it does not accept (a dot, for one): it must list every hook.
	for _, dir := range []string{"postinst.d", "postrm.d"} {
		p := filepath.Join(d, "etc", "kernel", dir)
		out, err := exec.Command("run-parts", "--test", p).Output()
		must(t, err)
		entries, _ := os.ReadDir(p)
		if n := len(strings.Fields(string(out))); n != len(entries) {
			t.Errorf("run-parts --test %s lists %d of %d hooks:\n%s", p, n, len(entries), out)
		}
	}
	// The shipped configuration loads and says the defaults.
	out, err := exec.Command(filepath.Join(d, "usr", "sbin", "kabiguard"), "gate", "-k", "x", "--root", d, "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no module is required") {
		t.Fatalf("kabiguard gate on the installed configuration: %v\n%s", err, out)
	}

	makeTarget(t, bin, d, "uninstall")
	if left := files(t, d); len(left) != 0 {
		t.Fatalf("left after uninstall: %v", left)
	}
	if _, err := os.Stat(filepath.Join(d, "etc", "kabiguard")); err == nil {
		t.Fatalf("/etc/kabiguard left behind")
	}

	// The admin's configuration: kept by install, kept by uninstall once modified.
	conf := filepath.Join(d, "etc", "kabiguard", "kabiguard.conf")
	makeTarget(t, bin, d, "install")
	must(t, os.WriteFile(conf, []byte("on_missing_required = warn\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "etc", "kabiguard", "required.d", "drbd.conf"), []byte("drbd early\n"), 0o644))
	makeTarget(t, bin, d, "install")
	if data, _ := os.ReadFile(conf); string(data) != "on_missing_required = warn\n" {
		t.Fatalf("install overwrote the configuration: %q", data)
	}
	out2 := makeTarget(t, bin, d, "uninstall")
	left := files(t, d)
	if strings.Join(left, " ") != "/etc/kabiguard/kabiguard.conf /etc/kabiguard/required.d/drbd.conf" {
		t.Fatalf("after uninstall: %v\n%s", left, out2)
	}

	// Weak links kabiguard made outlive it: uninstall keeps them (kernels may need them to
	// boot) and says how to drop them.
	weak := filepath.Join(d, "lib", "modules", "6.1.0-54-amd64", "weak-updates", "drbd")
	must(t, os.MkdirAll(weak, 0o755))
	must(t, os.Symlink("../../../6.1.0-50-amd64/extra/drbd.ko", filepath.Join(weak, "drbd.ko")))
	makeTarget(t, bin, d, "install")
	out3 := makeTarget(t, bin, d, "uninstall")
	if !strings.Contains(out3, "note: 1 weak-updates link(s) under "+d+"/lib/modules stay") || !strings.Contains(out3, "depmod -a") {
		t.Fatalf("uninstall said nothing of the weak-updates links it leaves:\n%s", out3)
	}
	if _, err := os.Lstat(filepath.Join(weak, "drbd.ko")); err != nil {
		t.Fatalf("uninstall removed a weak-updates link: %v", err)
	}
}

// dnfPluginDir is dnf 4's plugin directory as the Makefile finds it, or "" without dnf 4.
func dnfPluginDir() string {
	for _, py := range []string{"/usr/libexec/platform-python", "/usr/bin/python3"} {
		if out, err := exec.Command(py, "-c", "import dnf.const; print(dnf.const.PLUGINPATH)").Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	return ""
}
