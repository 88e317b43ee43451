package e2e

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// rpmNotShipped are the paths of make install that the RPM leaves out, as
// packaging/rpm/kabiguard.spec documents: Debian's kernel hooks, initramfs-tools parts (and
// the required.d parser only they read), the APT gate, and install's own manifest.
var rpmNotShipped = []string{"etc/kernel/", "usr/share/initramfs-tools/", "usr/share/kabiguard/required.sh",
	"etc/apt/", "usr/share/kabiguard/installed-files"}

// rpmMoved are the paths the RPM ships elsewhere: our weak-modules under its own name (the
// diversion of kmod's script), zsh's completion where RHEL's zsh reads vendor functions.
var rpmMoved = map[string]string{
	"usr/sbin/weak-modules":                       "usr/sbin/weak-modules.kabiguard",
	"usr/share/zsh/vendor-completions/_kabiguard": "usr/share/zsh/site-functions/_kabiguard",
}

// makeRPM builds the package with `make rpm` into bin, with the given version.
func makeRPM(t *testing.T, bin, version string) string {
	t.Helper()
	return makePackage(t, "rpm", bin, "RPM_VERSION="+version)
}

// intendedRPMFiles is what the RPM should list, derived from what make install records in its
// manifest (files, the configuration, the directories it creates) with the documented
// exclusions and moves applied, and manual pages compressed.
func intendedRPMFiles(t *testing.T, bin string) []string {
	t.Helper()
	stage := t.TempDir()
	dnfDir, err := exec.Command("sh", filepath.Join(repoDir(), "scripts/rpm-dnf-plugindir.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/rpm-dnf-plugindir.sh: %v", err)
	}
	cmd := exec.Command("make", "-s", "-C", repoDir(), "install", "DESTDIR="+stage, "BIN="+bin, "GO="+testkit.GoTool(),
		"DNF_PLUGINDIR="+strings.TrimSpace(string(dnfDir)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(stage, "usr/share/kabiguard/installed-files"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, p, _ := strings.Cut(sc.Text(), " ")
		p = strings.TrimPrefix(p, "/")
		if slices.ContainsFunc(rpmNotShipped, func(x string) bool { return p == x || strings.HasPrefix(p, x) }) {
			continue
		}
		if to, ok := rpmMoved[p]; ok {
			p = to
		}
		if strings.HasPrefix(p, "usr/share/man/man") {
			p += ".gz"
		}
		want = append(want, "/"+p)
	}
	sort.Strings(want)
	return want
}

// rpmIn runs rpm on the root directory root, with its database inside it.
func rpmIn(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := exec.Command("rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// fakeKmod builds a stand-in for RHEL's kmod package: like RHEL's, it owns
// /usr/sbin/weak-modules as a plain script (here one that says which version it is).
func fakeKmod(t *testing.T, version string) string {
	t.Helper()
	top := t.TempDir()
	spec := filepath.Join(top, "kmod.spec")
	body := `Name: kmod
Version: ` + version + `
Release: 1
Summary: stand-in for RHEL's kmod with its weak-modules script
License: none
BuildArch: noarch
%description
stand-in
%install
mkdir -p %{buildroot}/usr/sbin
printf '#!/bin/sh\necho rhel-weak-modules-` + version + `\n' >%{buildroot}/usr/sbin/weak-modules
chmod 755 %{buildroot}/usr/sbin/weak-modules
%files
/usr/sbin/weak-modules
`
	if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, spec).CombinedOutput()
	if err != nil {
		t.Fatalf("rpmbuild kmod: %v\n%s", err, out)
	}
	return filepath.Join(top, "RPMS", "noarch", "kmod-"+version+"-1.noarch.rpm")
}

// busyboxRoot is an empty root with an rpm database and busybox's applets in /bin, so the
// package's scriptlets (run by rpm in the root with /bin/sh) find a shell and the tools they use.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox (busybox-static) is needed to run the scriptlets in an empty root: ", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
	}
	// The scriptlets, like any, send what they do not need to /dev/null.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mknod", "-m", "666", filepath.Join(root, "dev", "null"), "c", "1", "3").CombinedOutput(); err != nil {
		t.Fatalf("mknod: %v\n%s", err, out)
	}
	rpmIn(t, root, "--initdb")
	return root
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Errorf("%s is not a link: %v", p, err)
	}
	return target
}

// The RPM, built by `make rpm`, lists exactly what make install places minus the documented
// Debian-only parts, passes rpmlint, declares no Conflicts and does not claim
// /usr/sbin/weak-modules, and its scriptlets divert kmod's weak-modules: installed with the
// real rpm into a root holding a stand-in for RHEL's kmod, /usr/sbin/weak-modules is ours and
// kmod's script is kept as weak-modules.kmod; a kmod update is diverted again; a kabiguard
// upgrade keeps the admin's kabiguard.conf; erasing puts kmod's script back (rpm -V kmod
// clean), says that the weak-updates links stay, and leaves nothing of ours.
func TestRPMPackage(t *testing.T) {
	testkit.NeedsRoot(t, "rpm installs the package into a root directory and runs its scriptlets there")
	bin := t.TempDir()
	v1 := makeRPM(t, bin, "0.1~test1")
	want := intendedRPMFiles(t, bin)
	checkRPMHeader(t, v1, want)

	root := busyboxRoot(t)
	rpmIn(t, root, "-i", "--nodeps", fakeKmod(t, "1"))
	before := tree(t, root)
	wm := filepath.Join(root, "usr/sbin/weak-modules")

	rpmIn(t, root, "-i", "--nodeps", v1)
	checkInstalled(t, root, want)

	rpmIn(t, root, "-U", "--nodeps", fakeKmod(t, "2"))
	checkDiverted(t, root, "after kmod's update", "2")

	conf := filepath.Join(root, "etc/kabiguard/kabiguard.conf")
	appendLine(t, conf, "share_builds = any\n")
	rpmIn(t, root, "-U", "--nodeps", makeRPM(t, bin, "0.1~test2"))
	if got := strings.TrimSpace(rpmIn(t, root, "-q", "--qf", "%{VERSION}", "kabiguard")); got != "0.1~test2" {
		t.Errorf("after the upgrade rpm has version %q", got)
	}
	if data, _ := os.ReadFile(conf); !strings.Contains(string(data), "share_builds = any") {
		t.Error("the upgrade lost the admin's change to " + conf)
	}
	checkDiverted(t, root, "after kabiguard's upgrade", "2")

	// A weak-updates link that kabiguard made stays after the erase, which says so.
	weak := filepath.Join(root, "lib/modules/6.1.0-99-amd64/weak-updates")
	if err := os.MkdirAll(weak, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../6.1.0-98-amd64/extra/x.ko", filepath.Join(weak, "x.ko")); err != nil {
		t.Fatal(err)
	}
	if out := rpmIn(t, root, "-e", "kabiguard"); !strings.Contains(out, "1 weak-updates link(s) under /lib/modules stay") {
		t.Errorf("rpm -e did not say that the link stays:\n%s", out)
	}
	if data, err := os.ReadFile(wm); err != nil || !strings.Contains(string(data), "rhel-weak-modules-2") {
		t.Errorf("after the erase /usr/sbin/weak-modules is not kmod's script: %.80q %v", data, err)
	}
	rpmIn(t, root, "-V", "--nodeps", "kmod")
	// rpm keeps an admin-modified %config(noreplace) file as .rpmsave on erase: the admin's.
	if data, err := os.ReadFile(conf + ".rpmsave"); err != nil || !strings.Contains(string(data), "share_builds = any") {
		t.Errorf("the admin's kabiguard.conf is not kept as .rpmsave: %v", err)
	}
	for _, p := range []string{conf + ".rpmsave", filepath.Join(root, "lib")} {
		if err := os.RemoveAll(p); err != nil { // the admin's and the test's
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Dir(conf))
	checkErased(t, root, before)
}

func rpmQuery(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("rpm", args...).Output()
	if err != nil {
		t.Fatalf("rpm %v: %v", args, err)
	}
	return string(out)
}

func appendLine(t *testing.T, p, line string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}

// onlyDirectories reports whether dir holds directories only, at any depth.
func onlyDirectories(dir string) bool {
	only := true
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			only = false
		}
		return nil
	})
	return only
}

// checkRPMHeader checks what rpm says of the package rpm before installing it: its files are
// want, it conflicts with nothing, does not claim weak-modules, requires kmod, carries the
// diversion's scriptlets and kmod trigger, and rpmlint finds no error (packaging/rpm/rpmlint.toml
// lists what it keeps on purpose).
func checkRPMHeader(t *testing.T, v1 string, want []string) {
	t.Helper()
	got := strings.Fields(strings.TrimSpace(rpmQuery(t, "-qlp", v1)))
	if !slices.Equal(got, want) {
		t.Errorf("rpm -qlp lists\n%s\nwant (make install's manifest, less the documented exclusions)\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := strings.TrimSpace(rpmQuery(t, "-qp", "--conflicts", v1)); c != "" {
		t.Errorf("the package declares conflicts %q; kmod must stay installable beside it", c)
	}
	for _, p := range strings.Split(rpmQuery(t, "-qp", "--provides", v1), "\n") {
		if strings.Contains(p, "weak-modules") && !strings.Contains(p, "weak-modules.kabiguard") || strings.HasPrefix(p, "kmod") {
			t.Errorf("the package provides %q: kmod owns weak-modules", p)
		}
	}
	if !slices.Contains(strings.Fields(rpmQuery(t, "-qp", "--requires", v1)), "kmod") {
		t.Error("the package does not require kmod, whose weak-modules it diverts")
	}
	scripts := rpmQuery(t, "-qp", "--scripts", "--triggers", v1)
	for _, s := range []string{"postinstall scriptlet", "postuninstall scriptlet", "triggerin scriptlet (using /bin/sh) -- kmod", "weak-modules.kmod"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm -qp --scripts --triggers shows no %q:\n%s", s, scripts)
		}
	}
	if rpmlint, err := exec.LookPath("rpmlint"); err != nil {
		t.Errorf("rpmlint is not installed (.ci/run installs it): %v", err)
	} else if out, err := exec.Command(rpmlint, "-c", filepath.Join(repoDir(), "packaging/rpm/rpmlint.toml"), v1).CombinedOutput(); err != nil {
		t.Errorf("rpmlint %s: %v\n%s", filepath.Base(v1), err, out)
	}
}

// checkDiverted checks that root's /usr/sbin/weak-modules leads to ours and kmod's script of
// kmodVersion is kept as weak-modules.kmod.
func checkDiverted(t *testing.T, root, when, kmodVersion string) {
	t.Helper()
	wm := filepath.Join(root, "usr/sbin/weak-modules")
	if got := readlink(t, wm); got != "weak-modules.kabiguard" {
		t.Errorf("%s: /usr/sbin/weak-modules -> %q, want weak-modules.kabiguard", when, got)
	}
	saved, err := os.ReadFile(wm + ".kmod")
	if err != nil || !strings.Contains(string(saved), "rhel-weak-modules-"+kmodVersion) {
		t.Errorf("%s: kmod's script is not kept as weak-modules.kmod: %.80q %v", when, saved, err)
	}
}

// checkErased checks that root is as before the package came, but for its database and the
// directories rpm made for the package's paths and leaves: no package owned them here (on
// RHEL, systemd, dracut, bash-completion, fish and zsh do); only such directories, holding
// no file, may stay.
func checkErased(t *testing.T, root string, before map[string]bool) {
	t.Helper()
	inDB := func(p string) bool { return strings.HasPrefix(p, "var/lib/rpm/") }
	added, removed := diffTrees(before, tree(t, root))
	for _, p := range slices.DeleteFunc(added, inDB) {
		if !strings.HasSuffix(p, "/") || !onlyDirectories(filepath.Join(root, p)) {
			t.Errorf("after the erase %s stays", p)
		}
	}
	if removed = slices.DeleteFunc(removed, inDB); len(removed) > 0 {
		t.Errorf("installing and erasing removed %v", removed)
	}
}

// checkInstalled checks root after the first installation: every file of want is there, the
// diversion is in place, the binaries run in the root, and rpm -V kmod reports the diverted
// path (nothing passes it off as kmod's own file).
func checkInstalled(t *testing.T, root string, want []string) {
	t.Helper()
	for _, p := range want {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("installed, the package's %s is missing: %v", p, err)
		}
	}
	checkDiverted(t, root, "installed", "1")
	// The installed binary runs in the root: no kernel there, nothing required, exit 0.
	if out, err := exec.Command("chroot", root, "/usr/sbin/kabiguard", "status").CombinedOutput(); err != nil {
		t.Errorf("kabiguard status in the root: %v\n%s", err, out)
	}
	if out, err := exec.Command("chroot", root, "/usr/sbin/weak-modules", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "weak-modules") {
		t.Errorf("the diverted /usr/sbin/weak-modules --help: %v\n%s", err, out)
	}
	// rpm -V kmod reports the diversion (and nothing passes it off as kmod's own file).
	if out, err := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-V", "--nodeps", "kmod").CombinedOutput(); err == nil || !strings.Contains(string(out), "/usr/sbin/weak-modules") {
		t.Errorf("rpm -V kmod while diverted: %v\n%s", err, out)
	}
}
