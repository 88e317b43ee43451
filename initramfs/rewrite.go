package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/u-root/u-root/pkg/cpio"
)

// Edit is what Rewrite changes in an image's last segment, by record name (normalised).
type Edit struct {
	// Decide decides each record of the segment, in stream order: its new content (replace:
	// the record becomes a regular file carrying data, mode 0644 where it was a symlink) or
	// its removal (drop); neither keeps it as it is. It may block until another pass over the
	// image knows; an error from it abandons the rewrite. Nil keeps every record.
	Decide func(e Entry) (data []byte, replace, drop bool, err error)
	// Late, when set, is called once the rest of the segment is written (and compressing); the
	// regular files it returns are appended before the segment's last trailer, sorted by name.
	// Their directories must exist in the image.
	Late func() ([]File, error)
	// Await, when set, is called before the end of the segment (before Late); an error from
	// it abandons the rewrite: the pass deciding the edits found none to make.
	Await func() error
}

// ErrCannotEdit is returned by Rewrite for an edit it cannot make record by record: a
// replaced or dropped name that is one of several hard links to the same inode.
var ErrCannotEdit = errors.New("edit needs the whole image rewritten")

// RewriteFile applies ed to the image at path (see Rewrite), atomically (see Writer.WriteFile),
// keeping its mode.
func RewriteFile(path string, ed Edit) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return writeAtomic(path, 0, func(out io.Writer) error { return Rewrite(f, st.Size(), path, out, ed) })
}

// Rewrite writes the image of size bytes in ra (name is used in errors) to out with ed
// applied to its last segment. Everything before that segment (an early cpio) is copied byte
// for byte. The last segment is decompressed once and its records are copied as they are,
// headers, order, inode numbers and mtimes included, except the ones ed names; it is
// compressed again in its own format (see compression.NewWriter). Unlike Writer, the cost is
// one pass over the image, with memory bounded by the largest file, and the image stays what
// its generator made of it but for the edits. Rewrite finds the segments itself as it goes:
// it needs no parse beforehand and can run beside the pass that decides ed (see Edit.Await).
func Rewrite(ra io.ReaderAt, size int64, name string, out io.Writer, ed Edit) error {
	off := int64(0)
	for {
		off = skipZerosAt(ra, off, size)
		if off >= size {
			return fmt.Errorf("%s: no archive to edit", name)
		}
		var b [8]byte
		n, _ := ra.ReadAt(b[:], off)
		if n > 0 && b[0] == '0' && off%4 == 0 {
			// An uncompressed archive: the one to edit when nothing but padding follows it.
			s := newFileStream(ra, off, size)
			probe := &Image{Name: name, ra: ra, Size: size}
			if err := probe.readArchive(s, &Segment{}, 0); err != nil {
				return &FormatError{File: name, Compression: compression.None, Offset: off, Err: err}
			}
			end := off + s.pos
			if skipZerosAt(ra, end, size) < size {
				off = end
				continue
			}
			if _, err := io.Copy(out, io.NewSectionReader(ra, 0, off)); err != nil {
				return err
			}
			if err := editStream(newFileStream(ra, off, end), out, ed, name, compression.None, off); err != nil {
				return err
			}
			_, err := io.Copy(out, io.NewSectionReader(ra, end, size-end))
			return err
		}
		f, ok := compression.Detect(b[:n])
		if !ok {
			return &FormatError{File: name, Offset: off, Err: fmt.Errorf("%w: magic % x", compression.ErrUnknownFormat, b[:n])}
		}
		if _, err := io.Copy(out, io.NewSectionReader(ra, 0, off)); err != nil {
			return err
		}
		d, err := openSegment(ra, off, size, f, 0)
		if err != nil {
			return &FormatError{File: name, Compression: f, Offset: off, Err: err}
		}
		zw, err := compression.NewWriter(out, f)
		if err != nil {
			d.close()
			return err
		}
		err = editStream(newStream(d), zw, ed, name, f, off)
		d.close()
		if err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		end := off + d.consumed()
		if skipZerosAt(ra, end, size) < size {
			return &FormatError{File: name, Compression: f, Offset: off, Err: errors.New("another segment follows this compressed one: only the last can be edited")}
		}
		// Whatever followed the segment (padding) follows it still.
		_, err = io.Copy(out, io.NewSectionReader(ra, end, size-end))
		return err
	}
}

// editStream is copyEdited with its errors naming the image and segment.
func editStream(s *stream, w io.Writer, ed Edit, name string, f compression.Format, off int64) error {
	err := copyEdited(s, w, ed, off)
	if _, ok := err.(*entryError); ok {
		return &FormatError{File: name, Compression: f, Offset: off, Err: err}
	}
	return err
}

