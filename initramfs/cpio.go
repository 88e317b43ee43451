package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

const (
	headerLen = 110
	pathMax   = 4096 // PATH_MAX: the kernel's limit on names and symlink targets
	trailer   = "TRAILER!!!"
)

// Mode type bits (st_mode), as in the cpio header.
const (
	modeType    = 0o170000
	modeSocket  = 0o140000
	modeSymlink = 0o120000
	modeRegular = 0o100000
	modeBlock   = 0o060000
	modeDir     = 0o040000
	modeChar    = 0o020000
	modeFIFO    = 0o010000
)

// stream is a forward reader with a position. When ra is set the data is the image file
// itself (an uncompressed segment) and long skips seek instead of reading.
type stream struct {
	br   *bufio.Reader
	pos  int64 // bytes consumed since the start of the stream
	ra   io.ReaderAt
	base int64 // offset of the stream in ra
	end  int64 // size of ra
}

func newFileStream(ra io.ReaderAt, off, size int64) *stream {
	return &stream{br: bufio.NewReaderSize(io.NewSectionReader(ra, off, size-off), 64<<10), ra: ra, base: off, end: size}
}

func newStream(r io.Reader) *stream {
	return &stream{br: bufio.NewReaderSize(r, 256<<10)}
}

func (s *stream) readFull(p []byte) error {
	n, err := io.ReadFull(s.br, p)
	s.pos += int64(n)
	return err
}

