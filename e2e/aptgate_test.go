package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// The APT gate, with the real apt and dpkg in a Debian 12 chroot where kabiguard was installed
// by make install and v4l2loopback (built for the installed kernel 6.1.0-54) is required:
// installing a kernel that would boot without it is refused before dpkg touches anything;
// with on_missing_required = warn the same install prints the reasons and goes on. An
// upgrade that pulls that kernel in through a metapackage is refused too, and the ways out it
// prints are run as printed: the hold lets every other upgrade through with the kernel kept
// out; once the kernel has its own build, the unhold lets the kernel in. A later kernel
// served by a weak link to that build installs; and removing the kernel whose build serves it
// is refused, naming both. What "would boot without" means is the forecast's, checked against
// what installing does.
func TestAPTGate(t *testing.T) {
	k54, k55 := testkit.FetchKernel(t, "6.1.0-54"), testkit.FetchKernel(t, "6.1.0-55")
	deb55, deb56 := testkit.ImageDeb(t, "6.1.0-55"), testkit.ImageDeb(t, "6.1.0-56")
	c := testkit.NewChroot(t)
	c.MustRun("apt-get install -y -q --no-install-recommends kmod")
	c.InstallKabiguard()
	testkit.AddKernel(t, c.Dir, k54) // the running kernel's files, as the installer left them
	testkit.Install(t, c.Dir, k54.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, k54))
	testkit.Depmod(t, c.Dir, k54.Release)
	c.WriteFile("/etc/kabiguard/required.d/test.conf", "v4l2loopback\n")
	for _, deb := range []string{deb55, deb56} {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteFile("/tmp/"+filepath.Base(deb), string(data))
	}
	in := func(deb string) string { return "/tmp/" + filepath.Base(deb) }
	packages := func() string { return c.MustRun(`dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n'`) }

	// 1. 6.1.0-55 has no build of its own and 6.1.0-54's does not load into it: refused.
	var fc []struct {
		Kernel, Gate string
		Lost         []string
		Modules      []struct{ Module, State, From string }
	}
	if err := json.Unmarshal([]byte(c.MustRunOK("kabiguard forecast --json "+in(deb55)+" 2>/dev/null", 1)), &fc); err != nil || len(fc) != 1 {
		t.Fatalf("forecast --json: %v", err)
	}
	if fc[0].Gate != "refuse" {
		t.Fatalf("this test needs a kernel the forecast refuses; 6.1.0-55 with 6.1.0-54's build: %+v", fc[0])
	}
	before := packages()
	out, code := c.Run("apt-get install -y -q --no-install-recommends " + in(deb55))
	if code == 0 || !strings.Contains(out, "kabiguard: refusing the transaction") || !strings.Contains(out, k55.Release+" would boot without v4l2loopback") {
		t.Fatalf("apt-get install of %s: exit %d, want kabiguard's refusal:\n%s", filepath.Base(deb55), code, out)
	}
	if now := packages(); now != before {
		t.Errorf("the refused transaction changed dpkg's database:\nbefore\n%s\nafter\n%s", before, now)
	}
	if _, err := os.Stat(c.Path("/boot/vmlinuz-" + k55.Release)); err == nil {
		t.Error("the refused kernel was unpacked")
	}
	pkg55 := "linux-image-" + k55.Release + "-unsigned"
	installed := func(pkg string) string {
		return strings.TrimSpace(c.MustRun("dpkg-query -W -f '${Version} ${db:Status-Abbrev}' " + pkg + " 2>/dev/null || true"))
	}

	// 2. on_missing_required = warn: the same install says why and goes on; then it is purged
	// (nothing stays installed that needs it), back to where step 1 left the host.
	conf := c.MustRun("cat /etc/kabiguard/kabiguard.conf")
	c.WriteFile("/etc/kabiguard/kabiguard.conf", conf+"on_missing_required = warn\n")
	out, code = c.Run("apt-get install -y -q --no-install-recommends " + in(deb55))
	if code != 0 || !strings.Contains(out, "kabiguard: WARNING") || !strings.Contains(out, k55.Release+" would boot without v4l2loopback") || strings.Contains(out, "or accept the risk") {
		t.Fatalf("apt-get install of %s with on_missing_required = warn: exit %d, want the reasons (and no advice to set warn) and exit 0:\n%s", filepath.Base(deb55), code, out)
	}
	t.Logf("with on_missing_required = warn:\n%s", kabiguardLines(out))
	if v := installed(pkg55); !strings.HasPrefix(v, debField(t, deb55, "Version")+" ii") {
		t.Fatalf("with on_missing_required = warn, dpkg has %s as %q, want it installed", pkg55, v)
	}
	c.WriteFile("/etc/kabiguard/kabiguard.conf", conf)
	c.MustRun("apt-get purge -y -q " + pkg55)

	// 3. The kernel comes through a metapackage's upgrade: refused; the ways out as printed.
	repo := newAPTRepo(t, c)
	repo.add(fakeDeb(t, "linux-image-amd64", "99:1", ""), fakeDeb(t, "kabitest-other", "1", ""))
	c.MustRun("dpkg -i " + strings.Join(repo.files, " ")) // what the host had before the upgrade
	repo.files = nil
	repo.add(fakeDeb(t, "linux-image-amd64", "99:2", pkg55), fakeDeb(t, "kabitest-other", "2", ""), c.Path(in(deb55)))
	repo.publish()
	before = packages()
	out, code = c.Run("apt-get dist-upgrade -y -q")
	if code == 0 || !strings.Contains(out, "kabiguard: refusing the transaction") || packages() != before {
		t.Fatalf("apt-get dist-upgrade: exit %d, want kabiguard's refusal with nothing changed:\n%s", code, out)
	}
	t.Logf("the upgrade through the metapackage:\n%s", kabiguardLines(out))
	hold := advice(t, out, `apt-mark hold ([^,;']+), then run the upgrade again`, "apt-mark hold ")
	unhold := advice(t, out, `'(apt-mark unhold [^']+)' once 'kabiguard forecast' of the new kernel's package passes`, "")
	c.MustRun(hold)
	out = c.MustRun("apt-get dist-upgrade -y -q")
	if v := installed("kabitest-other"); !strings.HasPrefix(v, "2 ii") {
		t.Errorf("after %q the upgrade left kabitest-other at %q, want 2 installed:\n%s", hold, v, out)
	}
	if v := installed(pkg55); strings.Contains(v, "ii") || installed("linux-image-amd64") != "99:1 hi" {
		t.Errorf("after %q the upgrade let the refused kernel in: %s %q, linux-image-amd64 %q", hold, pkg55, v, installed("linux-image-amd64"))
	}

	// With its own build (as DKMS makes it from the headers), 6.1.0-55's forecast passes, and
	// after the unhold the same upgrade brings it in.
	testkit.Install(t, c.Dir, k55.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, k55))
	c.MustRun("kabiguard forecast " + in(deb55))
	c.MustRun(unhold)
	c.MustRun("apt-get dist-upgrade -y -q")
	if v := installed(pkg55); !strings.HasSuffix(v, " ii") || installed("linux-image-amd64") != "99:2 ii" {
		t.Fatalf("after %q the upgrade left %s %q, linux-image-amd64 %q", unhold, pkg55, v, installed("linux-image-amd64"))
	}

	// 4. 6.1.0-56: installed as the forecast says; a weak link serves it when the forecast said weak.
	if err := json.Unmarshal([]byte(c.MustRunOK("kabiguard forecast --json "+in(deb56)+" 2>/dev/null", 0, 1)), &fc); err != nil || len(fc) != 1 {
		t.Fatalf("forecast --json: %v", err)
	}
	k56 := fc[0].Kernel
	out, code = c.Run("apt-get install -y -q --no-install-recommends " + in(deb56))
	if (code == 0) != (fc[0].Gate == "pass") {
		t.Fatalf("apt-get install of %s: exit %d, the forecast said %s:\n%s", filepath.Base(deb56), code, fc[0].Gate, out)
	}
	if fc[0].Gate != "pass" || fc[0].Modules[0].State != "weak" {
		t.Fatalf("6.1.0-56 is not served by a weak link (forecast %+v): the removal case needs one", fc[0])
	}
	link := strings.TrimSpace(c.MustRun("readlink -f /lib/modules/" + k56 + "/weak-updates/dkms/v4l2loopback.ko"))
	if build := strings.TrimSpace(c.MustRun("readlink -f /lib/modules/" + k55.Release + "/updates/dkms/v4l2loopback.ko")); link != build {
		t.Errorf("%s's weak link leads to %q", k56, link)
	}

	// 5. Purging 6.1.0-55 would strip 6.1.0-56 of v4l2loopback: refused before dpkg runs.
	before = packages()
	out, code = c.Run("apt-get purge -y -q " + pkg55)
	if code == 0 || !strings.Contains(out, "removing linux-image-"+k55.Release+"-unsigned strips "+k56) {
		t.Fatalf("apt-get purge: exit %d, want kabiguard's refusal naming both kernels:\n%s", code, out)
	}
	if packages() != before {
		t.Errorf("the refused removal changed dpkg's database")
	}
}

