// Package compression recognises and undoes the compressions that kernel modules, symvers
// files and initramfs images come in. Formats are recognised by their magic bytes, never by
// file name: a `.ko.zst` that holds gzip is still read correctly, and a file whose bytes match
// no known format is reported as such instead of being parsed as garbage.
package compression

import (
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Format names a compression format.
type Format string

// The formats the kernel and kmod produce or accept.
const (
	None  Format = "none"
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	LZ4   Format = "lz4"   // legacy frames, as the kernel's initramfs unpacker needs
	Bzip2 Format = "bzip2" // read only: old initramfs images
)

var magics = []struct {
	format Format
	magic  []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{LZ4, []byte{0x02, 0x21, 0x4c, 0x18}},
	{LZ4, []byte{0x04, 0x22, 0x4d, 0x18}}, // modern frame: readable, never written
	{Bzip2, []byte{'B', 'Z', 'h'}},
}

// Detect returns the compression whose magic starts head, and ok=false when none does.
// Uncompressed data is not recognised here: callers know what plain data looks like.
func Detect(head []byte) (Format, bool) {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.format, true
		}
	}
	return "", false
}

// ErrUnknownFormat is returned when data is neither of the expected plain form nor compressed
// in a known format.
var ErrUnknownFormat = errors.New("unknown compression")

// NewReader returns a reader that decompresses r, which holds data in format f. Close releases
// decoder resources (zstd runs goroutines) and must be called.
func NewReader(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		// Concatenated gzip members are one stream for zcat; keep that behaviour.
		return zr, nil
	case XZ:
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case Zstd:
		// Modules and symvers are small; one goroutine keeps memory low and is as fast here.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<31))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case LZ4:
		return io.NopCloser(lz4.NewReader(r)), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownFormat, f)
}

// MaxDecoded bounds what Decode returns. The largest Debian module (amdgpu) is about 20 MiB
// and the largest symvers under 2 MiB; the bound stops a crafted stream from exhausting memory.
const MaxDecoded = 512 << 20

// Decode returns data decompressed if it starts with a known magic, or data itself otherwise,
// together with the format found.
func Decode(data []byte) ([]byte, Format, error) {
	f, ok := Detect(data)
	if !ok {
		return data, None, nil
	}
	r, err := NewReader(bytes.NewReader(data), f)
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", f, err)
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, MaxDecoded+1))
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", f, err)
	}
	if int64(len(out)) > MaxDecoded {
		return nil, f, fmt.Errorf("%s: decompresses to more than %d MiB: not a module or symvers file", f, MaxDecoded>>20)
	}
	return out, f, nil
}

// ReadFile reads path and decompresses it when its content is compressed. The error names the
// file.
func ReadFile(path string) ([]byte, Format, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	out, f, err := Decode(data)
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", path, err)
	}
	return out, f, nil
}
