package pkgfile

import (
	"bytes"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// walkDir visits the files of an unpacked package in lexical order. Symlinks are reported
// with their target, never followed; only regular files are opened.
func walkDir(dir string, fn WalkFunc) error {
	r, err := rootfs.At(dir)
	if err != nil {
		return err
	}
	return r.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := File{Name: filepath.ToSlash(rel), Mode: info.Mode()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if f.Linkname, err = r.Readlink(p); err != nil {
				return err
			}
			return fn(f, bytes.NewReader(nil))
		case info.Mode().IsRegular():
			return visitRegular(r, p, f, fn)
		}
		return fn(f, bytes.NewReader(nil))
	})
}

func visitRegular(r *rootfs.Root, p string, f File, fn WalkFunc) error {
	file, err := r.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	f.Size = fi.Size()
	// The file may grow while read: hand over exactly the size reported.
	if err := fn(f, io.LimitReader(file, f.Size)); err != nil {
		return err
	}
	return nil
}
