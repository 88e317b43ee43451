package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	fi, err := os.Stat(abs)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root %s: %w", dir, ErrNoRoot)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
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
	rel, err := r.Rel(p)
	if err != nil {
		return "", err
	}
	res, err := r.resolveRel(rel)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return r.Path(res), nil
}

// full resolves p (every component) to a root-relative name for os.Root.
func (r *Root) full(p string) (string, error) {
	rel, err := r.Rel(p)
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
	rel, err := r.Rel(p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", fmt.Errorf("%s: the root itself", p)
	}
	dir, err := r.resolveRel(filepath.Dir(rel))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return filepath.Join(dir, filepath.Base(rel)), nil
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

// Stat follows every symlink on p inside the root.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	n, err := r.full(p)
	if err != nil {
		return nil, err
	}
	fi, err := r.r.Lstat(n)
	return fi, hostErr(p, err)
}

// Lstat does not follow a symlink at p itself.
func (r *Root) Lstat(p string) (fs.FileInfo, error) {
	n, err := r.parent(p)
	if err != nil {
		return nil, err
	}
	fi, err := r.r.Lstat(n)
	return fi, hostErr(p, err)
}

// Readlink returns the target of the symlink p, as stored.
func (r *Root) Readlink(p string) (string, error) {
	n, err := r.parent(p)
	if err != nil {
		return "", err
	}
	t, err := r.r.Readlink(n)
	return t, hostErr(p, err)
}

// Open opens p for reading its contents, only if it is a regular file: a FIFO, device,
// socket or directory is refused with ErrNotRegular, without blocking.
func (r *Root) Open(p string) (*os.File, error) {
	n, err := r.full(p)
	if err != nil {
		return nil, err
	}
	f, err := r.r.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, hostErr(p, err)
	}
	return regularOnly(f, p)
}

// regularOnly returns f if it is a regular file, else closes it and fails with ErrNotRegular:
// the check after a non-blocking open, so a FIFO planted under p is refused, never waited on.
func regularOnly(f *os.File, p string) (*os.File, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(fi.Mode()))}
	}
	return f, nil
}

