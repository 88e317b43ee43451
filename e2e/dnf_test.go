package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// dnfForecast is what the test reads of `kabiguard forecast --json`.
type dnfForecast struct {
	Kernel, Gate string
	Lost         []string
	Modules      []struct {
		Module, State string
		Problems      []struct{ Symbol, Kind, Want, Have string }
	}
}

// The dnf gate (dnf/kabiguard.py), with the real dnf 4 installing into installroots whose
// kernel 6.1.0-55 has v4l2loopback (built for it with Kbuild) required. A local repository
// holds kernel-core packages made of real Debian kernels laid out as RHEL ships them (6.1.0-54,
// 6.1.0-56, 6.12) and a kernel-modules-extra package that needs 6.1.0-54. Which kernel keeps
// v4l2loopback is what `kabiguard check` and `kabiguard forecast` say of the real files; the
// test only needs one that keeps it, one that loses it to CRCs and a newest one that loses it:
//   - policy refuse, `dnf install kernel-core`: the newest kernel is kept out and dnf installs
//     the best one left, which keeps the module;
//   - policy refuse, one transaction naming the CRC-refused kernel, the good one and the
//     package needing the refused one: the refused kernel is kept out with module, symbol and
//     CRCs, the package needing it too, and the good kernel installs;
//   - the refused kernel alone: dnf stops before anything is installed;
//   - policy warn: it installs, with the warning.
func TestDNFGate(t *testing.T) {
	testkit.NeedsRoot(t, "dnf installs into an installroot as root")
	for _, tool := range []string{"dnf", "createrepo_c", "rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install dnf, createrepo-c and rpm (.ci/run does)", tool)
		}
	}
	k54, k55, k56 := testkit.FetchKernel(t, "6.1.0-54"), testkit.FetchKernel(t, "6.1.0-55"), testkit.FetchKernel(t, "6.1.0-56")
	k612 := testkit.FetchKernel(t, "6.12.107+deb12")
	mod := testkit.V4L2Loopback(t, k55)
	kg := testkit.BuildBinary(t, "kabiguard")
	depends := strings.FieldsFunc(runOut(t, "modinfo", "-F", "depends", mod), func(r rune) bool { return r == ',' || r == '\n' })

	// An installroot: kernel 6.1.0-55 with v4l2loopback, required, and an empty rpm database.
	newRoot := func() string {
		root := testkit.NewRoot(t, k55)
		testkit.Install(t, root, k55.Release, "updates/dkms/v4l2loopback.ko", mod)
		testkit.Depmod(t, root, k55.Release)
		writeTestFile(t, filepath.Join(root, "etc/kabiguard/required.d/test.conf"), "v4l2loopback\n")
		runOut(t, "rpm", "--root", root, "--initdb")
		return root
	}
	root := newRoot()

	// The repository.
	repo := t.TempDir()
	rpms := map[*testkit.Kernel]string{}
	for _, k := range []*testkit.Kernel{k54, k56, k612} {
		rpms[k] = copyInto(t, testkit.KernelCoreRPM(t, k, depends...), repo)
	}
	v54, r54 := testkit.RPMVersion(k54.Release)
	extra := copyInto(t, testkit.RPMBuild(t, t.TempDir(), fmt.Sprintf(`Name: kernel-modules-extra
Version: %[1]s
Release: %[2]s
Summary: Modules for kernel %[1]s-%[2]s only
License: GPL-2.0-only
BuildArch: noarch
Requires: kernel-core = %[1]s-%[2]s
%%description
Test package made by kabiguard's tests.
%%files
`, v54, r54)), repo)
	runOut(t, "createrepo_c", "-q", repo)

	// What kabiguard says of each kernel (check and forecast agree on whether it keeps the
	// module), and what this test needs of them.
	fcs := map[*testkit.Kernel]dnfForecast{}
	for _, k := range []*testkit.Kernel{k54, k56, k612} {
		loads := exec.Command(kg, "check", "--symvers", k.Symvers, mod).Run() == nil
		fcs[k] = forecastRPM(t, kg, root, rpms[k])
		if loads != (fcs[k].Gate == "pass") {
			t.Fatalf("check (loads: %v) and forecast (%+v) disagree on %s", loads, fcs[k], k.Release)
		}
	}
	good, bad, newest := k56, k54, k612
	if fcs[good].Gate != "pass" || fcs[bad].Gate != "refuse" || fcs[newest].Gate != "refuse" ||
		len(fcs[bad].Modules) == 0 || len(fcs[bad].Modules[0].Problems) == 0 {
		t.Fatalf("this test needs %s keeping v4l2loopback, %s losing it to CRCs and %s losing it: %+v",
			good.Release, bad.Release, newest.Release, fcs)
	}
	nevra := func(k *testkit.Kernel) string {
		v, r := testkit.RPMVersion(k.Release)
		return "kernel-core-" + v + "-" + r
	}
	vg, _ := testkit.RPMVersion(good.Release)
	vn, _ := testkit.RPMVersion(newest.Release)
	if cmp := strings.TrimSpace(runOut(t, "rpm", "--eval", `%{lua:print(rpm.vercmp("`+vn+`", "`+vg+`"))}`)); cmp != "1" {
		t.Fatalf("rpm.vercmp(%s, %s) = %s: %s must be the newest kernel", vn, vg, cmp, newest.Release)
	}
	extraName := strings.TrimSuffix(filepath.Base(extra), ".rpm")
	p := fcs[bad].Modules[0].Problems[0]
	reason := []string{
		"kabiguard: " + nevra(bad) + ".x86_64 (" + bad.Release + ") would boot without v4l2loopback",
		fmt.Sprintf("kabiguard:     %s: module wants CRC %s, kernel has %s", p.Symbol, p.Want, p.Have),
	}
	passed := func(k *testkit.Kernel) string {
		return "kabiguard: " + nevra(k) + ".x86_64 (" + k.Release + ") keeps every required module"
	}
	installed := func(root, pkg string) bool { return exec.Command("rpm", "--root", root, "-q", pkg).Run() == nil }
	dnf := newDNF(t, repo, kg)

	t.Run("refuse keeps the newest kernel out, dnf installs the best one left", func(t *testing.T) {
		root := newRoot()
		out, code := dnf(root, "refuse", "install", "kernel-core")
		// A kernel kept out is something asked for and not done: dnf exits 1 after
		// installing the rest.
		if code != 1 || !strings.Contains(out, "ways out: ") {
			t.Fatalf("dnf install kernel-core: exit %d\n%s", code, out)
		}
		for _, want := range []string{"kabiguard: " + nevra(newest) + ".x86_64 (" + newest.Release + ") would boot without v4l2loopback",
			"kabiguard: kept out of this transaction: " + nevra(newest) + ".x86_64", passed(good)} {
			if !strings.Contains(out, want) {
				t.Errorf("dnf's output lacks %q:\n%s", want, out)
			}
		}
		if installed(root, nevra(newest)) || !installed(root, nevra(good)) {
			t.Errorf("installed: %s %v, %s %v; want only %s", nevra(newest), installed(root, nevra(newest)),
				nevra(good), installed(root, nevra(good)), nevra(good))
		}
		mustNotExist(t, filepath.Join(root, "lib/modules", newest.Release))
	})

	t.Run("refuse keeps the bad kernel and what needs it out, the rest installs", func(t *testing.T) {
		out, code := dnf(root, "refuse", "install", nevra(bad), nevra(good), extraName)
		t.Logf("dnf:\n%s", out)
		if code != 1 {
			t.Fatalf("dnf install: exit %d", code)
		}
		for _, want := range append(reason, "kabiguard: taking "+extraName+" out too", passed(good)) {
			if !strings.Contains(out, want) {
				t.Errorf("dnf's output lacks %q", want)
			}
		}
		if installed(root, nevra(bad)) || installed(root, extraName) || !installed(root, nevra(good)) {
			t.Errorf("installed: %s %v, %s %v, %s %v; want only the good kernel", nevra(bad), installed(root, nevra(bad)),
				extraName, installed(root, extraName), nevra(good), installed(root, nevra(good)))
		}
		mustNotExist(t, filepath.Join(root, "lib/modules", bad.Release))
		if _, err := os.Stat(filepath.Join(root, "lib/modules", good.Release, "vmlinuz")); err != nil {
			t.Errorf("the good kernel's files: %v", err)
		}
	})

	t.Run("refuse alone stops the transaction before anything is installed", func(t *testing.T) {
		before := runOut(t, "rpm", "--root", root, "-qa")
		out, code := dnf(root, "refuse", "install", nevra(bad))
		if code == 0 || !strings.Contains(out, "kabiguard: transaction stopped: nothing was installed or removed") || !strings.Contains(out, reason[0]) {
			t.Fatalf("dnf install %s: exit %d, want kabiguard's refusal:\n%s", nevra(bad), code, out)
		}
		if after := runOut(t, "rpm", "--root", root, "-qa"); after != before {
			t.Errorf("the stopped transaction changed the rpm database:\n%s\n%s", before, after)
		}
		mustNotExist(t, filepath.Join(root, "lib/modules", bad.Release))
	})

	// A kmod package with a build of v4l2loopback for the refused kernel, in the same
	// transaction: forecast together with the kernel, its build is the kernel's own, and both
	// install. (RHEL's split kernel-modules packages go the same way: see
	// forecast.TestSplitKernelReadTogether.)
	t.Run("a kmod for the new kernel in the same transaction counts as its build", func(t *testing.T) {
		root := newRoot()
		v, r := testkit.RPMVersion(bad.Release)
		kmodRepo := t.TempDir()
		copyInto(t, testkit.RPMBuild(t, t.TempDir(), fmt.Sprintf(`Name: kmod-v4l2loopback
Version: %[1]s
Release: %[2]s
Summary: v4l2loopback built for kernel %[3]s
License: GPL-2.0-only
Requires: kernel-core = %[1]s-%[2]s
%%description
Test package made by kabiguard's tests.
%%install
install -D -m 644 %[4]s %%{buildroot}/lib/modules/%[3]s/extra/v4l2loopback/v4l2loopback.ko
%%files
/lib/modules/%[3]s/extra/v4l2loopback/v4l2loopback.ko
`, v, r, bad.Release, testkit.V4L2Loopback(t, bad))), kmodRepo)
		copyInto(t, rpms[bad], kmodRepo)
		runOut(t, "createrepo_c", "-q", kmodRepo)
		out, code := newDNF(t, kmodRepo, kg)(root, "refuse", "install", nevra(bad), "kmod-v4l2loopback")
		if code != 0 || !strings.Contains(out, passed(bad)) {
			t.Fatalf("dnf install %s kmod-v4l2loopback: exit %d, want both installed and the kernel passed:\n%s", nevra(bad), code, out)
		}
		if !installed(root, nevra(bad)) || !installed(root, "kmod-v4l2loopback") {
			t.Errorf("not installed: %s %v, kmod-v4l2loopback %v", nevra(bad), installed(root, nevra(bad)), installed(root, "kmod-v4l2loopback"))
		}
	})

	// A removal: kernel-core-56 installed by rpm carries the DKMS build of v4l2loopback that
	// 6.1.0-55 (no build of its own) loads through a weak link; DKMS removes its build with
	// the kernel, so `dnf remove` of 56 would strip 55, which stays. Refused under refuse,
	// done with the warning under warn.
	t.Run("a removal that strips a kernel staying installed", func(t *testing.T) {
		root := newRoot()
		must(t, os.Remove(filepath.Join(root, "lib/modules", k55.Release, "updates/dkms/v4l2loopback.ko")))
		testkit.Depmod(t, root, k55.Release)
		runOut(t, "rpm", "--root", root, "-i", "--nodeps", rpms[good])
		testkit.Install(t, root, good.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, good))
		testkit.Depmod(t, root, good.Release)
		runOut(t, kg, "link", "--root", root, "--no-initramfs")
		var fc struct {
			Losses []struct{ Kernel, Module string }
		}
		js, _ := exec.Command(kg, "forecast", "--json", "--root", root, "--removing", good.Release).Output()
		if err := json.Unmarshal(js, &fc); err != nil || len(fc.Losses) != 1 || fc.Losses[0].Kernel != k55.Release {
			t.Fatalf("this step needs %s to lose v4l2loopback when %s goes (forecast --removing: %v %s)", k55.Release, good.Release, err, js)
		}
		loss := k55.Release + " stays installed but loses required module v4l2loopback"
		out, code := dnf(root, "refuse", "remove", nevra(good))
		if code == 0 || !strings.Contains(out, loss) || !strings.Contains(out, "kabiguard: transaction stopped: nothing was installed or removed") {
			t.Fatalf("dnf remove %s: exit %d, want kabiguard's refusal naming %q:\n%s", nevra(good), code, loss, out)
		}
		if !installed(root, nevra(good)) {
			t.Fatalf("the refused removal removed %s", nevra(good))
		}
		out, code = dnf(root, "warn", "remove", nevra(good))
		if code != 0 || !strings.Contains(out, loss) || !strings.Contains(out, "kabiguard: policy warn: removing it all the same") {
			t.Fatalf("dnf remove %s with policy warn: exit %d:\n%s", nevra(good), code, out)
		}
		if installed(root, nevra(good)) {
			t.Errorf("%s is still installed", nevra(good))
		}
	})

	t.Run("warn installs the bad kernel with the warning", func(t *testing.T) {
		if fc := forecastRPM(t, kg, root, rpms[bad]); fc.Gate != "refuse" {
			t.Fatalf("forecast of %s now: %+v, want refuse", nevra(bad), fc)
		}
		out, code := dnf(root, "warn", "install", nevra(bad))
		if code != 0 || !strings.Contains(out, "kabiguard: policy warn: installing it all the same") || !strings.Contains(out, reason[1]) {
			t.Fatalf("dnf install %s with policy warn: exit %d:\n%s", nevra(bad), code, out)
		}
		if !installed(root, nevra(bad)) {
			t.Errorf("%s is not installed", nevra(bad))
		}
		if _, err := os.Stat(filepath.Join(root, "lib/modules", bad.Release, "vmlinuz")); err != nil {
			t.Errorf("the kernel's files: %v", err)
		}
	})
}

