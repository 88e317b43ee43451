package initramfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Compressions the kernel knows but we cannot read, recognised so the error can name them
// (init/initramfs.c: decompress_method sniffs two bytes).
var unsupportedMagics = []struct {
	name  string
	magic []byte
}{
	{"lzma", []byte{0x5d, 0x00}},
	{"lzo", []byte{0x89, 0x4c}},
	{"gzip (old 1f 9e magic)", []byte{0x1f, 0x9e}},
}

// decoded is a compressed segment opened for reading.
type decoded struct {
	io.Reader
	close func()
	// consumed reports how many bytes of the image the segment occupied. Valid only after the
	// reader returned io.EOF.
	consumed func() int64
}

// countingReader counts the bytes delivered by r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endAdapter turns a decoder's "data follows the stream" error into io.EOF and remembers how
// many bytes the decoder read beyond the end of its stream.
type endAdapter struct {
	r       io.Reader
	isEnd   func(error) (overread int64, ok bool)
	overrun int64
}

func (a *endAdapter) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		if k, ok := a.isEnd(err); ok {
			a.overrun = k
			err = io.EOF
		}
	}
	return n, err
}

// xzTrailingData is ulikunitz/xz's unexported "unexpected data after stream" error, which a
// SingleStream reader returns after reading one byte past the stream. Captured by value so a
// change of its text does not break us silently.
var xzTrailingData = sync.OnceValue(func() error {
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&buf)
	if err != nil {
		return nil
	}
	w.Close()
	buf.WriteByte(0)
	r, err := xz.ReaderConfig{SingleStream: true}.NewReader(&buf)
	if err != nil {
		return nil
	}
	_, err = io.ReadAll(r)
	return err
})

// openSegment opens the compressed segment of format f that starts at off in ra (of total
// size size). For the formats whose end can only be found by decoding (gzip, xz, bzip2), the
// consumed length is known once the returned reader reached io.EOF; for zstd and lz4 the frame
// structure is walked first. known is the segment length from an earlier parse (0 if none).
func openSegment(ra io.ReaderAt, off, size int64, f compression.Format, known int64) (*decoded, error) {
	if known > 0 {
		size = off + known
	}
	switch f {
	case compression.Zstd:
		n, err := zstdFrameLen(ra, off, size)
		if err != nil {
			return nil, err
		}
		zr, err := zstd.NewReader(io.NewSectionReader(ra, off, n), zstd.WithDecoderMaxMemory(1<<32), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return &decoded{Reader: zr, close: zr.Close, consumed: func() int64 { return n }}, nil
	case compression.XZ:
		// dracut's `xz -T0` records each block's size: decode the blocks on every core.
		if st, err := compression.WalkXZ(ra, off, size); err == nil {
			zr := st.NewReader(ra)
			return &decoded{Reader: zr, close: func() { zr.Close() }, consumed: func() int64 { return st.Length }}, nil
		}
	case compression.LZ4:
		n, err := lz4LegacyLen(ra, off, size)
		if err != nil {
			return nil, err
		}
		return &decoded{Reader: lz4.NewReader(io.NewSectionReader(ra, off, n)), close: func() {}, consumed: func() int64 { return n }}, nil
	}
	cr := &countingReader{r: io.NewSectionReader(ra, off, size-off)}
	br := bufio.NewReaderSize(cr, 64<<10)
	d := &decoded{close: func() {}}
	switch f {
	case compression.Gzip:
		// Given a *bufio.Reader, flate reads byte by byte from it and never past the member's
		// end, so the consumed count is exact. One member only, as the kernel reads.
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		d.Reader = zr
		d.consumed = func() int64 { return cr.n - int64(br.Buffered()) }
	case compression.XZ:
		zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(br)
		if err != nil {
			return nil, err
		}
		sentinel := xzTrailingData()
		a := &endAdapter{r: zr, isEnd: func(err error) (int64, bool) {
			return 1, sentinel != nil && err == sentinel
		}}
		d.Reader = a
		d.consumed = func() int64 { return cr.n - int64(br.Buffered()) - a.overrun }
	case compression.Bzip2:
		// compress/bzip2 reads two bytes after a stream looking for a concatenated one.
		a := &endAdapter{r: bzip2.NewReader(br), isEnd: func(err error) (int64, bool) {
			var se bzip2.StructuralError
			if errors.As(err, &se) && string(se) == "bad magic value in continuation file" {
				return 2, true
			}
			return 0, false
		}}
		d.Reader = a
		d.consumed = func() int64 { return cr.n - int64(br.Buffered()) - a.overrun }
	default:
		return nil, fmt.Errorf("%w %q", compression.ErrUnknownFormat, f)
	}
	return d, nil
}

// zstdFrameLen walks the block headers of the zstd frame at off and returns its length. The
// kernel decodes exactly one frame per segment.
func zstdFrameLen(ra io.ReaderAt, off, size int64) (int64, error) {
	var h [18]byte
	n, _ := ra.ReadAt(h[:], off)
	if n < 6 {
		return 0, fmt.Errorf("zstd frame header truncated")
	}
	fhd := h[4]
	if fhd&0x08 != 0 {
		return 0, fmt.Errorf("zstd frame header: reserved bit set")
	}
	single := fhd&0x20 != 0
	hl := int64(5)
	if !single {
		hl++
	}
	hl += [4]int64{0, 1, 2, 4}[fhd&3]
	fcs := [4]int64{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	hl += fcs
	p := off + hl
	var b [3]byte
	for {
		if p+3 > size {
			return 0, fmt.Errorf("zstd frame truncated at offset %d", p)
		}
		if _, err := ra.ReadAt(b[:], p); err != nil {
			return 0, fmt.Errorf("zstd block header at offset %d: %w", p, err)
		}
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		bsize := int64(v >> 3)
		switch (v >> 1) & 3 {
		case 1: // RLE: one byte repeated
			bsize = 1
		case 3:
			return 0, fmt.Errorf("zstd block at offset %d: reserved block type", p)
		}
		p += 3 + bsize
		if p > size {
			return 0, fmt.Errorf("zstd block at offset %d truncated", p-3-bsize)
		}
		if v&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		p += 4
		if p > size {
			return 0, fmt.Errorf("zstd frame checksum truncated")
		}
	}
	return p - off, nil
}

const (
	lz4LegacyMagic = 0x184C2102
	// The kernel's legacy chunks hold 8 MiB uncompressed; this is LZ4_COMPRESSBOUND of that.
	lz4MaxChunk = 8<<20 + 8<<20/255 + 16
)

// lz4LegacyLen walks the chunks of the lz4 legacy stream at off. Like the kernel's unlz4 it
// continues over repeated legacy magics and ends at the end of the data or at zero padding.
func lz4LegacyLen(ra io.ReaderAt, off, size int64) (int64, error) {
	p := off + 4
	var b [4]byte
	for size-p >= 4 {
		if _, err := ra.ReadAt(b[:], p); err != nil {
			return 0, err
		}
		n := int64(binary.LittleEndian.Uint32(b[:]))
		if n == lz4LegacyMagic {
			p += 4
			continue
		}
		if n == 0 {
			break
		}
		if n > lz4MaxChunk {
			return 0, fmt.Errorf("lz4 chunk at offset %d: length %d exceeds the legacy limit %d", p, n, lz4MaxChunk)
		}
		if p+4+n > size {
			return 0, fmt.Errorf("lz4 chunk at offset %d truncated: %d bytes announced, %d present", p, n, size-p-4)
		}
		p += 4 + n
	}
	return p - off, nil
}
