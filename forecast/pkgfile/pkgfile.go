package pkgfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// Kind says how a package is stored.
type Kind string

const (
	Deb Kind = "deb" // a Debian binary package file
	RPM Kind = "rpm" // an RPM package file
	Dir Kind = "dir" // a directory holding an unpacked package
)

// Errors a caller may tell apart (wrapped with the file's name and the cause).
var (
	// ErrFormat means the file is not a package this reader knows, or breaks its format.
	ErrFormat = errors.New("not a readable package")
	// ErrTruncated means the file ends inside a header or a member.
	ErrTruncated = errors.New("truncated")
	// ErrOutside means an entry's name leads outside the package (../ or worse).
	ErrOutside = errors.New("entry leads outside the package")
)

// SkipAll, returned by a Walk callback, stops the walk without an error.
var SkipAll = fs.SkipAll

// Package is one package, identified by what its metadata says.
type Package struct {
	Path    string // as given
	Kind    Kind
	Name    string // the control file's Package (a directory: its base name)
	Version string // the control file's Version (empty for a directory)
	Arch    string // the control file's Architecture (empty for a directory)
}

func (p *Package) String() string {
	if p.Version == "" {
		return p.Path
	}
	return fmt.Sprintf("%s %s (%s)", p.Name, p.Version, p.Path)
}

// File is one entry of a package.
type File struct {
	Name     string      // slash-separated, relative to the package root, cleaned
	Mode     fs.FileMode // type bits and permissions
	Size     int64       // bytes of content (regular files)
	Linkname string      // a symlink's target as stored; a hard link's Name of the file it repeats
	HardLink bool        // the entry repeats the content of the earlier file Linkname
}

// IsRegular reports whether the entry has content of its own.
func (f File) IsRegular() bool { return f.Mode.IsRegular() && !f.HardLink }

// WalkFunc receives each entry; body reads a regular file's content and is valid only during
// the call (it need not be read). Returning SkipAll stops the walk; another error stops it
// and is returned.
type WalkFunc func(f File, body io.Reader) error

// Open identifies the package at p: a directory, or a file whose first bytes say its format.
// The error names p and the cause.
func Open(p string) (*Package, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return &Package{Path: p, Kind: Dir, Name: path.Base(p)}, nil
	}
	f, size, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [8]byte
	n, _ := f.ReadAt(magic[:], 0)
	var pkg *Package
	switch {
	case string(magic[:n]) == arMagic:
		pkg, err = readDebMeta(f, size)
	case n >= 4 && bytes.Equal(magic[:4], rpmLeadMagic):
		pkg, err = readRPMMeta(f, size)
	default:
		err = fmt.Errorf("%w: neither a Debian package (.deb) nor an RPM package (no ar or RPM magic)", ErrFormat)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	pkg.Path = p
	return pkg, nil
}

// Walk visits every entry of the package in archive order (a directory: lexical order; an
// RPM: see walkRPM). An error of the package names it and the cause; an error fn returns is
// returned as it is.
func (pkg *Package) Walk(fn WalkFunc) error {
	own := func(f File, body io.Reader) error {
		if err := fn(f, body); err != nil {
			return &callerError{err}
		}
		return nil
	}
	var err error
	switch pkg.Kind {
	case Dir:
		err = walkDir(pkg.Path, own)
	case Deb, RPM:
		var f *os.File
		var size int64
		if f, size, err = openRegular(pkg.Path); err == nil {
			walk := walkDeb
			if pkg.Kind == RPM {
				walk = walkRPM
			}
			err = walk(f, size, own)
			f.Close()
		}
	default:
		err = fmt.Errorf("%w: unknown kind %q", ErrFormat, pkg.Kind)
	}
	var ce *callerError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		if errors.Is(ce.err, SkipAll) {
			return nil
		}
		return ce.err
	}
	return &pathError{path: pkg.Path, err: err}
}

// callerError carries an error of the caller's WalkFunc through the readers unchanged.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }

// pathError names the package once, however deep the cause.
type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

// openRegular opens the package file p (a host path, not under any --root) for reading if
// it is a regular file; a FIFO is refused without blocking (rootfs at "/" resolves as the
// host does).
func openRegular(p string) (*os.File, int64, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, 0, err
	}
	host, err := rootfs.At("/")
	if err != nil {
		return nil, 0, err
	}
	f, err := host.Open(abs)
	if errors.Is(err, rootfs.ErrNotRegular) {
		kind := "special file"
		if fi, err := os.Stat(abs); err == nil {
			kind = rootfs.Kind(fi.Mode())
		}
		return nil, 0, fmt.Errorf("%s: %w: a %s, not a regular file", p, ErrFormat, kind)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// cleanName turns an archive member's name into a path relative to the package root; ok is
// false for the root itself. A name leading outside is ErrOutside.
func cleanName(name string) (string, bool, error) {
	c := path.Clean("/" + strings.TrimPrefix(name, "./"))
	if strings.Contains(name, "\x00") {
		return "", false, fmt.Errorf("%w: %q holds a NUL byte", ErrFormat, name)
	}
	// path.Clean of an absolute path never keeps "..", so compare with a lexical walk.
	depth := 0
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return "", false, fmt.Errorf("%w: %q", ErrOutside, name)
			}
		default:
			depth++
		}
	}
	if c == "/" {
		return "", false, nil
	}
	return c[1:], true, nil
}
