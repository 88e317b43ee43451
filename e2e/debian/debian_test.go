// Package debian runs kabiguard on a real Debian 12 system: a debootstrap chroot (cached by
// internal/testkit), the archive's apt, dpkg, DKMS (v4l2loopback-dkms), initramfs-tools and then
// dracut, real Debian kernels, kabiguard installed with `make install` as an admin would. Issue
// 11's scenario runs in order, each of its points asserted by a subtest where it arises.
package debian

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

const (
	k55        = "6.1.0-55-amd64" // 6.1.192-1: DKMS builds v4l2loopback for it
	k56        = "6.1.0-56-amd64" // 6.1.192-2: same kABI, served by a weak link to 55's build
	k54        = "6.1.0-54-amd64" // 6.1.190-1: other CRCs than 55 for v4l2loopback's symbols
	k612       = "6.12.107+deb12-amd64"
	dkmsModule = "v4l2loopback/0.12.7" // v4l2loopback-dkms 0.12.7-2 of bookworm
)

// point runs f as the subtest that asserts one point of issue 11.
func point(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, f)
}

// step runs one step of the scenario and logs its time.
func step(t *testing.T, name string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	t.Logf("STEP %-58s %6.1fs", name, time.Since(start).Seconds())
}

// statusRow is one line of `kabiguard status`: kernel, module (with * when required), state.
type statusRow struct{ Kernel, Module, State, Detail string }

func status(t *testing.T, c *testkit.Chroot) (map[string]statusRow, string, int) {
	t.Helper()
	out, code := c.Run("kabiguard status")
	rows := map[string]statusRow{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] == "KERNEL" {
			continue
		}
		rows[f[0]+" "+strings.TrimSuffix(f[1], "*")] = statusRow{f[0], f[1], f[2], strings.Join(f[3:], " ")}
	}
	return rows, out, code
}

func wantState(t *testing.T, rows map[string]statusRow, out, kernel, module, state, detail string) {
	t.Helper()
	r, ok := rows[kernel+" "+module]
	if !ok || r.State != state || !strings.Contains(r.Detail, detail) {
		t.Fatalf("status: want %s %s %s (%q), got %+v\n%s", kernel, module, state, detail, r, out)
	}
}

// noDangling fails when any weak-updates link of any kernel resolves to nothing.
func noDangling(t *testing.T, c *testkit.Chroot) {
	t.Helper()
	out := c.MustRun(`find /lib/modules/ -path '*/weak-updates/*' -type l ! -exec test -e {} \; -print`)
	if strings.TrimSpace(out) != "" {
		t.Fatalf("dangling weak-updates links:\n%s", out)
	}
}

// imageRefreshedAfterLinkChange asserts point 2 for kernel's image after DKMS changed its links
// with weak-modules --no-initramfs: the image is current already, or status shows it stale (or
// owed) and the next hook run (`kabiguard link`) refreshes it.
func imageRefreshedAfterLinkChange(t *testing.T, c *testkit.Chroot, kernel string) {
	t.Helper()
	img := "/boot/initrd.img-" + kernel
	out, code := c.Run("kabiguard initramfs verify -k " + kernel + " " + img)
	if code == 0 {
		return // refreshed
	}
	sout, scode := c.Run("kabiguard status")
	if !strings.Contains(sout, img) || !strings.Contains(sout, "stale") && !strings.Contains(sout, "owed") {
		t.Errorf("%s's image is stale and status does not say so:\nverify (exit %d):\n%s\nstatus (exit %d):\n%s", kernel, code, out, scode, sout)
	}
	lout, lcode := c.Run("kabiguard link")
	if lcode != 0 || !strings.Contains(lout, "refreshed "+img) {
		t.Fatalf("link did not refresh the owed image: exit %d\n%s", lcode, lout)
	}
	if vout, vcode := c.Run("kabiguard initramfs verify -k " + kernel + " " + img); vcode != 0 {
		t.Fatalf("after link the image is still not current:\n%s", vout)
	}
}

