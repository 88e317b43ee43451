package gate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGateAdviceFitsTheHost: every way out the refusal lists works on the host under the root
// (issue 11, point 5): DKMS only where it is installed, with the kernel's headers or the
// command that installs them; the image rebuild of the host's generator for an early module
// that loads but is not in the image (no rebuild of a module that is fine); the package
// manager's removal of the kernel; the required.d line quoted as it is.
func TestGateAdviceFitsTheHost(t *testing.T) {
	const k = "6.1.0-56-amd64"
	incompatible := Module{Name: "v4l2loopback", Early: true, Source: "/etc/kabiguard/required.d/v.conf:1", State: "incompatible"}
	notInImage := Module{Name: "dummy", Early: true, Source: "/etc/kabiguard/required.d/n.conf:1", State: "native", Initrd: "no"}
	for _, tc := range []struct {
		name    string
		files   []string
		mod     Module
		want    []string
		notWant []string
	}{
		{"debian, dkms, no headers", []string{"usr/sbin/dkms", "var/lib/dpkg/status", "var/lib/dpkg/info/linux-image-" + k + "-unsigned.list"}, incompatible,
			[]string{"'apt-get install linux-headers-" + k + " && dkms autoinstall -k " + k + "'", "apt-get purge linux-image-" + k + "-unsigned", `"v4l2loopback early"`},
			[]string{"akmods", "update-initramfs"}},
		{"dkms with headers", []string{"usr/sbin/dkms", "lib/modules/" + k + "/build/Makefile"}, incompatible,
			[]string{"'dkms autoinstall -k " + k + "'", "kmod package built for " + k},
			[]string{"install the headers", "apt-get"}},
		{"no dkms", nil, incompatible,
			[]string{"kmod package built for " + k},
			[]string{"dkms", "akmods"}},
		{"native module not in an initramfs-tools image", []string{"usr/sbin/dkms", "usr/sbin/update-initramfs", "var/lib/dpkg/status"}, notInImage,
			[]string{"update-initramfs -u -k " + k, `"dummy early"`, "apt-get purge linux-image-" + k},
			[]string{"dkms", "kmod package", "dracut"}},
		{"native module not in a dracut image", []string{"usr/bin/dracut", "var/lib/rpm/rpmdb.sqlite"}, notInImage,
			[]string{"dracut --force --kver " + k, "dnf remove kernel-core-" + k},
			[]string{"update-initramfs", "kmod package"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(root, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := tc.mod
			res := &Result{Kernel: k, Action: Refuse, Modules: []Module{m}}
			got := strings.Join(Advice(res, root, "/etc/kabiguard/kabiguard.conf"), "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("no %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q does not work here, yet:\n%s", w, got)
				}
			}
		})
	}
}
