package kmod

import "path/filepath"

// ModulesRel is where kernels' module directories are, relative to a root: one directory
// per kernel release, as depmod -b ROOT and modprobe -d ROOT read them.
const ModulesRel = "lib/modules"

// ModulesDir returns root's module directory of kernel, root/lib/modules/kernel; with kernel
// "" it is root/lib/modules, the directory of them all.
func ModulesDir(root, kernel string) string {
	return filepath.Join(root, ModulesRel, kernel)
}

// DepmodPendingMarker is the file in a kernel's module directory that says "its links
// changed, depmod has not indexed them yet". depmod ignores files not named as modules.
const DepmodPendingMarker = ".kabiguard-depmod-pending"

// ImageOwedPrefix begins the name of the file in root/lib/modules (beside the kernels'
// directories, not in one) that says "kernel's initramfs must be refreshed"; the kernel's
// release ends it.
const ImageOwedPrefix = ".kabiguard-image-owed-"