// imageHolds asserts that kernel's image (/boot/initrd.img-KERNEL, read by kabiguard) holds a
// module file of kernel whose path ends in path, as the kernel's tree resolves it ([current]).
func imageHolds(t *testing.T, c *testkit.Chroot, kernel, path string) {
	t.Helper()
	img := "/boot/initrd.img-" + kernel
	re := regexp.MustCompile(`lib/modules/` + regexp.QuoteMeta(kernel) + `/(\S*/)?` + regexp.QuoteMeta(path) + `\b.*\[current\]`)
	if out := c.MustRun("kabiguard initramfs ls " + img); !re.MatchString(out) {
		t.Fatalf("%s holds no current %s:\n%s", img, path, out)
	}
}

// purgeStrips purges purged's kernel package, which strips stripped of v4l2loopback (DKMS's
// prerm removes purged's build, weak-modules drops stripped's link to it): APT's gate refuses
// the purge before dpkg runs; dpkg --purge (no APT, no gate before it) then does it, and every
// hook must say it loudly. It asserts that status and the gate then see stripped without the
// module, and returns dpkg's output.
func purgeStrips(t *testing.T, c *testkit.Chroot, purged, stripped string) string {
	t.Helper()
	pkg := "linux-image-" + purged + "-unsigned"
	out, code := c.Run("apt-get purge -y -q " + pkg)
	if code == 0 || !strings.Contains(out, "kabiguard: refusing the transaction") || !strings.Contains(out, "removing "+pkg+" strips "+stripped) {
		t.Fatalf("apt-get purge %s: exit %d, want the APT gate's refusal naming %s:\n%s", pkg, code, stripped, out)
	}
	c.MustRun("dpkg -s " + pkg + " | grep -q '^Status: install ok installed'")
	c.MustRun("test -e /lib/modules/" + stripped + "/weak-updates/dkms/v4l2loopback.ko")
	out, code = c.Run("dpkg --purge " + pkg)
	if code != 0 {
		t.Fatalf("dpkg --purge exit %d:\n%s", code, out)
	}
	c.MustRun("test ! -e /lib/modules/" + stripped + "/weak-updates/dkms/v4l2loopback.ko")
	rows, sout, scode := status(t, c)
	if scode != 1 {
		t.Fatalf("status exit %d, want 1 (%s lacks a required module)\n%s", scode, stripped, sout)
	}
	if r, ok := rows[stripped+" v4l2loopback"]; !ok || r.State == "weak" || r.State == "native" {
		t.Fatalf("status still serves %s: %+v\n%s", stripped, r, sout)
	}
	if out, code := c.Run("kabiguard gate -k " + stripped); code != 1 || !strings.Contains(out, "refusing kernel "+stripped) {
		t.Fatalf("gate -k %s exit %d, want a refusal:\n%s", stripped, code, out)
	}
	noDangling(t, c)
	return out
}

// removalIsLoud asserts point 1: out, of the removal of purged, has an error-level line naming
// stripped and the module it lost.
func removalIsLoud(t *testing.T, out, purged, stripped string) {
	t.Helper()
	k := regexp.QuoteMeta(stripped)
	re := regexp.MustCompile(`(?i)(error|^E:|refus).*` + k + `.*v4l2loopback|(?i)(error|^E:|refus).*v4l2loopback.*` + k)
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			return
		}
	}
	t.Fatalf("dpkg --purge linux-image-%s stripped %s of v4l2loopback without an error naming both:\n%s", purged, stripped, out)
}