// kabiguardLines are kabiguard's lines of an APT run's output.
func kabiguardLines(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "kabiguard:") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// advice finds the line of the refusal out that matches re and returns prefix + its first
// group: the command as kabiguard printed it.
func advice(t *testing.T, out, re, prefix string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the refusal prints no advice matching %q:\n%s", re, out)
	}
	return prefix + strings.TrimSpace(m[1])
}

// aptRepo is a flat APT repository in the chroot (/srv/repo), the only source `apt-get
// update` refreshes, so no network is needed.
type aptRepo struct {
	t     *testing.T
	c     *testkit.Chroot
	files []string // in the chroot
}

const aptRepoDir, aptRepoList = "/srv/repo", "/etc/apt/sources.list.d/kabitest.list"

func newAPTRepo(t *testing.T, c *testkit.Chroot) *aptRepo {
	c.WriteFile(aptRepoList, "deb [trusted=yes] file:"+aptRepoDir+" ./\n")
	return &aptRepo{t: t, c: c}
}

// add links or copies host files into the repository.
func (r *aptRepo) add(debs ...string) {
	r.t.Helper()
	for _, d := range debs {
		dst := path.Join(aptRepoDir, filepath.Base(d))
		if err := os.MkdirAll(r.c.Path(aptRepoDir), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Link(d, r.c.Path(dst)); err != nil {
			data, err := os.ReadFile(d)
			if err != nil {
				r.t.Fatal(err)
			}
			r.c.WriteFile(dst, string(data))
		}
		r.files = append(r.files, dst)
	}
}

// publish writes the Packages index of the files added (each one's control fields, as
// dpkg-deb reads them, with Filename, Size and SHA256) and updates APT's lists of it alone.
func (r *aptRepo) publish() {
	r.t.Helper()
	var idx strings.Builder
	for _, f := range r.files {
		data, err := os.ReadFile(r.c.Path(f))
		if err != nil {
			r.t.Fatal(err)
		}
		control, err := exec.Command("dpkg-deb", "-f", r.c.Path(f)).Output()
		if err != nil {
			r.t.Fatalf("dpkg-deb -f %s: %v", f, err)
		}
		fmt.Fprintf(&idx, "%sFilename: ./%s\nSize: %d\nSHA256: %x\n\n", control, path.Base(f), len(data), sha256.Sum256(data))
	}
	r.c.WriteFile(path.Join(aptRepoDir, "Packages"), idx.String())
	r.c.MustRun("apt-get update -q -o Dir::Etc::SourceList=" + aptRepoList + " -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0")
}

// fakeDeb builds an empty package (a stand-in for Debian's linux-image-amd64 metapackage,
// whose Depends names the current ABI's kernel package, or for any other upgrade).
func fakeDeb(t *testing.T, name, version, depends string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: kabiguard tests <root@localhost>\nDescription: test package\n", name, version)
	if depends != "" {
		control += "Depends: " + depends + "\n"
	}
	if err := os.MkdirAll(filepath.Join(dir, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(filepath.Dir(dir), name+"_"+strings.ReplaceAll(version, ":", "%3a")+"_all.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", dir, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb
}

// debField is one control field of a package file.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f %s %s: %v", deb, field, err)
	}
	return strings.TrimSpace(string(out))
}
