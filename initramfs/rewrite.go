package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/u-root/u-root/pkg/cpio"
)

// Edit is what Rewrite changes in an image's last segment, by record name (normalised).
type Edit struct {
	// Replace gives new content to the regular files or symlinks of these names: each of their
	// records becomes a regular file record carrying it (mode 0644 where it was a symlink).
	Replace map[string][]byte
	// Drop removes every record of these names.
	Drop map[string]bool
	// Late, when set, is called once the rest of the segment is written (and compressing); the
	// regular files it returns are appended before the segment's last trailer, sorted by name.
	// Their directories must exist in the image.
	Late func() ([]File, error)
	// Decide, when set, decides each record of the segment in place of Replace and Drop: its
	// new content (replace) or its removal (drop). It may block until another pass over the
	// image knows; an error from it abandons the rewrite.
	Decide func(rec Record) (data []byte, replace, drop bool, err error)
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
	awaited := ed.Await == nil
	await := func() error {
		if awaited {
			return nil
		}
		awaited = true
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
		off := s.pos
		var hb [headerLen]byte
		if err := s.readFull(hb[:]); err != nil {
			return &entryError{offset: off, err: truncated(err)}
		}
		h, err := parseHeader(hb[:])
		if err != nil {
			return &entryError{offset: off, err: err}
		}
		if h.namesize == 0 || h.namesize > pathMax {
			return &entryError{offset: off, err: fmt.Errorf("name size %d out of range 1..%d", h.namesize, pathMax)}
		}
		nb := make([]byte, h.namesize+uint32(pad4(headerLen+int64(h.namesize))))
		if err := s.readFull(nb); err != nil {
			return &entryError{offset: off, err: truncated(err)}
		}
		raw := string(nb[:h.namesize-1])
		if i := indexNUL(raw); i >= 0 {
			raw = raw[:i]
		}
		size := int64(h.filesize)
		bodyPad := pad4(size)
		copyBody := func() error {
			n, err := io.CopyN(w, s.br, size)
			s.pos += n
			if err != nil {
				return &entryError{name: raw, offset: off, err: truncated(err)}
			}
			// The kernel needs no padding after the last body of a stream: neither does a copy.
			p := make([]byte, bodyPad)
			k, _ := io.ReadFull(s.br, p)
			s.pos += int64(k)
			_, err = w.Write(p[:k])
			return err
		}
		if raw == trailer {
			// Held back until what follows is known: the last trailer of the stream gets the
			// late files in front of it.
			var rec bytes.Buffer
			rec.Write(hb[:])
			rec.Write(nb)
			n, err := io.CopyN(&rec, s.br, size)
			s.pos += n
			if err != nil {
				return &entryError{name: raw, offset: off, err: truncated(err)}
			}
			k, _ := s.br.Discard(int(bodyPad))
			s.pos += int64(k)
			rec.Write(zeros[:k])
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
			}
			if atEnd && ed.Late != nil {
				files, err := ed.Late()
				if err != nil {
					return err
				}
				if err := writeLate(w, files, maxIno, maxMTime); err != nil {
					return err
				}
				ed.Late = nil
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
		name := normalize(raw)
		maxIno, maxMTime = max(maxIno, h.ino), max(maxMTime, h.mtime)
		typ := h.mode & modeType
		newData, replace := ed.Replace[name]
		drop := ed.Drop[name]
		if ed.Decide != nil {
			if newData, replace, drop, err = ed.Decide(Record{Segment: segOff, Offset: off, Name: name, Size: size, Mode: h.mode}); err != nil {
				return err
			}
		}
		if (replace || drop) && h.nlink >= 2 && typ == modeRegular {
			return fmt.Errorf("%s: %w", name, ErrCannotEdit)
		}
		skipBody := func() error {
			n, err := io.CopyN(io.Discard, s.br, size)
			s.pos += n
			if err != nil {
				return &entryError{name: name, offset: off, err: truncated(err)}
			}
			k, _ := s.br.Discard(int(bodyPad))
			s.pos += int64(k)
			return nil
		}
		switch {
		case drop:
			if err := skipBody(); err != nil {
				return err
			}
		case replace && (typ == modeRegular || typ == modeSymlink):
			if err := skipBody(); err != nil {
				return err
			}
			mode := h.mode
			if typ == modeSymlink {
				mode = modeRegular | 0o644
			}
			info := cpio.Info{Ino: uint64(h.ino), Mode: uint64(mode), UID: uint64(h.uid), GID: uint64(h.gid),
				NLink: 1, MTime: uint64(h.mtime), Major: uint64(h.devmajor), Minor: uint64(h.devminor), Name: name}
			if err := cpio.Newc.Writer(w).WriteRecord(cpio.StaticRecord(newData, info)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			if _, err := w.Write(hb[:]); err != nil {
				return err
			}
			if _, err := w.Write(nb); err != nil {
				return err
			}
			if err := copyBody(); err != nil {
				return err
			}
		}
	}
}

// writeLate writes files as new records after inode maxIno, with mtime mtime.
func writeLate(w io.Writer, files []File, maxIno, mtime uint32) error {
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return normalize(files[i].Name) < normalize(files[j].Name) })
	for k, f := range files {
		name := normalize(f.Name)
		if f.Mode&modeType != modeRegular || f.HardlinkTo != "" || f.Data == nil {
			return fmt.Errorf("%q: a late file must be a regular file with its data", f.Name)
		}
		info := cpio.Info{Ino: uint64(maxIno) + uint64(k) + 1, Mode: uint64(f.Mode), UID: uint64(f.UID), GID: uint64(f.GID),
			NLink: 1, MTime: uint64(mtime), Name: name}
		if err := cpio.Newc.Writer(w).WriteRecord(cpio.StaticRecord(f.Data, info)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}