// imageOwedAfterRemoval asserts point 2 after a removal changed kernel's links: its image no
// longer holds a module gone from its tree, or status fails and shows the image.
func imageOwedAfterRemoval(t *testing.T, c *testkit.Chroot, kernel string) {
	t.Helper()
	out, code := c.Run("kabiguard initramfs verify -k " + kernel + " /boot/initrd.img-" + kernel)
	if code == 0 {
		return
	}
	sout, scode := c.Run("kabiguard status")
	if scode == 0 || !strings.Contains(sout, "/boot/initrd.img-"+kernel) {
		t.Fatalf("%s's image holds a module gone from its tree and status does not say so:\nverify (exit %d):\n%s\nstatus (exit %d):\n%s", kernel, code, out, scode, sout)
	}
}

// nativeEarlyRefused requires the native module dummy early until t ends, asserts that the gate
// refuses kernel (whose image lacks it) without advising any of bad, and returns the refusal.
func nativeEarlyRefused(t *testing.T, c *testkit.Chroot, kernel string, bad ...string) string {
	t.Helper()
	c.WriteFile("/etc/kabiguard/required.d/native.conf", "dummy early\n")
	t.Cleanup(func() { c.MustRun("rm /etc/kabiguard/required.d/native.conf") })
	out, code := c.Run("kabiguard gate -k " + kernel)
	if code != 1 {
		t.Fatalf("gate -k %s: exit %d, want a refusal\n%s", kernel, code, out)
	}
	for _, b := range bad {
		if strings.Contains(out, b) {
			t.Errorf("refusal of a native early module advises %q on this host:\n%s", b, out)
		}
	}
	return out
}

// ways returns the "Ways out" lines of a refusal.
func ways(out string) []string {
	var w []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "- ") {
			w = append(w, strings.TrimSpace(l))
		}
	}
	return w
}

