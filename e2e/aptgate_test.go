package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// The APT gate, with the real apt and dpkg in a Debian 12 chroot where kabiguard was installed
// by make install and v4l2loopback (built for the installed kernel 6.1.0-54) is required:
// installing a kernel that would boot without it is refused before dpkg touches anything;
// once the kernel has its own build it installs; a later kernel served by a weak link to that
// build installs; and removing the kernel whose build serves it is refused, naming both.
// What "would boot without" means is the forecast's, checked against what installing does.
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
	if after := packages(); after != before {
		t.Errorf("the refused transaction changed dpkg's database:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, err := os.Stat(c.Path("/boot/vmlinuz-" + k55.Release)); err == nil {
		t.Error("the refused kernel was unpacked")
	}

	// 2. With its own build (as DKMS makes it from the headers), 6.1.0-55 installs.
	testkit.Install(t, c.Dir, k55.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, k55))
	c.MustRun("apt-get install -y -q --no-install-recommends " + in(deb55))
	c.MustRun("dpkg -s linux-image-" + k55.Release + "-unsigned | grep -q '^Status: install ok installed'")

	// 3. 6.1.0-56: installed as the forecast says; a weak link serves it when the forecast said weak.
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

	// 4. Purging 6.1.0-55 would strip 6.1.0-56 of v4l2loopback: refused before dpkg runs.
	before = packages()
	out, code = c.Run("apt-get purge -y -q linux-image-" + k55.Release + "-unsigned")
	if code == 0 || !strings.Contains(out, "removing linux-image-"+k55.Release+"-unsigned strips "+k56) {
		t.Fatalf("apt-get purge: exit %d, want kabiguard's refusal naming both kernels:\n%s", code, out)
	}
	if after := packages(); after != before {
		t.Errorf("the refused removal changed dpkg's database")
	}
}
