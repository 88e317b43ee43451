// Package inventory reads what a root holds under lib/modules: the installed kernels, the
// external module builds (extra/, updates/, ...) of every release directory, and the links in
// each kernel's weak-updates/. It parses external modules (there are few) and only names
// in-tree ones (there are thousands), so a scan of six kernels takes milliseconds.
package inventory

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
)

// Directories of lib/modules/K that are not external module builds.
var notExternal = map[string]bool{
	"kernel": true, "weak-updates": true, "build": true, "source": true, "vdso": true,
}

// Build is one external module file in a release directory.
type Build struct {
	Path   string // host path
	Kernel string // the release directory it lives in
	Sub    string // path below lib/modules/Kernel/<top>/, e.g. "drbd/drbd.ko.xz": where its weak link goes
	Name   string // module name (from .modinfo, else from the file name)
	Module *module.Module
	Err    error // the file could not be parsed: it is reported and never linked
}

// Link is a symlink found in a kernel's weak-updates/.
type Link struct {
	Path     string // host path of the link
	Sub      string // path below weak-updates/
	Target   string // as stored (relative or absolute)
	Resolved string // host path it points at, followed inside the root
	Dangling bool   // Resolved does not exist
	Escapes  bool   // the target leads outside the root
}

// Tree is one lib/modules/RELEASE directory.
type Tree struct {
	Release string
	Dir     string
	// Installed: the directory holds a kernel (kernel/, modules.order or a vmlinuz), so it is a
	// target for weak links. A directory left with only extra/ (a kmod package whose kernel is
	// not installed) still offers its builds to the others.
	Installed bool
	Native    map[string]string // module name -> path of every module in the tree but weak-updates
	Builds    []*Build
	Links     []*Link
	Others    []string // regular files in weak-updates/: not ours, never touched
}

// Inventory is a root's kernels, newest release last.
type Inventory struct {
	Root  string
	Trees []*Tree
}

// Tree returns the tree of release, or nil.
func (inv *Inventory) Tree(release string) *Tree {
	for _, t := range inv.Trees {
		if t.Release == release {
			return t
		}
	}
	return nil
}

// Scan reads every lib/modules/* directory under root. Every path is followed inside the root
// (rootfs): a kernel directory or weak-updates/ that is a symlink is read where it leads
// within the root, and one that leads outside is refused with an error naming it.
func Scan(root string) (*Inventory, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Root: root}
	base := kmod.ModulesDir(root, "")
	entries, err := r.ReadDir(base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return inv, nil
		}
		return nil, err
	}
	// Trees are independent: scan them one per CPU at a time.
	var names []string
	for _, e := range entries {
		isDir, err := dirOrLinkToDir(r, filepath.Join(base, e.Name()), e)
		if err != nil {
			return nil, err
		}
		if isDir {
			names = append(names, e.Name())
		}
	}
	trees := make([]*Tree, len(names))
	errs := make([]error, len(names))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			trees[i], errs[i] = scanTree(r, root, name)
		}()
	}
	wg.Wait()
	for i := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		inv.Trees = append(inv.Trees, trees[i])
	}
	sort.Slice(inv.Trees, func(i, j int) bool { return kabi.CompareReleases(inv.Trees[i].Release, inv.Trees[j].Release) < 0 })
	return inv, nil
}

// dirOrLinkToDir reports whether the entry e at host path p is a directory, or a symlink that
// leads to one inside the root. A symlink that leads outside the root is an error: the
// directory it stands for can be neither read nor written.
func dirOrLinkToDir(r *rootfs.Root, p string, e fs.DirEntry) (bool, error) {
	if e.IsDir() {
		return true, nil
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false, nil
	}
	fi, err := r.Stat(p)
	if errors.Is(err, rootfs.ErrEscapes) {
		target, _ := r.Readlink(p)
		return false, fmt.Errorf("%s: a symlink to %s, which %w: refused, nothing is read or written there", p, target, rootfs.ErrEscapes)
	}
	return err == nil && fi.IsDir(), nil
}

func scanTree(r *rootfs.Root, root, release string) (*Tree, error) {
	dir := kmod.ModulesDir(root, release)
	t := &Tree{Release: release, Dir: dir, Native: map[string]string{}}
	for _, marker := range []string{"kernel", "modules.order", "vmlinuz", "modules.builtin"} {
		if _, err := r.Lstat(filepath.Join(dir, marker)); err == nil {
			t.Installed = true
		}
	}
	if _, err := r.Stat(filepath.Join(root, "boot", "vmlinuz-"+release)); err == nil {
		t.Installed = true
	}
	tops, err := r.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, top := range tops {
		name := top.Name()
		if name == "weak-updates" {
			// Followed when it is a symlink within the root: links are written through it.
			isDir, err := dirOrLinkToDir(r, filepath.Join(dir, name), top)
			if err != nil {
				return nil, err
			}
			if isDir {
				if err := t.scanWeak(r); err != nil {
					return nil, err
				}
			}
			continue
		}
		if !top.IsDir() || name == "build" || name == "source" {
			continue
		}
		external := !notExternal[name]
		topDir := filepath.Join(dir, name)
		if name == "kernel" && t.nativeFromIndex(r, dir) {
			continue
		}
		err := r.WalkDir(topDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !kmod.IsModule(p) {
				return nil
			}
			if !external {
				t.Native[kmod.ModuleName(p)] = p
				return nil
			}
			b := &Build{Path: p, Kernel: release, Name: kmod.ModuleName(p)}
			b.Sub, _ = filepath.Rel(topDir, p)
			b.Module, b.Err = openBuild(r, p)
			if b.Err == nil && b.Module.Name != "" {
				b.Name = b.Module.Name
			}
			t.Builds = append(t.Builds, b)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	t.Builds = dedupe(t.Builds, dir)
	for _, b := range t.Builds {
		t.Native[b.Name] = b.Path
	}
	return t, nil
}

// openBuild parses the module file at p, opened inside the root: a symlink to /etc/passwd
// means ROOT/etc/passwd, and a FIFO, device or directory named x.ko is a build that cannot be
// read (rootfs.ErrNotRegular), never opened for reading, so it cannot block the scan.
func openBuild(r *rootfs.Root, p string) (*module.Module, error) {
	f, err := r.Open(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once, below
		}
		return nil, fmt.Errorf("%s: cannot be read: %w", p, err)
	}
	defer f.Close()
	return module.OpenFile(f, p)
}

// nativeFromIndex fills Native with the in-tree modules (kernel/) listed in depmod's
// modules.dep, which the kernel package's depmod run wrote: one file read instead of a walk
// over ~700 directories per kernel. It reports false, and the caller walks, when there is no
// index, it is older than kernel/ itself, or it is malformed.
func (t *Tree) nativeFromIndex(r *rootfs.Root, dir string) bool {
	depPath := filepath.Join(dir, "modules.dep")
	di, err := r.Stat(depPath)
	if err != nil {
		return false
	}
	if ki, err := r.Stat(filepath.Join(dir, "kernel")); err != nil || ki.ModTime().After(di.ModTime()) {
		return false
	}
	data, err := r.ReadFile(depPath)
	if err != nil {
		return false
	}
	dep, err := kmod.ParseDep(data)
	if err != nil {
		return false // walked instead: the walk finds what a damaged index may hide
	}
	if len(t.Native) == 0 {
		// A Debian kernel lists about 4000 modules: grow the map once, not a dozen times.
		t.Native = make(map[string]string, len(dep.Modules))
	}
	found := false
	for _, m := range dep.Modules {
		if m.Name == "" || !strings.HasPrefix(m.Path, "kernel/") {
			continue
		}
		t.Native[m.Name] = dir + "/" + m.Path // modules.dep paths are clean and relative
		found = true
	}
	return found
}

// dedupe keeps one build per module name, the one depmod ranks first: updates/ before extra/
// before any other directory (the search order of kabiguard's depmod.d file), then the
// lexically first path, so a leftover foo.ko next to foo.ko.zst never makes two builds of
// one module in one kernel.
func dedupe(builds []*Build, dir string) []*Build {
	rank := func(b *Build) int {
		rel, _ := filepath.Rel(dir, b.Path)
		switch strings.SplitN(rel, string(filepath.Separator), 2)[0] {
		case "updates":
			return 0
		case "extra":
			return 1
		}
		return 2
	}
	sort.SliceStable(builds, func(i, j int) bool {
		ri, rj := rank(builds[i]), rank(builds[j])
		if ri != rj {
			return ri < rj
		}
		return builds[i].Path < builds[j].Path
	})
	seen := map[string]bool{}
	out := builds[:0]
	for _, b := range builds {
		if !seen[b.Name] {
			seen[b.Name] = true
			out = append(out, b)
		}
	}
	return out
}

func (t *Tree) scanWeak(r *rootfs.Root) error {
	weak := filepath.Join(t.Dir, "weak-updates")
	return r.WalkDir(weak, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		sub, _ := filepath.Rel(weak, p)
		if d.Type()&fs.ModeSymlink == 0 {
			t.Others = append(t.Others, p)
			return nil
		}
		target, err := r.Readlink(p)
		if err != nil {
			return err
		}
		l := &Link{Path: p, Sub: sub, Target: target}
		if resolved, err := r.Resolve(p); err != nil {
			l.Escapes, l.Dangling = true, true
		} else {
			l.Resolved = resolved
			_, serr := r.Stat(resolved)
			l.Dangling = serr != nil
		}
		t.Links = append(t.Links, l)
		return nil
	})
}
