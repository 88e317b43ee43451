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

// initramfsTools is a private copy of the host's initramfs-tools configuration with the
// project's hook and init-premount script, MODULES=list (the image holds what the hooks add
// and little else) and gzip, plus a /boot holding kernel k's config.
type initramfsTools struct {
	conf, boot, kabi string
}

func newInitramfsTools(t *testing.T, k *testkit.Kernel) *initramfsTools {
	t.Helper()
	d := t.TempDir()
	it := &initramfsTools{conf: filepath.Join(d, "conf"), boot: filepath.Join(d, "boot"), kabi: filepath.Join(d, "kabiguard")}
	if out, err := exec.Command("cp", "-a", "/etc/initramfs-tools", it.conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/initramfs-tools: %v\n%s", err, out)
	}
	for _, f := range []struct{ src, dst string }{
		{"initramfs-tools/hooks/kabiguard", "hooks/kabiguard"},
		{"initramfs-tools/scripts/init-premount/kabiguard", "scripts/init-premount/kabiguard"},
	} {
		dst := filepath.Join(it.conf, f.dst)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		data, err := os.ReadFile(filepath.Join(testkit.RepoDir(), f.src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(it.conf, "conf.d"), 0o755)
	if err := os.WriteFile(filepath.Join(it.conf, "conf.d", "zz-test"), []byte("MODULES=list\nCOMPRESS=gzip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{it.boot, filepath.Join(it.kabi, "required.d")} {
		os.MkdirAll(dir, 0o755)
	}
	if out, err := exec.Command("cp", filepath.Join(k.Root, "boot", "config-"+k.Release), it.boot).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return it
}

// build runs the real mkinitramfs for kernel k of root, writing img, with required as the only
// required.d file, and returns its output and error. mkinitramfs knows only the host's /lib/modules/K, /boot and
// /etc/initramfs-tools, so they run in a private mount namespace where those are the test's:
// the host's own trees are never touched. /lib/modules may not exist on the host (a
// container): an overlay on /usr/lib in that namespace takes the directory.
func (it *initramfsTools) build(t *testing.T, root string, k *testkit.Kernel, img, required, gate string) (string, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(it.kabi, "required.d", "test.conf"), []byte(required), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	script := `set -e
mkdir "$TMPDIR/upper" "$TMPDIR/work"
mount -t overlay overlay -o lowerdir=/usr/lib,upperdir="$TMPDIR/upper",workdir="$TMPDIR/work" /usr/lib
mkdir -p /usr/lib/modules
mount -t tmpfs tmpfs /usr/lib/modules
mkdir /lib/modules/"$K"
mount --bind "$TREE" /lib/modules/"$K"
mount --bind "$BOOT" /boot
mount --bind "$CONF" /etc/initramfs-tools
mkinitramfs -o "$IMG" "$K"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "K="+k.Release, "TREE="+filepath.Join(root, "lib", "modules", k.Release),
		"BOOT="+it.boot, "CONF="+it.conf, "IMG="+img,
		"KABIGUARD_CONFDIR="+it.kabi, "KABIGUARD_GATE="+gate,
		"KABIGUARD_REQUIRED_SH="+filepath.Join(testkit.RepoDir(), "dracut", "90kabiguard", "kabiguard-required.sh"), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestInitramfsToolsHook: the real mkinitramfs builds an image with the kabiguard hook for
// kernel 6.1.0-54. A required early module the kernel's tree does not have fails the build
// (update-initramfs then keeps the old image). With kabidemo required early, the image holds the gate, its list and
// the module; booted, the init-premount script runs the gate: the kernel's own build loads
// (the gate says so), the 6.1.0-50 build is refused and the boot stops with the kernel's
// reason on one line.
func TestInitramfsToolsHook(t *testing.T) {
	testkit.NeedsRoot(t, "runs mkinitramfs in a private mount namespace (unshare --mount)")
	if _, err := exec.LookPath("mkinitramfs"); err != nil {
		t.Fatal("mkinitramfs missing: install initramfs-tools-core (.ci/run does)")
	}
	k50, k54 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-54")
	src := filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo")
	gate := testkit.BuildBinary(t, "kabiguard-gate")
	vmlinuz := filepath.Join(k54.Root, "boot", "vmlinuz-"+k54.Release)

	t.Run("missing early module fails the build", func(t *testing.T) {
		root := testkit.NewRoot(t, k54)
		it := newInitramfsTools(t, k54)
		// update-initramfs builds into IMAGE.new and renames only on success.
		img := filepath.Join(t.TempDir(), "initrd.img.new")
		out, err := it.build(t, root, k54, img, "npreal2 early\n", gate)
		if err == nil || !strings.Contains(out, "E: kabiguard: required early module npreal2 is not available for kernel "+k54.Release) {
			t.Fatalf("mkinitramfs built an image without the required early npreal2: %v\n%s", err, out)
		}
	})

	for _, tc := range []struct {
		name  string
		build *testkit.Kernel // kernel the kabidemo build was made for
		want  string          // the console line that ends the boot
	}{
		{"own build loads", k54, `kabiguard: required modules loaded: kabidemo`},
		{"older ABI refused", k50, `kabiguard: required module kabidemo cannot load: .*disagrees about version of symbol misc_(de)?register.*\(boot with rd.kabiguard=0 to skip this check\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testkit.NewRoot(t, k54)
			build := testkit.BuildModules(t, tc.build, src)["kabidemo"]
			testkit.Install(t, root, k54.Release, "extra/kabidemo.ko", build)
			testkit.Depmod(t, root, k54.Release)
			it := newInitramfsTools(t, k54)
			img := filepath.Join(t.TempDir(), "initrd.img")
			if out, err := it.build(t, root, k54, img, "kabidemo early\n", gate); err != nil {
				t.Fatalf("mkinitramfs: %v\n%s", err, out)
			}
			ls, err := exec.Command("lsinitramfs", img).Output()
			for _, want := range []string{"usr/sbin/kabiguard-gate", "etc/kabiguard/required", "scripts/init-premount/kabiguard", "extra/kabidemo.ko"} {
				if err != nil || !strings.Contains(string(ls), want) {
					t.Fatalf("image lacks %s: %v\n%s", want, err, ls)
				}
			}
			lines := bootUntil(t, vmlinuz, img, "console=ttyS0 panic=-1 root=/dev/vda1", tc.want+`|Kernel panic|reboot: `)
			if find(lines, tc.want) == "" {
				t.Fatalf("no console line matching %q:\n%s", tc.want, strings.Join(lines, "\n"))
			}
			if regexp.MustCompile(`kabiguard: .*cannot load`).MatchString(strings.Join(lines, "\n")) != (tc.build != k54) {
				t.Fatalf("the gate's verdict is not the expected one:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}