// Kind names a file type for messages: "directory", "FIFO", "symlink", ...
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// ReadFile reads the regular file p.
func (r *Root) ReadFile(p string) ([]byte, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ReadDir lists the directory p (symlinks on p followed inside the root), sorted by name.
func (r *Root) ReadDir(p string) ([]fs.DirEntry, error) {
	n, err := r.full(p)
	if err != nil {
		return nil, err
	}
	f, err := r.openDir(n)
	if err != nil {
		return nil, hostErr(p, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	if err != nil {
		return ents, &fs.PathError{Op: "readdir", Path: p, Err: err}
	}
	return ents, nil
}

// openDir opens the root-relative directory n without blocking: O_DIRECTORY refuses a FIFO
// (or anything else) planted where a directory is expected, which a plain open would wait on.
func (r *Root) openDir(n string) (*os.File, error) {
	return r.r.OpenFile(n, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
}

// WalkDir walks the tree at p like filepath.WalkDir (symlinks inside are reported, never
// followed); p itself is resolved inside the root first. fn receives host paths below p.
func (r *Root) WalkDir(p string, fn fs.WalkDirFunc) error {
	n, err := r.full(p)
	if err != nil {
		return fn(p, nil, err)
	}
	base := filepath.Clean(p)
	return fs.WalkDir(r.r.FS(), n, func(q string, d fs.DirEntry, err error) error {
		rel := strings.TrimPrefix(strings.TrimPrefix(q, n), "/")
		if n == "." {
			rel = strings.TrimPrefix(q, ".")
			rel = strings.TrimPrefix(rel, "/")
		}
		return fn(filepath.Join(base, rel), d, err)
	})
}

// MkdirAll makes directory p and its parents inside the root.
func (r *Root) MkdirAll(p string, perm fs.FileMode) error {
	n, err := r.full(p)
	if err != nil {
		return err
	}
	return hostErr(p, r.r.MkdirAll(n, perm))
}

// Symlink creates the symlink p pointing at target (stored as given).
func (r *Root) Symlink(target, p string) error {
	n, err := r.parent(p)
	if err != nil {
		return err
	}
	return hostErr(p, r.r.Symlink(target, n))
}

// Rename renames oldp to newp; a symlink at either is the entry itself, never its target.
func (r *Root) Rename(oldp, newp string) error {
	o, err := r.parent(oldp)
	if err != nil {
		return err
	}
	n, err := r.parent(newp)
	if err != nil {
		return err
	}
	return hostErr(newp, r.r.Rename(o, n))
}

// Remove removes the file, symlink or empty directory p (a symlink itself, never its target).
func (r *Root) Remove(p string) error {
	n, err := r.parent(p)
	if err != nil {
		return err
	}
	return hostErr(p, r.r.Remove(n))
}

// RemoveAll removes p and what it holds; a symlink on p's directory is followed inside the root.
func (r *Root) RemoveAll(p string) error {
	n, err := r.parent(p)
	if err != nil {
		return err
	}
	return hostErr(p, r.r.RemoveAll(n))
}

// CreateExcl creates p, which must not exist yet, for writing.
func (r *Root) CreateExcl(p string, perm fs.FileMode) (*os.File, error) {
	n, err := r.parent(p)
	if err != nil {
		return nil, err
	}
	f, err := r.r.OpenFile(n, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	return f, hostErr(p, err)
}

// SyncDir fsyncs directory p, so that entries created, renamed or removed in it are durable.
func (r *Root) SyncDir(p string) error {
	n, err := r.full(p)
	if err != nil {
		return err
	}
	f, err := r.openDir(n)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// WriteAtomic replaces p with what write produces: a temporary file next to it (TempName),
// put in p's place by Commit. A failure removes the temporary file and leaves p as it was.
func (r *Root) WriteAtomic(p string, perm fs.FileMode, write func(io.Writer) error) error {
	tmp := TempName(p, os.Getpid())
	r.Remove(tmp) // a leftover of a killed run with our pid
	f, err := r.CreateExcl(tmp, perm)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.Remove(tmp)
		return fmt.Errorf("%s: %w", p, err)
	}
	return r.Commit(tmp, p, perm)
}

// Commit puts tmp, a whole file next to p (written by WriteAtomic, or by an external tool
// such as an initramfs generator), in p's place atomically: tmp is given perm (0: the mode
// of the p it replaces, if any), fsynced and renamed over p, and the directory fsynced. A
// failure removes tmp and leaves p as it was; the error names p.
func (r *Root) Commit(tmp, p string, perm fs.FileMode) error {
	f, err := r.Open(tmp)
	if err == nil {
		if st, serr := r.Stat(p); perm == 0 && serr == nil {
			perm = st.Mode().Perm()
		}
		if perm != 0 {
			err = f.Chmod(perm)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = r.Rename(tmp, p)
	}
	if err != nil {
		r.Remove(tmp)
		return fmt.Errorf("%s: %w", p, err)
	}
	return r.SyncDir(filepath.Dir(p))
}

// TempName is the temporary file an atomic replace of p by process pid writes first:
// ".BASE.kabiguard-tmp-PID" next to it. The marker (TempMarker) and the pid let a later run
// tell a leftover of a killed run (its pid no longer alive) and remove it.
func TempName(p string, pid int) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+TempMarker+strconv.Itoa(pid))
}

// TempMarker is in the name of every temporary file or link kabiguard makes; one found later
// was left by a killed run and may be removed.
const TempMarker = ".kabiguard-tmp-"

// IsTemp reports whether p's name carries TempMarker.
func IsTemp(p string) bool { return strings.Contains(filepath.Base(p), TempMarker) }

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
	host := filepath.Clean(p)
	if !filepath.IsAbs(host) {
		if host, err = filepath.Abs(host); err != nil {
			return "", err
		}
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