// TestDebianFlow is issue 11's scenario on a real Debian 12 chroot, with initramfs-tools and then
// with dracut (dracutPhase). Warm cache: 3-5 min on 2 shared cores, nothing downloaded,
// dominated by dpkg unpacking kernels, DKMS building v4l2loopback and the image generators.
// Cold (empty cache): about 1 min more for debootstrap, and ~350 MB of .debs fetched once (the
// cache then holds ~570 MB; dracut adds under 1 MB).
func TestDebianFlow(t *testing.T) {
	start := time.Now()
	var c *testkit.Chroot
	step(t, "chroot (cached debootstrap minbase, hard-linked copy)", func() { c = testkit.NewChroot(t) })
	step(t, "make install DESTDIR=chroot; require v4l2loopback early", func() {
		c.InstallKabiguard()
		c.WriteFile("/etc/kabiguard/required.d/test.conf", "v4l2loopback early\n")
		// Images with only what they need (the required early modules kabiguard's hook adds):
		// Debian's MODULES=most costs 20 s and 36 MB per image for nothing this test asserts.
		c.WriteFile("/etc/initramfs-tools/conf.d/kabiguard-test", "MODULES=list\n")
	})

	step(t, "apt-get install dkms v4l2loopback-dkms linux-headers-"+k55, func() {
		c.MustRun("apt-get install -y -q dkms v4l2loopback-dkms linux-headers-" + k55)
		c.MustRun("test -f /lib/modules/" + k55 + "/updates/dkms/v4l2loopback.ko")
	})

	step(t, "apt-get install linux-image-"+k55+"-unsigned initramfs-tools", func() {
		out := c.MustRun("apt-get install -y -q initramfs-tools linux-image-" + k55 + "-unsigned")
		if !strings.Contains(out, "update-initramfs: Generating /boot/initrd.img-"+k55) {
			t.Fatalf("no image made for %s:\n%s", k55, out)
		}
		rows, sout, _ := status(t, c)
		wantState(t, rows, sout, k55, "v4l2loopback", "native", "/updates/dkms/v4l2loopback.ko")
		c.MustRun("kabiguard gate -k " + k55)
		// The hook put the required early module into Debian's default image.
		c.MustRun("lsinitramfs /boot/initrd.img-" + k55 + " | grep -q 'updates/dkms/v4l2loopback.ko'")
		if got := c.MustRun("readlink /vmlinuz"); strings.TrimSpace(got) != "boot/vmlinuz-"+k55 {
			t.Fatalf("/vmlinuz -> %s", got)
		}
	})

	step(t, "apt-get install linux-image+headers "+k56+"; dkms remove -k "+k56, func() {
		c.MustRun("apt-get install -y -q linux-image-" + k56 + "-unsigned linux-headers-" + k56)
		c.MustRun("test -f /lib/modules/" + k56 + "/updates/dkms/v4l2loopback.ko")
		// Without its own build, 56 must be served by 55's: same kABI.
		c.MustRun("dkms remove " + dkmsModule + " -k " + k56)
		rows, sout, code := status(t, c)
		if code != 0 {
			t.Fatalf("status exit %d\n%s", code, sout)
		}
		wantState(t, rows, sout, k56, "v4l2loopback", "weak", "<- "+k55)
		link := strings.TrimSpace(c.MustRun("readlink -f /lib/modules/" + k56 + "/weak-updates/dkms/v4l2loopback.ko"))
		if link != "/usr/lib/modules/"+k55+"/updates/dkms/v4l2loopback.ko" {
			t.Fatalf("weak link of %s resolves to %q", k56, link)
		}
		// modprobe (as the kernel's boot will) finds the weak link.
		mp := c.MustRun("modprobe -S " + k56 + " --show-depends v4l2loopback")
		if !strings.Contains(mp, "/weak-updates/") {
			t.Fatalf("modprobe -S %s resolves v4l2loopback elsewhere:\n%s", k56, mp)
		}
		c.MustRun("kabiguard gate -k " + k56)
		noDangling(t, c)
	})

	// Point 2: DKMS changed 56's links (its own build went, 55's came) and
	// called weak-modules --no-initramfs; 56's image still holds the removed build. The next
	// hook run must refresh it, or status and link must report it owed.
	point(t, "point2-image-refreshed-after-dkms-link-change", func(t *testing.T) {
		imageRefreshedAfterLinkChange(t, c.For(t), k56)
	})

	// Point 5b and 6: a required early module that the image lacks.
	point(t, "point5-6-missing-early-native-module", func(t *testing.T) {
		c := c.For(t)
		// Point 5: ways out that work on an initramfs-tools host, for a native module.
		gout := nativeEarlyRefused(t, c, k56, "dkms autoinstall", "akmods", "dracut with")
		if !strings.Contains(gout, `"dummy early"`) {
			t.Errorf("refusal does not quote the line as it is (\"dummy early\"):\n%s", gout)
		}
		if !strings.Contains(gout, "update-initramfs -u -k "+k56) && !strings.Contains(gout, "/etc/initramfs-tools/modules") {
			t.Errorf("refusal on an initramfs-tools host names neither update-initramfs nor /etc/initramfs-tools/modules:\n%s", gout)
		}
		// Point 6: status must not say all is well while the gate refuses, and must show the image.
		sout, scode := c.Run("kabiguard status")
		if scode == 0 || !strings.Contains(sout, "/boot/initrd.img-"+k56) {
			t.Errorf("status exit %d while gate refuses %s; the image is not shown:\n%s", scode, k56, sout)
		}
		jout, _ := c.Run("kabiguard status --json 2>/dev/null")
		if !strings.Contains(jout, "/boot/initrd.img-"+k56) {
			t.Errorf("status --json shows no image of %s:\n%s", k56, jout)
		}
		// The way out that works here: kabiguard's initramfs-tools hook adds the early module.
		c.MustRun("update-initramfs -u -k " + k56)
		if out, code := c.Run("kabiguard gate -k " + k56); code != 0 {
			t.Errorf("after update-initramfs -u -k %s the gate still refuses:\n%s", k56, out)
		}
	})

	step(t, "kernel "+k54+" without its DKMS build: refused naming CRCs; the advised dkms way out works", func() {
		c.MustRun("apt-get install -y -q linux-image-" + k54 + "-unsigned linux-headers-" + k54)
		c.MustRun("test -f /lib/modules/" + k54 + "/updates/dkms/v4l2loopback.ko")
		c.MustRun("dkms remove " + dkmsModule + " -k " + k54)
		// 55's build does not load into 54: no link, and the refusal names symbol and CRCs.
		c.MustRun("test ! -e /lib/modules/" + k54 + "/weak-updates/dkms/v4l2loopback.ko")
		rows, sout, _ := status(t, c)
		wantState(t, rows, sout, k54, "v4l2loopback", "incompatible", "module wants CRC 0x")
		out, code := c.Run("kabiguard gate -k " + k54)
		crc := regexp.MustCompile(`module_layout: module wants CRC 0x[0-9a-f]+, kernel has 0x[0-9a-f]+`)
		if code != 1 || !strings.Contains(out, "refusing kernel "+k54) || !crc.MatchString(out) {
			t.Fatalf("gate -k %s exit %d, want a refusal naming CRCs:\n%s", k54, code, out)
		}
		advice := "dkms autoinstall -k " + k54
		if !strings.Contains(out, "'"+advice+"'") {
			t.Fatalf("the refusal does not advise %q:\n%s", advice, out)
		}
		c.MustRun(advice)
		c.MustRun("kabiguard gate -k " + k54)
		rows, sout, _ = status(t, c)
		wantState(t, rows, sout, k54, "v4l2loopback", "native", "/updates/dkms/v4l2loopback.ko")
		wantState(t, rows, sout, k56, "v4l2loopback", "weak", "<- "+k55)
		noDangling(t, c)
	})

	var refusal string
	step(t, "apt-get install linux-image-"+k612+"-unsigned (no headers): refused by the APT gate, then by the postinst for dpkg -i", func() {
		// The APT gate refuses the transaction before dpkg runs: nothing is unpacked.
		out, code := c.Run("apt-get install -y -q linux-image-" + k612 + "-unsigned")
		if code == 0 || !strings.Contains(out, "kabiguard: refusing the transaction") || !strings.Contains(out, k612+" would boot without v4l2loopback") {
			t.Fatalf("apt-get exit %d, want the APT gate's refusal of %s:\n%s", code, k612, out)
		}
		if st, _ := c.Run("dpkg-query -W -f='${Status}' linux-image-" + k612 + "-unsigned"); strings.Contains(st, "ok") && !strings.Contains(st, "not-installed") {
			t.Fatalf("the APT gate's refusal left %s in dpkg's database: %q", k612, st)
		}
		// A kernel installed by other means (dpkg -i): the postinst gate is the second line.
		c.MustRun("cd /tmp && apt-get download -q linux-image-" + k612 + "-unsigned")
		out, code = c.Run("dpkg -i /tmp/linux-image-" + k612 + "-unsigned_*.deb")
		refusal = out
		if code == 0 || !strings.Contains(out, "kabiguard: refusing kernel "+k612) {
			t.Fatalf("dpkg -i exit %d, want kabiguard's refusal of %s:\n%s", code, k612, out)
		}
		if !strings.Contains(out, "v4l2loopback") {
			t.Fatalf("the refusal does not name the module:\n%s", out)
		}
		// dpkg stopped before the initramfs: the image was never built, the package is
		// half-configured, no link went into 6.12's tree.
		c.MustRun("test ! -e /boot/initrd.img-" + k612)
		if st := c.MustRun("dpkg-query -W -f='${Status}' linux-image-" + k612 + "-unsigned"); st != "install ok half-configured" {
			t.Fatalf("dpkg status of %s: %q", k612, st)
		}
		c.MustRun("test ! -e /lib/modules/" + k612 + "/weak-updates")
		rows, sout, _ := status(t, c)
		wantState(t, rows, sout, k612, "v4l2loopback", "missing", "")
		wantState(t, rows, sout, k56, "v4l2loopback", "weak", "<- "+k55)
		noDangling(t, c)
	})

	// Point 4: after the refusal nothing may point the boot at 6.12.
	point(t, "point4-refusal-leaves-boot-on-refused-kernel", func(t *testing.T) {
		c := c.For(t)
		for _, l := range []string{"/vmlinuz", "/initrd.img"} {
			if got := strings.TrimSpace(c.MustRun("readlink " + l)); strings.Contains(got, k612) {
				t.Errorf("%s -> %s after %s was refused", l, got, k612)
			}
		}
		c.MustRun("for l in /vmlinuz /initrd.img; do test -e $l || { echo $l dangles; exit 1; }; done")
	})

	// Point 5a: every way out listed must work on this host; for a kernel
	// without a headers package, removing it is one (the one that works here).
	point(t, "point5-ways-out-work", func(t *testing.T) {
		c := c.For(t)
		w := ways(refusal)
		purge := regexp.MustCompile(`apt(-get)? (purge|remove) linux-image-` + regexp.QuoteMeta(k612))
		if !purge.MatchString(strings.Join(w, "\n")) {
			t.Errorf("ways out do not list removing the kernel (%s):\n%s", purge, strings.Join(w, "\n"))
		}
		for _, l := range w {
			if m := regexp.MustCompile(`'(dkms [^']*)'`).FindStringSubmatch(l); m != nil {
				if out, code := c.Run(m[1]); code != 0 {
					t.Errorf("way out %q fails here (exit %d):\n%s", m[1], code, out)
				}
			}
		}
	})

	step(t, "apt-get purge linux-image-"+k612+"-unsigned (the way out)", func() {
		c.MustRun("apt-get purge -y -q linux-image-" + k612 + "-unsigned")
		c.MustRun("test ! -e /lib/modules/" + k612)
		// Debian's linux-update-symlinks picks the kernel that boots next (the one /vmlinuz.old
		// named); whichever it is, it must exist and pass the gate.
		got := strings.TrimSpace(c.MustRun("readlink /vmlinuz"))
		next := strings.TrimPrefix(got, "boot/vmlinuz-")
		if next == got || next == k612 {
			t.Fatalf("/vmlinuz -> %s after purging %s", got, k612)
		}
		c.MustRun("test -e /vmlinuz && test -e /initrd.img")
		c.MustRun("dpkg --audit")
		c.MustRun("kabiguard gate -k " + next)
		c.MustRun("kabiguard gate -k " + k56)
		noDangling(t, c)
	})

	var purgeOut string
	step(t, "apt-get purge linux-image-"+k55+"-unsigned (56 loses its module)", func() {
		purgeOut = purgeStrips(t, c, k55, k56)
	})

	// Point 1: a removal that strips another installed kernel of a required
	// module must be loud: an error-level line naming the kernel and the module.
	point(t, "point1-removal-stripping-56-is-loud", func(t *testing.T) { removalIsLoud(t, purgeOut, k55, k56) })

	// Point 2: the purge changed 56's links; its image still holds a copy of
	// a module no longer in its tree. Refreshed by the hooks that ran, or reported owed.
	point(t, "point2-image-refreshed-after-removal", func(t *testing.T) { imageOwedAfterRemoval(t, c.For(t), k56) })

	// Point 6: DKMS builds for a kernel whose headers are installed but whose
	// image is not; such a directory is shown as a build without a kernel.
	point(t, "point6-build-without-kernel-shown-as-such", func(t *testing.T) {
		c := c.For(t)
		// DKMS dropped the module with 55's kernel (its last build); the package's postinst adds
		// it back and builds it for every kernel that has headers: 56, and 55, whose headers
		// stayed while its image went.
		c.MustRun("dpkg-reconfigure v4l2loopback-dkms")
		c.MustRun("test -f /lib/modules/" + k55 + "/updates/dkms/v4l2loopback.ko && test ! -e /boot/vmlinuz-" + k55)
		// Its exit status says whether every early module is in its image (56's is owed a
		// refresh here); this point is about how the build is shown.
		jout, _ := c.Run("kabiguard status --json 2>/dev/null")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(jout), &rows); err != nil {
			t.Fatalf("status --json: %v\n%s", err, jout)
		}
		sout, _ := c.Run("kabiguard status")
		for _, r := range rows {
			if r["kernel"] == k55 && r["state"] == "native" {
				t.Errorf("%s has no kernel installed, yet status shows its DKMS build as an installed kernel's native module:\n%s", k55, sout)
			}
		}
		if !regexp.MustCompile(`(?i)` + regexp.QuoteMeta(k55) + `.*(no kernel|not installed)`).MatchString(sout) {
			t.Errorf("status does not show %s as a build without a kernel:\n%s", k55, sout)
		}
	})

	dracutPhase(t, c)
	t.Logf("TOTAL %.1fs", time.Since(start).Seconds())
}

// dracutPhase continues TestDebianFlow's chroot (54 with its own build, 56 served by a weak link
// to 55's build, whose kernel is gone) with dracut from the archive instead of initramfs-tools, as
// the admin did, and asserts again the points where the generator matters: the
// required early module in the images dracut builds with kabiguard's module (make install put
// it in /usr/lib/dracut/modules.d), images current, stale after DKMS's --no-initramfs link
// change and refreshed (2), a loud removal (1), a refusal leaving no boot symlink at the
// refused kernel (4), and advice for a missing early module that is dracut's and works (5).
func dracutPhase(t *testing.T, c *testkit.Chroot) {
	img := func(k string) string { return "/boot/initrd.img-" + k }
	step(t, "apt-get install dracut (replaces initramfs-tools; rebuilds 54's and 56's images)", func() {
		// Images with only what they need, as MODULES=list above: kabiguard's module (which
		// pulls in the required early modules and the gate) on dracut's base.
		c.WriteFile("/etc/dracut.conf.d/kabiguard-test.conf", "dracutmodules=\"base kabiguard\"\n")
		out := c.MustRun("apt-get install -y -q dracut")
		for _, k := range []string{k54, k56} {
			if !strings.Contains(out, "dracut: Generating "+img(k)) {
				t.Fatalf("dracut made no image for %s:\n%s", k, out)
			}
		}
		c.MustRun("test ! -e /usr/sbin/update-initramfs && test -f /usr/lib/dracut/modules.d/90kabiguard/module-setup.sh")
		rows, sout, code := status(t, c)
		if code != 0 {
			t.Fatalf("status exit %d after dracut rebuilt the images\n%s", code, sout)
		}
		for _, k := range []string{k54, k56} {
			imageHolds(t, c, k, "dkms/v4l2loopback.ko")
			// dracut built it with kabiguard's module: its boot-time gate is in.
			c.MustRun("lsinitrd " + img(k) + " | grep -q 'hooks/pre-udev/10-kabiguard-gate.sh'")
			wantState(t, rows, sout, k, img(k), "current", "")
			c.MustRun("kabiguard gate -k " + k)
		}
	})

	// Point 5 with dracut: the way out for a missing early module names dracut's rebuild, not
	// initramfs-tools', and running it works.
	point(t, "point5-dracut-missing-early-module-advice-works", func(t *testing.T) {
		c := c.For(t)
		gout := nativeEarlyRefused(t, c, k54, "/etc/initramfs-tools", "update-initramfs", "dkms autoinstall")
		var rebuild string
		for _, l := range ways(gout) {
			if m := regexp.MustCompile(`'(dracut [^']*)'`).FindStringSubmatch(l); m != nil {
				rebuild = m[1]
			}
		}
		if !strings.Contains(rebuild, k54) {
			t.Fatalf("no dracut rebuild of %s among the ways out:\n%s", k54, gout)
		}
		c.MustRun(rebuild)
		if out, code := c.Run("kabiguard gate -k " + k54); code != 0 {
			t.Fatalf("after %q the gate still refuses:\n%s", rebuild, out)
		}
		imageHolds(t, c, k54, "kernel/drivers/net/dummy.ko")
	})

	step(t, "apt-get install linux-image-"+k55+"-unsigned: dracut builds its image with the early module", func() {
		out := c.MustRun("apt-get install -y -q linux-image-" + k55 + "-unsigned")
		if !strings.Contains(out, "dracut: Generating "+img(k55)) {
			t.Fatalf("dracut made no image for %s:\n%s", k55, out)
		}
		imageHolds(t, c, k55, "updates/dkms/v4l2loopback.ko")
		rows, sout, _ := status(t, c)
		wantState(t, rows, sout, k55, img(k55), "current", "")
		c.MustRun("kabiguard gate -k " + k55)
	})

	// Point 2 with dracut: DKMS's --no-initramfs link changes (56 gets its own build, then
	// loses it again to a weak link to 55's) leave 56's dracut image stale until the next hook
	// run refreshes it. --force: DKMS takes the weak link for an install of its own and does
	// nothing otherwise.
	for _, ch := range []struct{ dkms, state, detail string }{
		{"install", "native", "/updates/dkms/v4l2loopback.ko"},
		{"remove", "weak", "<- " + k55},
	} {
		step(t, "dkms "+ch.dkms+" -k "+k56+": 56's v4l2loopback "+ch.state, func() {
			c.MustRun("dkms " + ch.dkms + " --force " + dkmsModule + " -k " + k56)
			rows, sout, _ := status(t, c)
			wantState(t, rows, sout, k56, "v4l2loopback", ch.state, ch.detail)
		})
		point(t, "point2-dracut-image-refreshed-after-dkms-"+ch.dkms, func(t *testing.T) {
			c := c.For(t)
			imageRefreshedAfterLinkChange(t, c, k56)
			// A refresh in place keeps the image's paths (a weak-updates link stays, the file
			// it leads to gets the new build): the copy must be current, wherever it sits.
			imageHolds(t, c, k56, "dkms/v4l2loopback.ko")
			rows, sout, _ := status(t, c)
			wantState(t, rows, sout, k56, img(k56), "current", "")
		})
	}

	var purgeOut string
	step(t, "dracut: apt-get purge linux-image-"+k55+"-unsigned (56 loses its module)", func() {
		purgeOut = purgeStrips(t, c, k55, k56)
	})
	point(t, "point1-dracut-removal-stripping-56-is-loud", func(t *testing.T) { removalIsLoud(t, purgeOut, k55, k56) })
	point(t, "point2-dracut-image-refreshed-after-removal", func(t *testing.T) { imageOwedAfterRemoval(t, c.For(t), k56) })

	// Point 4 with dracut: 56 configured again without its headers (DKMS cannot rebuild) is
	// refused by kabiguard's postinst hook; nothing then points the boot at it.
	point(t, "point4-dracut-refusal-leaves-no-boot-symlink-at-refused-kernel", func(t *testing.T) {
		c := c.For(t)
		c.MustRun("apt-get purge -y -q linux-headers-" + k56)
		out, code := c.Run("dpkg-reconfigure linux-image-" + k56 + "-unsigned")
		if code == 0 || !strings.Contains(out, "kabiguard: refusing kernel "+k56) {
			t.Fatalf("dpkg-reconfigure exit %d, want kabiguard's refusal of %s:\n%s", code, k56, out)
		}
		for _, l := range []string{"/vmlinuz", "/initrd.img"} {
			if got := strings.TrimSpace(c.MustRun("readlink " + l)); strings.Contains(got, k56) {
				t.Errorf("%s -> %s after %s was refused", l, got, k56)
			}
		}
		c.MustRun("for l in /vmlinuz /initrd.img; do test -e $l || { echo $l dangles; exit 1; }; done")
		noDangling(t, c)
	})
}
