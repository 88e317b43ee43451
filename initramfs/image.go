package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// Entry is one file of an image: a record of its archives as Options.Visit and Edit.Decide
// see it and Segment.Entries lists it, or a file of the rootfs they unpack to (Image.Entries,
// Lookup, Stat).
type Entry struct {
	Name string // normalised: relative to the root, no leading "/"; "." is the root
	Mode uint32 // st_mode: type and permission bits
	// Size is the content's size: in Options.Visit and Edit.Decide the record's body length;
	// in an Image, for hard links, the size of the content the link group ends with.
	Size     int64
	Ino      uint32
	NLink    uint32
	UID, GID uint32
	MTime    int64
	Devmajor uint32 // device of the file's filesystem (part of the hard-link key)
	Devminor uint32
	Rmajor   uint32 // device number of a device node
	Rminor   uint32
	// LinkTarget is a symlink's target.
	LinkTarget string
	// HardlinkTo is, in an Image, for every hard link of a group but the first, the name of
	// the first; empty in Options.Visit and Edit.Decide, which see one record at a time.
	HardlinkTo string
	// Pos is where the record is. It is the same in every pass over an unchanged image, so it
	// matches a record Options.Visit saw with the one Edit.Decide sees.
	Pos Pos

	node *inode
}

// Pos locates a record in an image; it is comparable, a map key.
type Pos struct {
	// SegmentOffset is the offset in the image file of the segment holding the record; -1
	// for the root "." when no archive carries it.
	SegmentOffset int64
	// Offset is the offset of the record's header in that segment's (decompressed) cpio stream.
	Offset int64
}

// newEntry is the entry a record's header states, before the merge: no LinkTarget (the
// record's body), no HardlinkTo, Size the body's length.
func newEntry(h *rawHeader, name string, pos Pos) Entry {
	return Entry{
		Name: name, Mode: h.mode, Size: int64(h.filesize), Ino: h.ino, NLink: h.nlink,
		UID: h.uid, GID: h.gid, MTime: int64(h.mtime), Devmajor: h.devmajor, Devminor: h.devminor,
		Rmajor: h.rdevmajor, Rminor: h.rdevminor, Pos: pos,
	}
}

// inode is content shared by the names of a hard-link group.
type inode struct {
	seg  int   // segment holding the content, -1 for none
	off  int64 // offset of the content in that segment's cpio stream
	size int64
}

// Type returns the file type bits of Mode.
func (e Entry) Type() uint32 { return e.Mode & modeType }

// IsDir, IsRegular and IsSymlink report the entry's type.
func (e Entry) IsDir() bool     { return e.Type() == modeDir }
func (e Entry) IsRegular() bool { return e.Type() == modeRegular }
func (e Entry) IsSymlink() bool { return e.Type() == modeSymlink }

// FileMode returns Mode as an fs.FileMode.
func (e Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch e.Type() {
	case modeDir:
		m |= fs.ModeDir
	case modeSymlink:
		m |= fs.ModeSymlink
	case modeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case modeBlock:
		m |= fs.ModeDevice
	case modeFIFO:
		m |= fs.ModeNamedPipe
	case modeSocket:
		m |= fs.ModeSocket
	case modeRegular:
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// Segment is one part of an image the kernel unpacks with one call.
type Segment struct {
	Offset      int64              // where it starts in the image file
	Length      int64              // bytes of the image file it occupies
	Compression compression.Format // compression.None for an uncompressed cpio archive
	Size        int64              // length of its (decompressed) cpio stream
	Archives    int                // cpio archives in it (TRAILER!!! records)
	Entries     []Entry            // in archive order, trailers left out

	plain *chunks // the decompressed stream, kept with Options.Keep
}

// Skipped is an entry the kernel would not create.
type Skipped struct {
	Entry  Entry
	Reason string
}

// Image is a parsed initramfs image.
type Image struct {
	Name     string // the path given to Open, used in errors
	Size     int64
	Segments []Segment
	// Skipped lists entries of the archives that the kernel would not create (missing parent
	// directory, a file over a non-empty directory).
	Skipped []Skipped

	ra    io.ReaderAt
	keep  bool                                // Options.Keep
	visit func(e Entry, body io.Reader) error // Options.Visit
	// deps holds the bodies of modules.dep records, read as the parse passes them, by
	// segment and offset: Modules needs them and would otherwise decompress again.
	deps   map[[2]int64][]byte
	closer io.Closer
	files  map[string]*Entry
	names  []string
}

// FormatError locates a defect in an image.
type FormatError struct {
	File        string
	Segment     int // 1-based, as in messages; 0 when not inside a segment
	Compression compression.Format
	Offset      int64 // image offset of the segment
	Err         error
}

func (e *FormatError) Error() string {
	if e.Segment == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	if e.Compression == "" {
		return fmt.Sprintf("%s: segment %d at offset %d: %v", e.File, e.Segment, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s: segment %d (%s) at offset %d: %v", e.File, e.Segment, e.Compression, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Options say how an image is read.
type Options struct {
	// Visit, when set, is handed every regular file record with a body, and the body, as the
	// one decompression passes it (name as in the record, normalised; Size the body's length):
	// a whole image is inspected in one pass and without holding it in memory. It may read
	// part of the body or none; an error from it ends the read.
	Visit func(e Entry, body io.Reader) error
	// Keep keeps each compressed segment's decompressed stream in memory while parsing, for an
	// image that is about to be read whole (to rewrite it): ReadFiles and Walk then decompress
	// nothing a second time. It costs memory the size of the unpacked archives.
	Keep bool
}

// Read parses the image of size bytes in ra; name is used in errors. Callers that must choose
// how a path is opened (inside a root, regular files only, so that a FIFO never blocks) open
// it themselves and close ra after the Image is no longer used.
func Read(ra io.ReaderAt, size int64, name string, opt Options) (*Image, error) {
	im := &Image{Name: name, Size: size, ra: ra, visit: opt.Visit, keep: opt.Keep}
	if err := im.parse(); err != nil {
		return nil, err
	}
	im.merge()
	return im, nil
}

// Open is Read of the file at path, which the Image keeps open for ReadFile: Close it.
func Open(path string, opt Options) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	im, err := Read(f, st.Size(), path, opt)
	if err != nil {
		f.Close()
		return nil, err
	}
	im.closer = f
	return im, nil
}

// Close closes the file opened by Open.
func (im *Image) Close() error {
	if im.closer == nil {
		return nil
	}
	return im.closer.Close()
}

func (im *Image) parse() error {
	off := int64(0)
	head := make([]byte, 64<<10)
	for off < im.Size {
		n, err := im.ra.ReadAt(head, off)
		if n == 0 {
			return &FormatError{File: im.Name, Err: fmt.Errorf("reading at offset %d: %w", off, err)}
		}
		b := head[:n]
		if b[0] == 0 {
			i := 0
			for i < len(b) && b[i] == 0 {
				i++
			}
			off += int64(i)
			continue
		}
		idx := len(im.Segments)
		ferr := func(f compression.Format, err error) error {
			return &FormatError{File: im.Name, Segment: idx + 1, Compression: f, Offset: off, Err: err}
		}
		if b[0] == '0' && off%4 == 0 {
			seg := Segment{Offset: off, Compression: compression.None}
			s := newFileStream(im.ra, off, im.Size)
			if err := im.readArchive(s, &seg, idx); err != nil {
				return ferr(compression.None, err)
			}
			seg.Size, seg.Length = s.pos, s.pos
			im.Segments = append(im.Segments, seg)
			off += s.pos
			continue
		}
		f, ok := compression.Detect(b)
		if !ok {
			for _, u := range unsupportedMagics {
				if len(b) >= len(u.magic) && string(b[:len(u.magic)]) == string(u.magic) {
					return ferr("", fmt.Errorf("compression %s is not supported (magic % x)", u.name, b[:min(8, len(b))]))
				}
			}
			return ferr("", fmt.Errorf("%w: magic % x", compression.ErrUnknownFormat, b[:min(8, len(b))]))
		}
		if f == compression.LZ4 && b[0] == 0x04 {
			return ferr(f, errors.New("lz4 frame format: the kernel reads only the legacy format (lz4 -l)"))
		}
		seg := Segment{Offset: off, Compression: f}
		d, err := openSegment(im.ra, off, im.Size, f, 0)
		if err != nil {
			return ferr(f, err)
		}
		var src io.Reader = d
		var kept *chunks
		if im.keep {
			kept = new(chunks)
			src = io.TeeReader(d, kept)
		}
		s := newStream(src)
		err = im.readStream(s, &seg, idx)
		d.close()
		if err != nil {
			return ferr(f, err)
		}
		if kept != nil {
			seg.plain = kept
		}
		seg.Size, seg.Length = s.pos, d.consumed()
		if seg.Length <= 0 {
			return ferr(f, errors.New("decompressor consumed no input"))
		}
		im.Segments = append(im.Segments, seg)
		off += seg.Length
	}
	return nil
}

// readArchive reads records up to and including one TRAILER!!!.
func (im *Image) readArchive(s *stream, seg *Segment, idx int) error {
	seg.Archives++
	links := map[linkKey]*inode{}
	first := map[linkKey]string{}
	body := func(r *record, rd io.Reader) error {
		if path.Base(r.name) == "modules.dep" && strings.Contains(r.name, "lib/modules/") && r.filesize <= 64<<20 {
			b, err := io.ReadAll(rd)
			if err != nil {
				return err
			}
			if im.deps == nil {
				im.deps = map[[2]int64][]byte{}
			}
			im.deps[[2]int64{int64(idx), r.dataOff}] = b
			rd = bytes.NewReader(b)
		}
		if im.visit != nil {
			return im.visit(newEntry(&r.rawHeader, r.name, Pos{seg.Offset, r.off}), rd)
		}
		return nil
	}
	for {
		r, err := s.readRecord(body)
		if err != nil {
			return err
		}
		if r.name == trailer {
			return nil
		}
		e := newEntry(&r.rawHeader, r.name, Pos{seg.Offset, r.off})
		e.LinkTarget = r.target
		t := r.mode & modeType
		body := &inode{seg: -1}
		if t == modeRegular && r.filesize > 0 {
			body = &inode{seg: idx, off: r.dataOff, size: int64(r.filesize)}
		}
		e.node = body
		// init/initramfs.c: maybe_link links names with nlink >= 2 and equal
		// (dev major, dev minor, ino, file type); the table is reset at each trailer.
		if r.nlink >= 2 && t != modeDir && t != modeSymlink {
			k := linkKey{r.devmajor, r.devminor, r.ino, t}
			if n, ok := links[k]; ok {
				e.HardlinkTo = first[k]
				if body.seg >= 0 {
					*n = *body // the later body overwrites the shared inode
				}
				e.node = n
			} else {
				links[k] = body
				first[k] = r.name
			}
		}
		seg.Entries = append(seg.Entries, e)
	}
}

type linkKey struct{ major, minor, ino, typ uint32 }

// readStream reads the cpio archives of a decompressed stream: archives separated by NUL
// padding, as the kernel's flush_buffer accepts.
func (im *Image) readStream(s *stream, seg *Segment, idx int) error {
	for {
		c, err := s.skipZeros()
		if err == io.EOF {
			if seg.Archives == 0 {
				return errors.New("no cpio archive in the stream")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("at cpio offset %d: %w", s.pos, err)
		}
		if c != '0' {
			return fmt.Errorf("junk within compressed archive at cpio offset %d (byte %#02x)", s.pos, c)
		}
		if s.pos%4 != 0 {
			return fmt.Errorf("broken padding: archive at unaligned cpio offset %d", s.pos)
		}
		if err := im.readArchive(s, seg, idx); err != nil {
			return err
		}
	}
}
