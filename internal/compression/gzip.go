package compression

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
)

// gzipChunk is how much input each goroutine compresses at once; a variable so tests can cut
// many chunks.
var gzipChunk = 1 << 20

// gzipWindow is deflate's window: the dictionary each chunk is primed with.
const gzipWindow = 32 << 10

// gzipWriter writes one gzip member whose deflate stream is compressed in chunks on every
// core, the way pigz does it: each chunk is primed with the 32 KiB of input before it and
// ends with a sync flush (an empty stored block, which byte-aligns the stream), so the chunks
// join into one ordinary deflate stream that any inflater, the kernel's included, reads as
// one. It compresses as well as one deflate stream of the same level.
//
// Why: klauspost's gzip writer runs on one core; a refresh of a gzip image (dracut's default
// compression, through pigz) spent most of its time there.
type gzipWriter struct {
	parallelWriter
	crc  uint32
	size uint32 // ISIZE: the input size modulo 2^32
}

// gzipHeader: ID1 ID2, CM deflate, no flags, MTIME 0 (reproducible), XFL 0, OS unknown: what
// klauspost's and Go's gzip writers make with no name and no time.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

func newGzipWriter(w io.Writer, level int) *gzipWriter {
	return &gzipWriter{parallelWriter: parallelWriter{w: w, size: gzipChunk, head: gzipHeader,
		encode: func(chunk, prev []byte, final bool) ([]byte, error) {
			var buf bytes.Buffer
			fw, err := flate.NewWriterDict(&buf, level, prev[max(0, len(prev)-gzipWindow):])
			if err == nil {
				_, err = fw.Write(chunk)
			}
			if err == nil && final {
				err = fw.Close()
			} else if err == nil {
				err = fw.Flush()
			}
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			return buf.Bytes(), nil
		},
	}}
}

func (g *gzipWriter) Write(p []byte) (int, error) {
	g.crc = crc32.Update(g.crc, crc32.IEEETable, p)
	g.size += uint32(len(p))
	return g.parallelWriter.Write(p)
}

// Close compresses the last chunk (an empty final block when there is none) and writes the
// trailer. It does not close the underlying writer.
func (g *gzipWriter) Close() error {
	if err := g.end(true); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], g.crc)
	binary.LittleEndian.PutUint32(trailer[4:], g.size)
	_, err := g.w.Write(trailer[:])
	return err
}