func (s *stream) skip(n int64) error {
	if s.ra != nil && n > int64(s.br.Buffered())+(64<<10) {
		off := s.base + s.pos + n
		if off > s.end {
			s.pos = s.end - s.base
			s.br.Reset(eofReader{})
			return io.ErrUnexpectedEOF
		}
		s.pos += n
		s.br.Reset(io.NewSectionReader(s.ra, off, s.end-off))
		return nil
	}
	for n > 0 {
		k := n
		if k > 1<<30 {
			k = 1 << 30
		}
		d, err := s.br.Discard(int(k))
		s.pos += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// sum reads n bytes and returns their byte sum, as 070702 records are checked.
func (s *stream) sum(n int64) (uint32, error) {
	var c uint32
	for n > 0 {
		b, err := s.br.Peek(min(int(n), s.br.Size()))
		for _, x := range b {
			c += uint32(x)
		}
		d, _ := s.br.Discard(len(b))
		s.pos += int64(d)
		n -= int64(d)
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return c, err
		}
	}
	return c, nil
}

// head is a record's header and name, with the bytes they occupy in the stream.
type head struct {
	rawHeader
	off  int64           // offset of the header in the stream
	hb   [headerLen]byte // the header as read
	nb   []byte          // the name as read: NUL-terminated, with the padding after it
	name string          // the name as the kernel reads it (a C string), not normalised
}

// readHead reads a record's header, name and the padding after them.
func (s *stream) readHead() (*head, error) {
	hd := &head{off: s.pos}
	if err := s.readFull(hd.hb[:6]); err != nil {
		return nil, &entryError{offset: hd.off, err: truncated(err)}
	}
	if _, err := parseHeader(hd.hb[:6]); errors.Is(err, errNoMagic) {
		return nil, &entryError{offset: hd.off, err: err}
	}
	if err := s.readFull(hd.hb[6:]); err != nil {
		return nil, &entryError{offset: hd.off, err: truncated(err)}
	}
	h, err := parseHeader(hd.hb[:])
	if err != nil {
		return nil, &entryError{offset: hd.off, err: err}
	}
	hd.rawHeader = h
	if h.namesize == 0 || h.namesize > pathMax {
		return nil, &entryError{offset: hd.off, err: fmt.Errorf("name size %d out of range 1..%d", h.namesize, pathMax)}
	}
	hd.nb = make([]byte, int64(h.namesize)+pad4(headerLen+int64(h.namesize)))
	nb := hd.nb[:h.namesize]
	if err := s.readFull(nb); err != nil {
		return nil, &entryError{offset: hd.off, err: fmt.Errorf("name: %w", truncated(err))}
	}
	if nb[len(nb)-1] != 0 {
		return nil, &entryError{offset: hd.off, err: fmt.Errorf("name %q not NUL-terminated", nb)}
	}
	hd.name = string(nb[:len(nb)-1])
	if i := strings.IndexByte(hd.name, 0); i >= 0 {
		hd.name = hd.name[:i] // the kernel uses it as a C string
	}
	if err := s.readFull(hd.nb[h.namesize:]); err != nil {
		return nil, &entryError{name: hd.name, offset: hd.off, err: truncated(err)}
	}
	return hd, nil
}

// passBody copies a body of size bytes to w, with the padding after it that the stream has
// (the kernel needs none after the last body of a stream).
func (s *stream) passBody(w io.Writer, size int64) error {
	n, err := io.CopyN(w, s.br, size)
	s.pos += n
	if err != nil {
		return truncated(err)
	}
	var p [3]byte
	k, _ := io.ReadFull(s.br, p[:pad4(size)])
	s.pos += int64(k)
	_, err = w.Write(p[:k])
	return err
}

// sumReader adds up the bytes read through it, as 070702 records are checked.
type sumReader struct {
	r   io.Reader
	sum uint32
}

func (s *sumReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for _, x := range p[:n] {
		s.sum += uint32(x)
	}
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// rawHeader is one decoded newc header.
type rawHeader struct {
	ino, mode, uid, gid, nlink, mtime, filesize uint32
	devmajor, devminor, rdevmajor, rdevminor    uint32
	namesize, check                             uint32
	csum                                        bool
}

// errNoMagic marks a record that does not start with a newc magic.
var errNoMagic = errors.New("no cpio magic")

func parseHeader(b []byte) (rawHeader, error) {
	var h rawHeader
	switch string(b[:6]) {
	case "070701":
	case "070702":
		h.csum = true
	case "070707":
		return h, fmt.Errorf("%w: odc cpio (070707); the kernel needs newc (-H newc)", errNoMagic)
	default:
		return h, fmt.Errorf("%w: got %q", errNoMagic, b[:6])
	}
	if len(b) < headerLen {
		return h, nil
	}
	fields := [13]*uint32{&h.ino, &h.mode, &h.uid, &h.gid, &h.nlink, &h.mtime, &h.filesize,
		&h.devmajor, &h.devminor, &h.rdevmajor, &h.rdevminor, &h.namesize, &h.check}
	for i, f := range fields {
		var v uint32
		for _, c := range b[6+8*i : 14+8*i] {
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				return h, fmt.Errorf("bad hex digit %q in header field %d", c, i)
			}
			v = v<<4 | uint32(d)
		}
		*f = v
	}
	return h, nil
}

// normalize turns an archive name into the path the kernel creates, relative to the root:
// no leading "/" or "./", cleaned; "" and "/" become ".".
func normalize(name string) string {
	name = path.Clean("/" + name)
	if name == "/" {
		return "."
	}
	return name[1:]
}

// entryError is an error inside one entry of a stream.
type entryError struct {
	name   string // "" before the name is known
	offset int64  // offset of the record header in the stream
	err    error
}

func (e *entryError) Error() string {
	if e.name == "" {
		return fmt.Sprintf("record at cpio offset %d: %v", e.offset, e.err)
	}
	return fmt.Sprintf("entry %q at cpio offset %d: %v", e.name, e.offset, e.err)
}

func (e *entryError) Unwrap() error { return e.err }

func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// record is one parsed cpio record, before merging.
type record struct {
	rawHeader
	name    string
	off     int64 // header offset in the stream
	dataOff int64 // body offset in the stream
	target  string
}

// readRecord reads one record at the current (4-aligned) position. wantBody, when it returns
// true for a record, makes the body available to body (called before the body is skipped).
func (s *stream) readRecord(body func(r *record, rd io.Reader) error) (*record, error) {
	hd, err := s.readHead()
	if err != nil {
		return nil, err
	}
	r := &record{off: hd.off, rawHeader: hd.rawHeader}
	h, raw := hd.rawHeader, hd.name
	r.dataOff = s.pos
	size := int64(h.filesize)
	if raw == trailer {
		r.name = trailer
		if err := s.skip(size + pad4(s.pos+size)); err != nil {
			return nil, &entryError{name: raw, offset: r.off, err: truncated(err)}
		}
		return r, nil
	}
	r.name = normalize(raw)
	fail := func(err error) (*record, error) {
		return nil, &entryError{name: r.name, offset: r.off, err: err}
	}
	switch {
	case h.mode&modeType == modeSymlink:
		if size > pathMax {
			return fail(fmt.Errorf("symlink target of %d bytes exceeds PATH_MAX", size))
		}
		tb := make([]byte, size)
		if err := s.readFull(tb); err != nil {
			return fail(fmt.Errorf("symlink target: %w", truncated(err)))
		}
		r.target = string(tb)
		if i := strings.IndexByte(r.target, 0); i >= 0 {
			r.target = r.target[:i]
		}
	case body != nil && size > 0 && h.mode&modeType == modeRegular:
		lr := &io.LimitedReader{R: s.br, N: size}
		var rd io.Reader = lr
		sr := &sumReader{r: lr}
		if h.csum {
			rd = sr
		}
		err := body(r, rd)
		s.pos += size - lr.N
		if err != nil {
			return fail(truncated(err))
		}
		if h.csum { // the rest of the body counts in the checksum too
			n, err := io.Copy(io.Discard, sr)
			s.pos += n
			if err == nil && lr.N > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return fail(truncated(err))
			}
			if sr.sum != h.check {
				return fail(fmt.Errorf("bad data checksum: header %#x, data %#x", h.check, sr.sum))
			}
		} else if err := s.skip(lr.N); err != nil {
			return fail(truncated(err))
		}
	case h.csum && h.mode&modeType == modeRegular:
		c, err := s.sum(size)
		if err != nil {
			return fail(truncated(err))
		}
		if c != h.check {
			return fail(fmt.Errorf("bad data checksum: header %#x, data %#x", h.check, c))
		}
	default:
		if err := s.skip(size); err != nil {
			return fail(truncated(err))
		}
	}
	if err := s.skip(pad4(s.pos)); err != nil {
		// The kernel needs no padding after the last body of a stream.
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			return fail(err)
		}
	}
	return r, nil
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// skipZeros consumes NUL bytes. It returns io.EOF at the end of the stream and otherwise the
// first non-NUL byte, unread.
func (s *stream) skipZeros() (byte, error) {
	for {
		b, err := s.br.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] != 0 {
			return b[0], nil
		}
		buf, _ := s.br.Peek(s.br.Buffered())
		n := 0
		for n < len(buf) && buf[n] == 0 {
			n++
		}
		s.br.Discard(n)
		s.pos += int64(n)
	}
}
