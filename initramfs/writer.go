package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/u-root/u-root/pkg/cpio"
)

// File is one file to write into an image.
type File struct {
	Name string // path in the image; a leading "/" is ignored
	Mode uint32 // st_mode with type bits; see the constructors
	UID  uint32
	GID  uint32
	// Data is a regular file's content; when nil and Source is set, Source (a host file) is
	// read at write time.
	Data   []byte
	Source string
	// LinkTarget is a symlink's target.
	LinkTarget string
	// Rmajor and Rminor are a device node's number.
	Rmajor, Rminor uint32
	// HardlinkTo makes this file a hard link of the regular file of that name in the same list.
	HardlinkTo string
}

// Constructors for the usual kinds of File.
func Regular(name string, perm uint32, data []byte) File {
	if data == nil {
		data = []byte{}
	}
	return File{Name: name, Mode: modeRegular | perm&0o7777, Data: data}
}
func HostFile(name, source string, perm uint32) File {
	return File{Name: name, Mode: modeRegular | perm&0o7777, Source: source}
}
func Dir(name string, perm uint32) File { return File{Name: name, Mode: modeDir | perm&0o7777} }
func Symlink(name, target string) File {
	return File{Name: name, Mode: modeSymlink | 0o777, LinkTarget: target}
}
func CharDev(name string, perm, major, minor uint32) File {
	return File{Name: name, Mode: modeChar | perm&0o7777, Rmajor: major, Rminor: minor}
}
func BlockDev(name string, perm, major, minor uint32) File {
	return File{Name: name, Mode: modeBlock | perm&0o7777, Rmajor: major, Rminor: minor}
}
func Hardlink(name, target string) File { return File{Name: name, HardlinkTo: target} }

// Writer writes reproducible images: records sorted by name, missing parent directories
// added (0755), every mtime set to MTime, inode numbers assigned in order, device fields of
// the filesystem zeroed, hard links with the data on the first link (the u-root convention).
type Writer struct {
	// Compression of the main segment: None (or ""), Gzip, Zstd, XZ or LZ4, in the forms the
	// kernel accepts (see compression.NewWriter).
	Compression compression.Format
	// Early, when not empty, is written first as an uncompressed cpio segment (e.g.
	// kernel/x86/microcode/GenuineIntel.bin), the way dracut's early microcode is.
	Early []File
	// MTime is the mtime of every entry (seconds since the epoch).
	MTime uint32
	// Perm is the mode of a new image file; 0 keeps the mode of the file being replaced, or
	// 0600 (dracut's) when there is none.
	Perm fs.FileMode
	// Late, when set, is called once the files of the main segment are written (and being
	// compressed); the regular files it returns end the archive, sorted among themselves.
	// Their names must not be among the files, their directories must be. Refresh compresses
	// an image this way while depmod computes its modules.* files.
	Late func() ([]File, error)
}