// newDNF returns a runner of the real dnf on an installroot with repo as its only repository and the
// repository's plugin (dnf/kabiguard.py) loaded with a kabiguard.conf of the given policy.
func newDNF(t *testing.T, repo, kabiguard string) func(root, policy string, args ...string) (string, int) {
	conf := filepath.Join(t.TempDir(), "dnf.conf")
	writeTestFile(t, conf, "[main]\n")
	reposd := t.TempDir()
	shipped, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "dnf", "kabiguard.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return func(root, policy string, args ...string) (string, int) {
		t.Helper()
		pconf := t.TempDir()
		c := strings.Replace(string(shipped), "\npolicy = refuse\n", "\npolicy = "+policy+"\n", 1)
		c = strings.Replace(c, "\nkabiguard = /usr/sbin/kabiguard\n", "\nkabiguard = "+kabiguard+"\n", 1)
		if !strings.Contains(c, "\npolicy = "+policy+"\n") || !strings.Contains(c, "\nkabiguard = "+kabiguard+"\n") {
			t.Fatal("dnf/kabiguard.conf has no 'policy = refuse' or 'kabiguard = /usr/sbin/kabiguard' line to set")
		}
		writeTestFile(t, filepath.Join(pconf, "kabiguard.conf"), c)
		cmd := exec.Command("dnf", append([]string{"-y", "--config", conf, "--installroot", root, "--releasever", "12",
			"--setopt=reposdir=" + reposd, "--repofrompath", "kabiguard-test,file://" + repo, "--nogpgcheck",
			"--setopt=pluginpath=" + filepath.Join(testkit.RepoDir(), "dnf"), "--setopt=pluginconfpath=" + pconf}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("dnf: %v", err)
		}
		return string(out), 0
	}
}

func forecastRPM(t *testing.T, kabiguard, root, rpm string) dnfForecast {
	t.Helper()
	out, err := exec.Command(kabiguard, "forecast", "--json", "--root", root, rpm).Output()
	var fcs []dnfForecast
	if jerr := json.Unmarshal(out, &fcs); jerr != nil || len(fcs) != 1 {
		t.Fatalf("kabiguard forecast %s: %v %v\n%s", rpm, err, jerr, out)
	}
	return fcs[0]
}

func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyInto(t *testing.T, file, dir string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, filepath.Base(file)), string(data))
	return filepath.Join(dir, filepath.Base(file))
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (or cannot be read: %v): nothing of the refused kernel may be installed", p, err)
	}
}
