package metrics

import (
	"bufio"
	"bytes"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kabiguard/kabiguard/bls"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
)

// Boot is the kernel the boot loader starts by default, and how it was found.
type Boot struct {
	Kernel string
	Source string // "grub-saved-entry", "vmlinuz-symlink" or "newest"
}

// DefaultBoot finds the default boot kernel among the installed kernels (see the package
// comment); a choice naming a kernel that is not installed is passed over.
func DefaultBoot(root string, kernels []string) Boot {
	if len(kernels) == 0 {
		return Boot{}
	}
	if r, err := rootfs.At(root); err == nil {
		if k := savedEntry(r); slices.Contains(kernels, k) {
			return Boot{k, "grub-saved-entry"}
		}
		for _, l := range []string{"vmlinuz", "boot/vmlinuz"} {
			t, err := r.Readlink(r.Path(l))
			if k, ok := strings.CutPrefix(filepath.Base(t), "vmlinuz-"); err == nil && ok && slices.Contains(kernels, k) {
				return Boot{k, "vmlinuz-symlink"}
			}
		}
	}
	return Boot{slices.MaxFunc(kernels, kabi.CompareReleases), "newest"}
}

// savedEntry is the release of the Boot Loader Specification entry GRUB's environment block
// saves as the default (grubby --set-default on RHEL), or "".
func savedEntry(r *rootfs.Root) string {
	for _, env := range []string{"boot/grub2/grubenv", "boot/grub/grubenv"} {
		if e, ok := bls.ByID(r.Dir(), envValue(r, r.Path(env), "saved_entry")); ok && e.Version != "" {
			return e.Version
		}
	}
	return ""
}

// envValue reads key from GRUB's environment block p ("key=value" lines), or "".
func envValue(r *rootfs.Root, p, key string) string {
	data, err := r.ReadFile(p)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