// Encode writes the image to out.
func (w Writer) Encode(out io.Writer, files []File) error {
	if len(w.Early) > 0 {
		if err := w.writeArchive(out, w.Early, nil); err != nil {
			return fmt.Errorf("early segment: %w", err)
		}
	}
	f := w.Compression
	if f == "" {
		f = compression.None
	}
	zw, err := compression.NewWriter(out, f)
	if err != nil {
		return err
	}
	if err := w.writeArchive(zw, files, w.Late); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// WriteFile writes the image to path atomically: into a temporary file in the same
// directory, synced, then renamed over path, so path always holds either the old image
// whole or the new one whole. A symlink at path stays: the file it leads to is replaced.
func (w Writer) WriteFile(name string, files []File) error {
	return writeAtomic(name, w.Perm, func(out io.Writer) error { return w.Encode(out, files) })
}

// writeAtomic writes a file through write with rootfs.WriteAtomic (a temporary file in name's
// directory, rootfs.TempName, synced and renamed over name, the directory synced): name holds
// the old content whole or the new content whole, whatever happens. perm 0 keeps the mode of
// the file replaced, or 0600 (dracut's) when there is none. A symlink at name is followed (by
// the host's rules; callers that work inside a root resolve name first).
func writeAtomic(name string, perm fs.FileMode, write func(io.Writer) error) error {
	name, err := filepath.Abs(name)
	if err != nil {
		return err
	}
	if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		real, rerr := filepath.EvalSymlinks(name)
		if rerr != nil {
			return fmt.Errorf("%s: %w", name, rerr)
		}
		name = real
	}
	if perm == 0 {
		perm = 0o600
		if st, err := os.Stat(name); err == nil {
			perm = st.Mode().Perm()
		}
	}
	r, err := rootfs.At("/")
	if err != nil {
		return err
	}
	return r.WriteAtomic(name, perm, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// plan validates files and returns them normalised and sorted with parents added.
func plan(files []File) ([]File, error) {
	byName := make(map[string]int, len(files))
	out := make([]File, 0, len(files))
	for _, f := range files {
		if f.Name == "" || strings.Contains(f.Name, "\x00") {
			return nil, fmt.Errorf("invalid name %q", f.Name)
		}
		for _, c := range strings.Split(strings.Trim(f.Name, "/"), "/") {
			if c == ".." {
				return nil, fmt.Errorf("%q: a component of the name is \"..\"", f.Name)
			}
		}
		f.Name = normalize(f.Name)
		if len(f.Name)+1 > pathMax {
			return nil, fmt.Errorf("%q: name longer than PATH_MAX", f.Name)
		}
		if _, dup := byName[f.Name]; dup {
			return nil, fmt.Errorf("%q: listed twice", f.Name)
		}
		byName[f.Name] = len(out)
		out = append(out, f)
	}
	for i := range out {
		f := &out[i]
		if f.HardlinkTo == "" {
			continue
		}
		t := normalize(f.HardlinkTo)
		j, ok := byName[t]
		if !ok || out[j].HardlinkTo != "" || out[j].Mode&modeType != modeRegular {
			return nil, fmt.Errorf("%q: hard link to %q, which is not a regular file of the list", f.Name, f.HardlinkTo)
		}
		f.HardlinkTo = t
		f.Mode = out[j].Mode
		f.UID, f.GID = out[j].UID, out[j].GID
	}
	for i := range out {
		f := out[i]
		switch f.Mode & modeType {
		case modeRegular, modeDir, modeSymlink, modeChar, modeBlock, modeFIFO, modeSocket:
		default:
			return nil, fmt.Errorf("%q: mode %#o has no file type", f.Name, f.Mode)
		}
		if f.Mode&modeType == modeSymlink && (f.LinkTarget == "" || len(f.LinkTarget) > pathMax) {
			return nil, fmt.Errorf("%q: symlink target length %d out of range", f.Name, len(f.LinkTarget))
		}
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			if j, ok := byName[d]; ok {
				if out[j].Mode&modeType != modeDir {
					return nil, fmt.Errorf("%q: parent %q is not a directory", f.Name, d)
				}
				break
			}
			byName[d] = len(out)
			out = append(out, Dir(d, 0o755))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (w Writer) writeArchive(out io.Writer, files []File, late func() ([]File, error)) error {
	files, err := plan(files)
	if err != nil {
		return err
	}
	isDir := map[string]bool{}
	for _, f := range files {
		isDir[f.Name] = f.Mode&modeType == modeDir
	}
	// Hard-link groups: inode of the first name in sorted order, nlink the group size.
	group := map[string][]int{}
	for i, f := range files {
		key := f.Name
		if f.HardlinkTo != "" {
			key = f.HardlinkTo
		}
		if f.Mode&modeType == modeRegular {
			group[key] = append(group[key], i)
		}
	}
	ino := make([]uint64, len(files))
	nlink := make([]uint64, len(files))
	dataOn := make([]int, len(files)) // index of the file whose data this record carries, -1 none
	for i := range files {
		ino[i] = uint64(i + 1)
		nlink[i] = 1
		dataOn[i] = i
		if files[i].Mode&modeType == modeDir {
			nlink[i] = 2
		}
	}
	for key, g := range group {
		if len(g) < 2 {
			continue
		}
		src := g[0]
		for _, i := range g {
			if files[i].Name == key {
				src = i
			}
		}
		for k, i := range g {
			ino[i] = uint64(g[0] + 1)
			nlink[i] = uint64(len(g))
			dataOn[i] = -1
			if k == 0 {
				dataOn[i] = src
			}
		}
	}
	cw := cpio.Newc.Writer(out)
	for i, f := range files {
		info := cpio.Info{
			Ino: ino[i], Mode: uint64(f.Mode), UID: uint64(f.UID), GID: uint64(f.GID),
			NLink: nlink[i], MTime: uint64(w.MTime), Rmajor: uint64(f.Rmajor), Rminor: uint64(f.Rminor),
			Name: f.Name,
		}
		rec := cpio.Record{Info: info}
		switch f.Mode & modeType {
		case modeSymlink:
			rec = cpio.StaticRecord([]byte(f.LinkTarget), info)
		case modeRegular:
			if dataOn[i] < 0 {
				break
			}
			src := files[dataOn[i]]
			if src.Data == nil && src.Source != "" {
				st, err := os.Stat(src.Source)
				if err != nil {
					return fmt.Errorf("%q: %w", f.Name, err)
				}
				if !st.Mode().IsRegular() {
					return fmt.Errorf("%q: source %s is not a regular file", f.Name, src.Source)
				}
				if st.Size() > 0xFFFFFFFF {
					return fmt.Errorf("%q: %d bytes do not fit newc's 32-bit size", f.Name, st.Size())
				}
				info.FileSize = uint64(st.Size())
				rec = cpio.Record{Info: info, ReaderAt: &lazyFile{path: src.Source}}
			} else {
				if int64(len(src.Data)) > 0xFFFFFFFF {
					return fmt.Errorf("%q: %d bytes do not fit newc's 32-bit size", f.Name, len(src.Data))
				}
				rec = cpio.StaticRecord(src.Data, info)
			}
		}
		if err := cw.WriteRecord(rec); err != nil {
			return fmt.Errorf("%q: %w", f.Name, err)
		}
	}
	if late != nil {
		lf, err := late()
		if err != nil {
			return err
		}
		if err := writeLate(cw, lf, uint64(len(files)), w.MTime, isDir); err != nil {
			return err
		}
	}
	return cpio.WriteTrailer(cw)
}

// writeLate writes files (Writer.Late, Edit.Late) sorted by name as records with inode
// numbers after lastIno and mtime mtime. isDir, when not nil, holds every name already in
// the archive (true for directories): a late file may not take one, and its directory must
// be one.
func writeLate(rw cpio.RecordWriter, files []File, lastIno uint64, mtime uint32, isDir map[string]bool) error {
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return normalize(files[i].Name) < normalize(files[j].Name) })
	for k, f := range files {
		name := normalize(f.Name)
		_, taken := isDir[name]
		switch {
		case f.Mode&modeType != modeRegular || f.HardlinkTo != "" || f.Data == nil:
			return fmt.Errorf("%q: a late file must be a regular file with its data", f.Name)
		case taken || k > 0 && normalize(files[k-1].Name) == name:
			return fmt.Errorf("%q: late file listed twice", f.Name)
		case isDir != nil && path.Dir(name) != "." && !isDir[path.Dir(name)]:
			return fmt.Errorf("%q: late file outside the archive's directories", f.Name)
		case int64(len(f.Data)) > 0xFFFFFFFF:
			return fmt.Errorf("%q: %d bytes do not fit newc's 32-bit size", f.Name, len(f.Data))
		}
		info := cpio.Info{Ino: lastIno + uint64(k) + 1, Mode: uint64(f.Mode), UID: uint64(f.UID), GID: uint64(f.GID),
			NLink: 1, MTime: uint64(mtime), Name: name}
		if err := rw.WriteRecord(cpio.StaticRecord(f.Data, info)); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
	}
	return nil
}

// lazyFile opens a host file on first read; the cpio writer closes it after copying.
type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) ReadAt(p []byte, off int64) (int, error) {
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	return l.f.ReadAt(p, off)
}

func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// FilesFromDir returns the tree under root as Files named relative to root (without root
// itself): contents read lazily from the host, symlinks not followed, hard links within the
// tree kept as hard links, owners and modes as on disk.
func FilesFromDir(root string) ([]File, error) {
	var files []File
	type devIno struct{ dev, ino uint64 }
	seen := map[devIno]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat data", p)
		}
		f := File{Name: rel, Mode: sys.Mode, UID: sys.Uid, GID: sys.Gid}
		switch sys.Mode & modeType {
		case modeRegular:
			k := devIno{uint64(sys.Dev), sys.Ino}
			if first, ok := seen[k]; ok && sys.Nlink > 1 {
				f.HardlinkTo = first
			} else {
				seen[k] = rel
				f.Source = p
			}
		case modeSymlink:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			f.LinkTarget = t
		case modeChar, modeBlock:
			f.Rmajor, f.Rminor = unixMajor(uint64(sys.Rdev)), unixMinor(uint64(sys.Rdev))
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(root); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// Linux dev_t encoding (glibc's gnu_dev_major/minor).
func unixMajor(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func unixMinor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }
