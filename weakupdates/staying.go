package weakupdates

import (
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kmod"
)

// Removing a kernel does not remove every module file in its directory. A kernel package owns
// its kernel/ tree; a kmod package (RHEL's kmod-drbd, a vendor's driver RPM or .deb) owns its
// files in extra/ or updates/ and keeps them after the kernel goes, so the links other kernels
// have into them stay right: RHEL's weak-modules --remove-kernel leaves them alone (prior-art
// 1.6). DKMS's builds are the exception: DKMS removes its builds for a kernel being removed
// (its kernel prerm hook runs `dkms remove -k K`), so those go with the kernel.

// BuildsThatStay lists the builds (host paths) in the kernels being removed that outlive the
// removal: every build that is not DKMS's for that kernel. DKMS's are those under updates/dkms/
// (where DKMS installs on Debian and Ubuntu) and those DKMS has recorded as installed for the
// kernel (var/lib/dkms/NAME/VERSION/K/ARCH/module/FILE, as on RHEL, where they go to extra/).
func BuildsThatStay(inv *inventory.Inventory, removing map[string]bool) map[string]bool {
	stay := map[string]bool{}
	for _, t := range inv.Trees {
		if !removing[t.Release] {
			continue
		}
		dkms := dkmsInstalled(inv.Root, t.Release)
		for _, b := range t.Builds {
			rel, err := filepath.Rel(t.Dir, b.Path)
			if err != nil || strings.HasPrefix(filepath.ToSlash(rel), "updates/dkms/") || dkms[kmod.Normalize(b.Name)] {
				continue
			}
			stay[b.Path] = true
		}
	}
	return stay
}

// dkmsInstalled is the set of module names DKMS records as installed for kernel under root.
func dkmsInstalled(root, kernel string) map[string]bool {
	out := map[string]bool{}
	r, err := rootfs.At(root)
	if err != nil {
		return out
	}
	names := func(dir string) []string { // the directory's entries, read inside the root
		ents, _ := r.ReadDir(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	base := filepath.Join(root, "var", "lib", "dkms")
	for _, name := range names(base) {
		for _, version := range names(filepath.Join(base, name)) {
			k := filepath.Join(base, name, version, kernel)
			for _, arch := range names(k) {
				for _, f := range names(filepath.Join(k, arch, "module")) {
					if kmod.IsModule(f) {
						out[kmod.ModuleName(f)] = true
					}
				}
			}
		}
	}
	return out
}