// skipZerosAt returns the offset of the first non-NUL byte at or after off, or size.
func skipZerosAt(ra io.ReaderAt, off, size int64) int64 {
	buf := make([]byte, 4096)
	for off < size {
		n, _ := ra.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n == 0 {
			return size
		}
		for i, c := range buf[:n] {
			if c != 0 {
				return off + int64(i)
			}
		}
		off += int64(n)
	}
	return size
}

// copyEdited copies the cpio archives of s, the segment at segOff, to w, applying ed.
func copyEdited(s *stream, w io.Writer, ed Edit, segOff int64) error {
	// Plain writes only: pierrec/lz4's ReadFrom loses its state in legacy mode.
	w = struct{ io.Writer }{w}
	await := func() error { // once, at the end of the stream
		if ed.Await == nil {
			return nil
		}
		return ed.Await()
	}
	var maxIno, maxMTime uint32
	zeros := make([]byte, 4096)
	writeZeros := func(n int64) error {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	for {
		start := s.pos
		if _, err := s.skipZeros(); err == io.EOF {
			if err := await(); err != nil {
				return err
			}
			if ed.Late != nil {
				return errors.New("no trailer to put the late files in front of")
			}
			return writeZeros(s.pos - start)
		} else if err != nil {
			return &entryError{offset: s.pos, err: truncated(err)}
		}
		if err := writeZeros(s.pos - start); err != nil {
			return err
		}
		hd, err := s.readHead()
		if err != nil {
			return err
		}
		size := int64(hd.filesize)
		if hd.name == trailer {
			// Held back until what follows is known: the last trailer of the stream gets the
			// late files in front of it.
			var rec bytes.Buffer
			rec.Write(hd.hb[:])
			rec.Write(hd.nb)
			if err := s.passBody(&rec, size); err != nil {
				return &entryError{name: hd.name, offset: hd.off, err: err}
			}
			zstart := s.pos
			_, err = s.skipZeros()
			atEnd := err == io.EOF
			if err != nil && !atEnd {
				return &entryError{offset: s.pos, err: truncated(err)}
			}
			if atEnd {
				if err := await(); err != nil {
					return err
				}
				if ed.Late != nil {
					files, err := ed.Late()
					if err != nil {
						return err
					}
					if err := writeLate(cpio.Newc.Writer(w), files, uint64(maxIno), maxMTime, nil); err != nil {
						return err
					}
				}
			}
			if _, err := w.Write(rec.Bytes()); err != nil {
				return err
			}
			if err := writeZeros(s.pos - zstart); err != nil {
				return err
			}
			if atEnd {
				return nil
			}
			continue
		}
		name := normalize(hd.name)
		maxIno, maxMTime = max(maxIno, hd.ino), max(maxMTime, hd.mtime)
		rec := newEntry(&hd.rawHeader, name, Pos{segOff, hd.off})
		if rec.IsSymlink() && size <= pathMax { // the target, left unread for the copy below
			t, _ := s.br.Peek(int(size))
			rec.LinkTarget, _, _ = strings.Cut(string(t), "\x00")
		}
		var newData []byte
		var replace, drop bool
		if ed.Decide != nil {
			if newData, replace, drop, err = ed.Decide(rec); err != nil {
				return err
			}
		}
		replace = replace && (rec.IsRegular() || rec.IsSymlink())
		if (replace || drop) && hd.nlink >= 2 && rec.IsRegular() {
			return fmt.Errorf("%s: %w", name, ErrCannotEdit)
		}
		if replace || drop {
			if err := s.passBody(io.Discard, size); err != nil {
				return &entryError{name: name, offset: hd.off, err: err}
			}
		}
		switch {
		case drop:
		case replace:
			mode := hd.mode
			if rec.IsSymlink() {
				mode = modeRegular | 0o644
			}
			info := cpio.Info{Ino: uint64(hd.ino), Mode: uint64(mode), UID: uint64(hd.uid), GID: uint64(hd.gid),
				NLink: 1, MTime: uint64(hd.mtime), Major: uint64(hd.devmajor), Minor: uint64(hd.devminor), Name: name}
			if err := cpio.Newc.Writer(w).WriteRecord(cpio.StaticRecord(newData, info)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			if _, err := w.Write(hd.hb[:]); err != nil {
				return err
			}
			if _, err := w.Write(hd.nb); err != nil {
				return err
			}
			if err := s.passBody(w, size); err != nil {
				return &entryError{name: name, offset: hd.off, err: err}
			}
		}
	}
}
