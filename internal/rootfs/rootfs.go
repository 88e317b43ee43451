package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Sentinel errors, wrapped with the path they concern.
var (
	// ErrEscapes: a path, or a symlink on it, leads outside the root.
	ErrEscapes = errors.New("leads outside the root")
	// ErrNotRegular: contents were asked of something that is not a regular file (a FIFO, a
	// device, a directory, a socket). Opening a FIFO for reading would block forever.
	ErrNotRegular = errors.New("not a regular file")
	// ErrNoRoot: the root directory itself does not exist or is not a directory.
	ErrNoRoot = errors.New("no such root directory")
	// ErrToolEscape: the host's own path resolution (which external tools such as depmod -b
	// and dracut use) of a path would leave the root or land elsewhere than ours.
	ErrToolEscape = errors.New("resolves outside the root for the host's tools")
)

// maxLinks bounds symlink hops, as the kernel's MAXSYMLINKS does.
const maxLinks = 40

// Root is one root directory, held open. Paths given to its methods are host paths that lie
// below Dir (absolute, or relative to the working directory); every symlink on them is
// followed with chroot semantics (an absolute target means Dir), and the operation itself goes
// through os.Root, so a symlink swapped in by somebody else cannot lead it outside either.
type Root struct {
	dir  string // clean absolute path
	real string // dir with its own symlinks resolved by the host (for ToolPath)
	r    *os.Root
	dev  uint64
	ino  uint64
}

// Open opens dir as a root. It creates nothing: a mistyped --root is an error.
func Open(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	r, err := os.OpenRoot(abs)
	if fi, serr := os.Stat(abs); err != nil && (serr != nil || !fi.IsDir()) {
		return nil, fmt.Errorf("root %s: %w", dir, ErrNoRoot)
	}
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	// The identity At compares comes from the handle itself, not from a stat of the name
	// before opening it: a directory swapped in between would otherwise pass as the old one.
	fi, err := r.Stat(".")
	if err != nil || !fi.IsDir() {
		r.Close()
		return nil, fmt.Errorf("root %s: %w", dir, ErrNoRoot)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		real = abs
	}
	out := &Root{dir: abs, real: real, r: r}
	if st != nil {
		out.dev, out.ino = uint64(st.Dev), st.Ino
	}
	return out, nil
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Root{}
)

// At returns the Root of dir, opened once per process and directory: commands run against one
// root and pass it around as a path. A directory removed and made anew under the same name
// (tests do) gets a new handle.
func At(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root %s: %w", dir, ErrNoRoot)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if r := cache[abs]; r != nil && st != nil && r.dev == uint64(st.Dev) && r.ino == st.Ino {
		return r, nil
	}
	r, err := Open(abs)
	if err != nil {
		return nil, err
	}
	cache[abs] = r
	return r, nil
}

// Dir is the root's clean absolute path.
func (r *Root) Dir() string { return r.dir }

// Path joins root-relative elements into a host path below the root.
func (r *Root) Path(elem ...string) string {
	return filepath.Join(append([]string{r.dir}, elem...)...)
}

// Close releases the root's directory handle.
func (r *Root) Close() error { return r.r.Close() }

// Rel returns host path p relative to the root ("." for the root itself), or ErrEscapes.
func (r *Root) Rel(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(r.dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s: %w %s", p, ErrEscapes, r.dir)
	}
	return rel, nil
}

// resolveRel follows every symlink on the root-relative path rel inside the root and returns
// the resolved root-relative path ("." for the root). The last component need not exist; a
// dangling link resolves to the path it points at. ".." above the root is an escape.
func (r *Root) resolveRel(rel string) (string, error) {
	todo := strings.Split(filepath.ToSlash(rel), "/")
	var done []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case ".", "":
			continue
		case "..":
			if len(done) == 0 {
				return "", fmt.Errorf("%s: %w", rel, ErrEscapes)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := strings.Join(append(done, c), "/")
		fi, err := r.r.Lstat(cur)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
		}
		target, err := r.r.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = nil
		}
		todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// Resolve returns the host path that p names once every symlink on it is followed inside the
