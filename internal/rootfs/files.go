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
	"syscall"

	"golang.org/x/sys/unix"
)

// The file operations of a Root: each path is resolved inside the root first (full, parent),
// then handed to os.Root.

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
// failure removes tmp and leaves p as it was; the error names p. Only a regular file (or
// nothing) at p is replaced.
func (r *Root) Commit(tmp, p string, perm fs.FileMode) error {
	f, err := r.Open(tmp)
	if fi, lerr := r.Lstat(p); err == nil && lerr == nil && !fi.Mode().IsRegular() {
		// A FIFO, socket, device or symlink at p is not ours to replace: renaming over it
		// would delete what kabiguard did not create.
		f.Close()
		err = fmt.Errorf("%w (%s): kabiguard replaces only regular files", ErrNotRegular, Kind(fi.Mode()))
	}
	if err == nil {
		if st, serr := r.Stat(p); perm == 0 && serr == nil {
			perm = st.Mode().Perm()
		}
		err = r.keepIdentity(f, p)
		if err == nil && perm != 0 {
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

// selinuxLabel is the extended attribute holding a file's SELinux context.
const selinuxLabel = "security.selinux"

// keepIdentity gives tmp (open as f) the owner and SELinux label of the p it replaces, if p
// exists: a replaced initramfs or config must not change hands or lose its boot_t/etc_t
// label (a relabel would otherwise be needed before the boot loader or a confined daemon can
// read it). Hosts without SELinux have no label to copy.
func (r *Root) keepIdentity(f *os.File, p string) error {
	old, err := r.Open(p)
	if err != nil {
		return nil // nothing to keep: p is new (or not a regular file, which Rename refuses)
	}
	defer old.Close()
	ost, err := old.Stat()
	if err != nil {
		return err
	}
	nst, err := f.Stat()
	if err != nil {
		return err
	}
	o, ok1 := ost.Sys().(*syscall.Stat_t)
	n, ok2 := nst.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && (o.Uid != n.Uid || o.Gid != n.Gid) {
		if err := f.Chown(int(o.Uid), int(o.Gid)); err != nil {
			return fmt.Errorf("keeping the owner %d:%d: %w", o.Uid, o.Gid, err)
		}
	}
	return copyLabel(old, f)
}

// copyLabel copies the SELinux label of from to to; a file system or kernel without labels
// (ENODATA, ENOTSUP) has nothing to copy.
func copyLabel(from, to *os.File) error {
	buf := make([]byte, 256)
	n, err := unix.Fgetxattr(int(from.Fd()), selinuxLabel, buf)
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Fgetxattr(int(from.Fd()), selinuxLabel, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Fgetxattr(int(from.Fd()), selinuxLabel, buf)
		}
	}
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the SELinux label: %w", err)
	}
	if err := unix.Fsetxattr(int(to.Fd()), selinuxLabel, buf[:n], 0); err != nil {
		return fmt.Errorf("keeping the SELinux label %q: %w", buf[:n], err)
	}
	return nil
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
