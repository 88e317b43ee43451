package imagesync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// kernelTree is what a kernel's tree resolves module names to, as its modules.dep — what
// modprobe loads — lists them.
type kernelTree struct {
	root string
	rel  map[string]string   // module name → path relative to root, as modules.dep names it
	deps map[string][]string // module name → names of the modules it needs

	mu       sync.Mutex
	resolved map[string]string // file's answers: a scan asks for each module more than once
}

func loadTree(root, kernel string) (*kernelTree, error) {
	dep, err := kmod.ReadDep(root, kernel)
	if err != nil {
		if se := (*kmod.SyntaxError)(nil); errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("kernel %s: %w (run depmod first)", kernel, err)
	}
	t := &kernelTree{root: root, rel: map[string]string{}, deps: map[string][]string{}}
	for _, m := range dep.Modules {
		if _, dup := t.rel[m.Name]; dup || !kmod.IsModule(m.Path) {
			continue // modprobe loads the first file of a name
		}
		t.rel[m.Name] = kmod.DepRel(kernel, m.Path)
		for _, d := range m.Needs {
			if kmod.IsModule(d) {
				t.deps[m.Name] = append(t.deps[m.Name], kmod.ModuleName(d))
			}
		}
	}
	return t, nil
}

// unlisted returns the host file at the place of the image's module file imagePath in the
// kernel's tree (links followed inside root), when it is a regular file, as depmod indexes
// only those: a module modules.dep does not list, but that exists.
func (t *kernelTree) unlisted(imagePath, kernel string) string {
	rel, ok := kernelRel(imagePath, kernel)
	if !ok || !filepath.IsLocal(rel) {
		return ""
	}
	p, err := rootfs.Resolve(t.root, path.Join(kmod.ModulesRel, kernel, rel))
	if err != nil {
		return ""
	}
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

// has reports whether the tree has a module of that name.
func (t *kernelTree) has(name string) bool { return t.rel[name] != "" }

// file returns the host path of the tree's file of module name, symlinks on its path (the
// weak-updates link) followed inside root; "" when the tree has no such module. Only the
// modules an image holds are resolved: a tree has thousands.
func (t *kernelTree) file(name string) (string, error) {
	rel := t.rel[name]
	if rel == "" {
		return "", nil
	}
	t.mu.Lock()
	p, ok := t.resolved[name]
	t.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := rootfs.Resolve(t.root, rel)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		// modules.dep still lists it, but its weak-updates link dangles (the build is gone):
		// modprobe finds nothing there, so the tree has no such module and a copy in an
		// image is one of a module the tree no longer has.
		p = ""
	}
	t.mu.Lock()
	if t.resolved == nil {
		t.resolved = map[string]string{}
	}
	t.resolved[name] = p
	t.mu.Unlock()
	return p, nil
}

// ErrDanglingLink: the kernel's tree lists a module through a weak-updates link that points at
// nothing. Refreshing an image from that tree would drop the module from it (required and
// early ones too); `kabiguard link` removes or re-points the link first.
var ErrDanglingLink = errors.New("points at nothing (its build is gone): run 'kabiguard link' first, which removes or re-points it")

// danglingLink returns an error naming the first module of the tree whose weak-updates link
// dangles, nil when there is none.
func (t *kernelTree) danglingLink() error {
	var names []string
	for name, rel := range t.rel {
		if strings.Contains(rel, "/weak-updates/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if p, err := t.file(name); err == nil && p == "" {
			return fmt.Errorf("%s: %w", t.rel[name], ErrDanglingLink)
		}
	}
	return nil
}