// root (chroot semantics). The last component need not exist.
func (r *Root) Resolve(p string) (string, error) {
	rel, err := r.rawRel(p)
	if err != nil {
		return "", err
	}
	res, err := r.resolveRel(rel)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return r.Path(res), nil
}

// rawRel is p relative to the root with its ".." components kept: under chroot semantics
// "a/link/../b" goes up from where link points, not lexically to "a/b", so resolveRel must
// see them. A path that does not start with the root's directory falls back to Rel.
func (r *Root) rawRel(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + "/" + p
	}
	prefix := strings.TrimSuffix(r.dir, "/") + "/"
	switch {
	case p == r.dir:
		return ".", nil
	case strings.HasPrefix(p, prefix):
		return p[len(prefix):], nil
	}
	return r.Rel(p)
}

// full resolves p (every component) to a root-relative name for os.Root.
func (r *Root) full(p string) (string, error) {
	rel, err := r.rawRel(p)
	if err != nil {
		return "", err
	}
	res, err := r.resolveRel(rel)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return res, nil
}

// parent resolves the directory of p and keeps its last component as it is: the name for an
// operation on a link itself (lstat, readlink, symlink, rename, remove).
func (r *Root) parent(p string) (string, error) {
	rel, err := r.rawRel(p)
	if err != nil {
		return "", err
	}
	rel = strings.TrimRight(filepath.ToSlash(rel), "/")
	dir, base := ".", rel
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	if base == "" || base == "." || base == ".." {
		// No name of its own: the operation is on the directory the path resolves to.
		res, err := r.resolveRel(rel)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		if res == "." {
			return "", fmt.Errorf("%s: the root itself", p)
		}
		return res, nil
	}
	dir, err = r.resolveRel(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return filepath.Join(dir, base), nil
}

// hostErr names the host path the caller gave in an error of os.Root, which knows only the
// root-relative name: every message names the file as the admin knows it.
func hostErr(p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != p {
		return &fs.PathError{Op: pe.Op, Path: p, Err: pe.Err}
	}
	return err
}

// ToolPath returns p as a host path to hand to an external tool (depmod -b, dracut --kmoddir),
// which resolve paths by the host's rules, not the root's: it fails with ErrToolEscape unless
// the host resolves p (or its deepest existing ancestor) to the same place inside the root.
func (r *Root) ToolPath(p string) (string, error) {
	ours, err := r.Resolve(p)
	if err != nil {
		return "", err
	}
	if r.dir == "/" {
		return p, nil
	}
	// The deepest existing ancestor, and what follows it.
	// Not cleaned: the host resolves "link/.." physically, as Resolve does inside the root.
	host := p
	if !filepath.IsAbs(host) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		host = wd + "/" + host
	}
	var tail []string
	for {
		if _, err := os.Lstat(host); err == nil {
			break
		}
		parent := filepath.Dir(host)
		if parent == host {
			break
		}
		tail = append([]string{filepath.Base(host)}, tail...)
		host = parent
	}
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	real = filepath.Join(append([]string{real}, tail...)...)
	oursRel, _ := filepath.Rel(r.dir, ours)
	hostRel, err := filepath.Rel(r.real, real)
	if err != nil || hostRel != oursRel {
		return "", fmt.Errorf("%s: %w (the host sees %s)", p, ErrToolEscape, real)
	}
	return p, nil
}

func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Resolve is At(root).Resolve of root-relative rel, for callers holding only a root path.
func Resolve(root, rel string) (string, error) {
	r, err := At(root)
	if err != nil {
		return "", err
	}
	res, err := r.resolveRel(rel)
	if err != nil {
		return "", err
	}
	return r.Path(res), nil
}

// Within reports whether path (a host path) lies inside root.
func Within(root, path string) bool {
	return within(filepath.Clean(root), filepath.Clean(path))
}
