package weakupdates

// An initramfs carries copies of module files: once a kernel's links change, its image may
// hold another build than the tree resolves to, or a copy of a module the tree lost. That
// work is owed until the image is refreshed, whoever changed the links (a run that failed,
// was killed, or was told --no-initramfs, as Debian's DKMS always does). The debt is a file
// per kernel, written and synced under the lock before the kernel's first link change, and
// removed only once the kernel's image is current (or the kernel has no image, or is gone).

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kmod"
)

// The markers (kmod.ImageOwedPrefix) are next to the lock in lib/modules: outside the kernels'
// own directories, so a read-only or vanished kernel tree cannot lose or hide the debt, and
// so they never keep a removed kernel's directory from being emptied. The inventory reads
// only directories there.

// ImageOwedMarker is the host path of release's marker under root.
func ImageOwedMarker(root, release string) string {
	return filepath.Join(kmod.ModulesDir(root, ""), kmod.ImageOwedPrefix+release)
}

// MarkImageOwed records, durably, that release's initramfs must be refreshed: the marker is
// created, synced, and its directory synced. Call it under Lock, before changing a link.
func MarkImageOwed(root, release string) error {
	if !validRelease(release) {
		return fmt.Errorf("invalid kernel release %q", release)
	}
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	p := ImageOwedMarker(root, release)
	f, err := r.CreateExcl(p, 0o644)
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := r.Lstat(p); serr == nil && fi.Mode().IsRegular() {
			return nil // owed already
		}
		return fmt.Errorf("%s: in the way of the initramfs marker: %w", p, err)
	}
	if err != nil {
		return fmt.Errorf("recording that the initramfs of %s is owed: %w", release, err)
	}
	_, err = fmt.Fprintf(f, "the links of %s changed; its initramfs image must be refreshed\n", release)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.SyncDir(filepath.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// ClearImageOwed removes release's marker: its image is current, or there is none to keep.
func ClearImageOwed(root, release string) error {
	if !validRelease(release) {
		return nil
	}
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	p := ImageOwedMarker(root, release)
	if err := r.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%s: %w", p, err)
	}
	return r.SyncDir(filepath.Dir(p))
}

// ImageOwed reports whether release's image is owed a refresh.
func ImageOwed(root, release string) bool {
	r, err := rootfs.At(root)
	if err != nil || !validRelease(release) {
		return false
	}
	fi, err := r.Lstat(ImageOwedMarker(root, release))
	return err == nil && fi.Mode().IsRegular()
}

// ImagesOwed lists the kernels whose images are owed a refresh, oldest release first. A
// root without lib/modules owes nothing.
func ImagesOwed(root string) ([]string, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	dir := kmod.ModulesDir(root, "")
	ents, err := r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		rel, ok := strings.CutPrefix(e.Name(), kmod.ImageOwedPrefix)
		if ok && e.Type().IsRegular() && validRelease(rel) && !rootfs.IsTemp(rel) {
			out = append(out, rel)
		}
	}
	sort.Slice(out, func(i, j int) bool { return kabi.CompareReleases(out[i], out[j]) < 0 })
	return out, nil
}

// DepmodPending reports whether release's links changed and depmod has not indexed them yet
// (an interrupted or failed run): its modules.dep, which an image refresh reads, is old.
func DepmodPending(root, release string) bool {
	r, err := rootfs.At(root)
	if err != nil {
		return false
	}
	_, err = r.Lstat(depmodMarker(root, release))
	return err == nil
}

func validRelease(k string) bool {
	return k != "" && k != "." && k != ".." && !strings.ContainsAny(k, "/\x00")
}
