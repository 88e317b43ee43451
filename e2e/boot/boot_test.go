// Package boot boots real Debian kernels under QEMU (TCG: no KVM needed) with initramfs
// images written by kabiguard and asserts on the serial console, the way anatol/booster's
// tests do: the kernel's own word on whether a module loads.
//
// Needs root, qemu-system-x86, busybox-static, kmod, gcc and make (.ci/run installs them) and
// the Debian archive on first use (internal/testkit).
package boot

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// initScript is /init: mount the API filesystems, run the gate as dracut's hook would, show
// the kernel's module list, power off.
const initScript = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "boot-test: init running on $(uname -r)"
/usr/sbin/kabiguard-gate
echo "boot-test: gate exit $?"
echo "boot-test: /proc/modules:"
cat /proc/modules
echo "boot-test: done"
poweroff -f
`

// baseFiles is a minimal rootfs: busybox, /init, the gate and its list, /dev/console.
func baseFiles(t *testing.T, gate string) []initramfs.File {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatal("/bin/busybox missing: install busybox-static (.ci/run does)")
	}
	files := []initramfs.File{
		initramfs.HostFile("bin/busybox", "/bin/busybox", 0o755),
		initramfs.Regular("init", 0o755, []byte(initScript)),
		initramfs.HostFile("usr/sbin/kabiguard-gate", gate, 0o755),
		initramfs.Regular("etc/kabiguard/required", 0o644, []byte("kabidemo\n")),
		initramfs.CharDev("dev/console", 0o600, 5, 1),
		initramfs.Dir("proc", 0o755), initramfs.Dir("sys", 0o755),
	}
	for _, applet := range []string{"sh", "mount", "echo", "cat", "uname", "poweroff"} {
		files = append(files, initramfs.Symlink("bin/"+applet, "busybox"))
	}
	return files
}

// boot runs the kernel with the image and returns the console lines up to "boot-test: done".
func boot(t *testing.T, vmlinuz, image string) []string {
	t.Helper()
	lines := bootUntil(t, vmlinuz, image, "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3", `^boot-test: done$`)
	if lines[len(lines)-1] != "boot-test: done" {
		t.Fatalf("the boot did not finish:\n%s", strings.Join(lines, "\n"))
	}
	return lines
}

// bootUntil boots vmlinuz with image under QEMU (TCG) and returns the serial console lines up
// to the first matching last, or all of them when QEMU exits or 4 minutes pass.
func bootUntil(t *testing.T, vmlinuz, image, cmdline, last string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "768",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", vmlinuz, "-initrd", image, "-append", cmdline)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := regexp.MustCompile(last)
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		lines = append(lines, line)
		if stop.MatchString(line) {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Logf("booted %s in %v", filepath.Base(vmlinuz), time.Since(start).Round(time.Second))
	if len(lines) == 0 {
		t.Fatal("no console output")
	}
	return lines
}

func find(lines []string, re string) string {
	r := regexp.MustCompile(re)
	for _, l := range lines {
		if r.MatchString(l) {
			return l
		}
	}
	return ""
}

// TestBootRefreshedImages: kernel 6.1.0-53 boots images that `refresh` wrote after kabidemo
// was weak-linked from the 6.1.0-50 build, in every compression the kernel unpacks; the gate
// loads the older ABI's build and the kernel lists it in /proc/modules.
func TestBootRefreshedImages(t *testing.T) {
	k50, k53 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53")
	src := filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo")
	build50 := testkit.BuildModules(t, k50, src)["kabidemo"]
	own53 := testkit.BuildModules(t, k53, src)["kabidemo"]
	root := testkit.NewRoot(t, k50, k53)
	testkit.Install(t, root, k50.Release, "extra/kabidemo/kabidemo.ko", build50)
	if _, err := weakupdates.Sync(config.Default(), weakupdates.SyncOptions{Root: root}); err != nil {
		t.Fatal(err)
	}
	gate := testkit.BuildBinary(t, "kabiguard-gate")
	stale, _ := os.ReadFile(own53)
	dir := "lib/modules/" + k53.Release + "/"
	for _, format := range []compression.Format{compression.Gzip, compression.Zstd, compression.XZ, compression.LZ4, compression.None} {
		t.Run(string(format), func(t *testing.T) {
			// An image made before the link (it holds 53's own older build), then refreshed.
			img := filepath.Join(root, "boot", "initrd.img-"+k53.Release)
			files := append(baseFiles(t, gate),
				initramfs.Regular(dir+"weak-updates/kabidemo/kabidemo.ko", 0o644, stale),
				initramfs.Regular(dir+"modules.dep", 0o644, []byte("weak-updates/kabidemo/kabidemo.ko:\n")))
			if err := (initramfs.Writer{Compression: format, MTime: 1700000000}).WriteFile(img, files); err != nil {
				t.Fatal(err)
			}
			res, err := imagesync.Refresh(root, k53.Release, img, config.Default(), false)
			if err != nil || len(res.Replaced) != 1 {
				t.Fatalf("refresh: %v %+v", err, res)
			}
			if format == compression.XZ {
				// The writer's concurrent blocks: the boot proves the kernel takes several.
				st, err := os.Stat(img)
				if err != nil {
					t.Fatal(err)
				}
				f, _ := os.Open(img)
				xzs, err := compression.WalkXZ(f, 0, st.Size())
				f.Close()
				if err != nil {
					t.Fatalf("refreshed xz image: %v", err)
				}
				if xzs.Blocks() < 2 {
					t.Fatalf("refreshed xz image has %d block; the boot should prove several", xzs.Blocks())
				}
			}
			lines := boot(t, filepath.Join(k53.Root, "boot", "vmlinuz-"+k53.Release), img)
			if find(lines, `^kabiguard: required modules loaded: kabidemo$`) == "" || find(lines, `^kabidemo \d+ `) == "" {
				t.Fatalf("kabidemo not loaded:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}

// TestBootGateStops: the 6.1.0-50 build forced into a 6.1.0-54 image: the kernel refuses it
// and the gate prints one line with the kernel's reason.
func TestBootGateStops(t *testing.T) {
	k50, k54 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-54")
	build50 := testkit.BuildModules(t, k50, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabidemo"))["kabidemo"]
	data, _ := os.ReadFile(build50)
	dir := "lib/modules/" + k54.Release + "/"
	img := filepath.Join(t.TempDir(), "initrd.img")
	files := append(baseFiles(t, testkit.BuildBinary(t, "kabiguard-gate")),
		initramfs.Regular(dir+"extra/kabidemo.ko", 0o644, data),
		initramfs.Regular(dir+"modules.dep", 0o644, []byte("extra/kabidemo.ko:\n")))
	if err := (initramfs.Writer{Compression: compression.Gzip}).WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
	lines := boot(t, filepath.Join(k54.Root, "boot", "vmlinuz-"+k54.Release), img)
	line := find(lines, `^kabiguard: required module kabidemo cannot load: `)
	if !regexp.MustCompile(`disagrees about version of symbol misc_(de)?register`).MatchString(line) {
		t.Fatalf("no gate line with the kernel's reason:\n%s", strings.Join(lines, "\n"))
	}
	if find(lines, `^boot-test: gate exit 1$`) == "" || find(lines, `^kabidemo `) != "" {
		t.Fatalf("the gate did not fail, or the module loaded:\n%s", strings.Join(lines, "\n"))
	}
	t.Log(line)
}
