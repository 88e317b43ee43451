package compression

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// NewWriter returns a writer that compresses into w in format f, in the form the kernel's
// initramfs unpacker (and kmod) accepts:
//
//   - Gzip: one member, default level, no name and a zero mtime in the header, compressed
//     in chunks on every core (gzip.go);
//   - Zstd: one frame from the streaming encoder with its defaults (8 MiB window, XXH64
//     checksum); never EncodeAll with a single segment, whose window is the whole content;
//   - XZ: one stream with a CRC32 check (the kernel's XZ decoder rejects CRC64, the library's
//     default), in blocks of 1 MiB with a 256 KiB dictionary, compressed on every core
//     (xz.go);
//   - LZ4: the legacy frame format (the kernel rejects the modern frame);
//   - None: w itself, with a Close that does nothing.
//
// The output for a given input is the same on every run. Close must be called to flush the
// stream; it does not close w. Bzip2 is read only.
func NewWriter(w io.Writer, f Format) (io.WriteCloser, error) {
	switch f {
	case None:
		return nopWriteCloser{w}, nil
	case Gzip:
		return newGzipWriter(w, flate.DefaultCompression), nil
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	case XZ:
		return newXZWriter(w), nil
	case LZ4:
		zw := lz4.NewWriter(w)
		if err := zw.Apply(lz4.LegacyOption(true)); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		return zw, nil
	case Bzip2:
		return nil, fmt.Errorf("%w %q: read only", ErrUnknownFormat, f)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownFormat, f)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
