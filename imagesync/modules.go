package imagesync

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/kmod"
)

// The modules an image holds, by kernel release: kmod's view of an initramfs (package
// initramfs knows the archive, not what a module is).

// Module is a kernel module file found in an image.
type Module struct {
	Path        string             // path in the image, e.g. usr/lib/modules/K/kernel/fs/xfs/xfs.ko.xz
	RelPath     string             // path relative to the release directory, as modules.dep names it
	Name        string             // module name: base name without .ko*, "-" replaced by "_"
	Compression compression.Format // from the file name: none, xz, zstd or gzip
	Entry       initramfs.Entry
}

// KernelModules are the modules of one kernel release in an image.
type KernelModules struct {
	Release string
	Dir     string   // e.g. usr/lib/modules/6.1.0-56-amd64
	Modules []Module // sorted by Path
	// Dep is the release's modules.dep (its paths as written there, usually relative to Dir).
	// Nil when the image has no modules.dep.
	Dep *kmod.Dep
}

// Modules returns the kernel modules in the image, grouped by kernel release and sorted by
// release, found under usr/lib/modules/K/ and lib/modules/K/ (regular files and symlinks, as
// weak-updates holds), together with each release's parsed modules.dep.
func Modules(im *initramfs.Image) ([]KernelModules, error) {
	byDir := map[string]*KernelModules{}
	for _, entry := range im.Entries() {
		e, n := &entry, entry.Name
		var rest string
		var ok bool
		for _, prefix := range []string{"usr/lib/modules/", "lib/modules/"} {
			if rest, ok = strings.CutPrefix(n, prefix); ok {
				break
			}
		}
		if !ok {
			continue
		}
		rel, sub, found := strings.Cut(rest, "/")
		if !found || rel == "" {
			continue
		}
		dir := strings.TrimSuffix(n, "/"+sub)
		name, isMod := kmod.ModuleName(sub), kmod.IsModule(sub)
		if !isMod || !(e.IsRegular() || e.IsSymlink()) {
			if sub != "modules.dep" {
				continue
			}
		}
		km := byDir[dir]
		if km == nil {
			km = &KernelModules{Release: rel, Dir: dir}
			byDir[dir] = km
		}
		if isMod && (e.IsRegular() || e.IsSymlink()) {
			km.Modules = append(km.Modules, Module{Path: n, RelPath: sub, Name: name, Compression: kmod.Compression(sub), Entry: *e})
		}
	}
	var deps []string
	for dir := range byDir {
		if e, err := im.Stat(dir + "/modules.dep"); err == nil && e.IsRegular() {
			deps = append(deps, dir+"/modules.dep")
		}
	}
	contents, err := im.ReadFiles(deps...)
	if err != nil {
		return nil, err
	}
	// The same release under usr/lib and lib (a real lib/, not a symlink) is one release.
	byRel := map[string]*KernelModules{}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	sort.SliceStable(dirs, func(i, j int) bool { // usr/lib first
		return strings.HasPrefix(dirs[i], "usr/") && !strings.HasPrefix(dirs[j], "usr/")
	})
	for _, d := range dirs {
		km := byDir[d]
		if c, ok := contents[d+"/modules.dep"]; ok {
			dep, err := kmod.ParseDep(c)
			if err != nil {
				return nil, fmt.Errorf("%s: %s/modules.dep: %w", im.Name, d, err)
			}
			km.Dep = dep
		}
		if have := byRel[km.Release]; have != nil {
			have.Modules = append(have.Modules, km.Modules...)
			if have.Dep == nil {
				have.Dep = km.Dep
			}
			continue
		}
		byRel[km.Release] = km
	}
	out := make([]KernelModules, 0, len(byRel))
	for _, km := range byRel {
		sort.Slice(km.Modules, func(i, j int) bool { return km.Modules[i].Path < km.Modules[j].Path })
		out = append(out, *km)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out, nil
}
