package imagesync

import (
	"path/filepath"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Installed reports whether root has kernel k's modules (its kernel/ directory), as depmod
// runs only for such kernels.
func Installed(root, k string) bool {
	r, err := rootfs.At(root)
	if err != nil {
		return false
	}
	fi, err := r.Stat(filepath.Join(kmod.ModulesDir(root, k), "kernel"))
	return err == nil && fi.IsDir()
}

// OwedImages lists the kernels under root that have an image owed a refresh, for status.
// Kernels with no image (or no longer installed) owe nothing a boot would see.
func OwedImages(root string) []string {
	owed, err := weakupdates.ImagesOwed(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, k := range owed {
		if img, err := LocateImage(root, k); Installed(root, k) && (img != "" || err != nil) {
			out = append(out, k)
		}
	}
	return out
}
