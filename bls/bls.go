package bls

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// Dirs are the entry directories looked into, relative to the root, in this order: $BOOT is
// /boot on RHEL, an ESP mounted at /efi or /boot/efi elsewhere.
var Dirs = []string{"boot/loader/entries", "efi/loader/entries", "boot/efi/loader/entries"}

// Entry is one boot entry file.
type Entry struct {
	Path    string   `json:"path"` // root-relative with a leading '/': /boot/loader/entries/X-K.conf
	Title   string   `json:"title,omitempty"`
	Version string   `json:"version,omitempty"`
	Linux   string   `json:"linux,omitempty"`
	Initrd  []string `json:"initrd,omitempty"`
}

// tries is the boot-counting suffix of an entry's file name.
var tries = regexp.MustCompile(`\+[0-9]+(-[0-9]+)?$`)

// ForKernel returns the entries of release under root, sorted by path: an entry whose
// version key is the release, or whose file name (boot counting aside) ends in
// "-RELEASE.conf". No entry directory at all is no error: the host does not use BLS. bootRoot,
// when not "", is one more $BOOT (kernel-install's $KERNEL_INSTALL_BOOT_ROOT) below root.
func ForKernel(root, release, bootRoot string) ([]Entry, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	dirs := Dirs
	if b := strings.Trim(filepath.Clean("/"+bootRoot), "/"); bootRoot != "" && b != "" {
		if d := b + "/loader/entries"; !slices.Contains(Dirs, d) {
			dirs = append(slices.Clip(Dirs), d)
		}
	}
	var out []Entry
	seen := map[string]bool{} // resolved directories: /boot/loader may be a link to the ESP's
	for _, d := range dirs {
		dir := filepath.Join(root, d)
		if real, err := r.Resolve(dir); err == nil {
			if seen[real] {
				continue
			}
			seen[real] = true
		}
		des, err := r.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			name := de.Name()
			if !de.Type().IsRegular() || !strings.HasSuffix(name, ".conf") {
				continue
			}
			data, err := r.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, err
			}
			e := Parse(data)
			e.Path = "/" + d + "/" + name
			stem := tries.ReplaceAllString(strings.TrimSuffix(name, ".conf"), "")
			if e.Version == release || strings.HasSuffix(stem, "-"+release) {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// ByID returns the entry named id (its file name less ".conf", as GRUB's saved_entry and
// grubby --set-default name it) from the first entry directory that has it.
func ByID(root, id string) (Entry, bool) {
	r, err := rootfs.At(root)
	if err != nil || id == "" || strings.ContainsRune(id, '/') {
		return Entry{}, false
	}
	for _, d := range Dirs {
		data, err := r.ReadFile(filepath.Join(root, d, id+".conf"))
		if err != nil {
			continue
		}
		e := Parse(data)
		e.Path = "/" + d + "/" + id + ".conf"
		return e, true
	}
	return Entry{}, false
}

// Used reports whether root has a BLS entry directory at all.
func Used(root string) bool {
	r, err := rootfs.At(root)
	if err != nil {
		return false
	}
	for _, d := range Dirs {
		if fi, err := r.Stat(filepath.Join(root, d)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// Parse reads an entry's keys; unknown keys are skipped, as boot loaders do.
func Parse(data []byte) Entry {
	var e Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, value := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 { // the spec allows either
			key, value = line[:i], line[i+1:]
		}
		value = strings.TrimSpace(value)
		switch key {
		case "title":
			e.Title = value
		case "version":
			e.Version = value
		case "linux":
			e.Linux = value
		case "initrd":
			e.Initrd = append(e.Initrd, strings.Fields(value)...)
		}
	}
	return e
}

// ConfiguredBootRoot is BOOT_ROOT= of kernel-install's install.conf under root (the first of
// /etc/kernel/install.conf and /usr/lib/kernel/install.conf that exists, as kernel-install
// reads them), or "": an admin who set it has entries there, not in /boot.
func ConfiguredBootRoot(root string) string {
	r, err := rootfs.At(root)
	if err != nil {
		return ""
	}
	for _, f := range []string{"etc/kernel/install.conf", "usr/lib/kernel/install.conf"} {
		data, err := r.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		var v string
		for _, line := range strings.Split(string(data), "\n") {
			if val, ok := strings.CutPrefix(strings.TrimSpace(line), "BOOT_ROOT="); ok {
				v = strings.Trim(strings.TrimSpace(val), `"'`) // the last one wins, as in a shell
			}
		}
		return v
	}
	return ""
}
