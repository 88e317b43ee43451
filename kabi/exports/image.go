package exports

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// Errors a caller may tell apart (errors.Is).
var (
	// ErrNotKernel: the file is not a kernel image kabiguard knows (bzImage, arm64 Image,
	// vmlinux ELF).
	ErrNotKernel = errors.New("not a kernel image")
	// ErrCompression: the payload is compressed in a format not read here (bzip2, lzma, lzo).
	ErrCompression = errors.New("unsupported kernel compression")
	// ErrTruncated: a header points past the end of the file.
	ErrTruncated = errors.New("truncated kernel image")
)

// maxVmlinux bounds a decompressed kernel: Debian's are 30-70 MiB.
const maxVmlinux = 512 << 20

// maxRatio bounds how much a bzImage payload may expand: kernels compress 4-8 times (Debian
// 6.1: 8.1 MB of xz for 65.9 MB). The bound keeps a crafted size trailer from making the
// decoders reserve memory for a kernel that cannot be there.
const maxRatio = 32

// Image is a kernel image's uncompressed code, as the tables are read from it.
type Image struct {
	Data []byte
	// Form says how Data was obtained: "bzImage, xz payload", "arm64 Image", ...
	Form string
	raw  bool // not ELF: the tables are found by scanning (rawscan.go)
}

// bzImage boot header fields (Documentation/arch/x86/boot.rst).
const (
	bzSetupSects  = 0x1f1
	bzHeaderMagic = 0x202 // "HdrS"
	bzVersion     = 0x206
	bzPayloadOff  = 0x248
	bzPayloadLen  = 0x24c
)

var (
	elfMagic   = []byte{0x7f, 'E', 'L', 'F'}
	arm64Magic = []byte("ARM\x64") // at 0x38 of an arm64 Image (Documentation/arch/arm64/booting.rst)
)

// Decode returns the uncompressed kernel held in a vmlinuz file: an x86 bzImage (its payload
// located from the boot header and decompressed), an arm64 Image (raw, or gzip'd as Image.gz),
// or a vmlinux ELF file as it is. Errors wrap ErrNotKernel, ErrCompression or ErrTruncated
// where one applies and say what was found; they do not name the file (the caller does).
func Decode(file []byte) (*Image, error) {
	switch {
	case len(file) == 0:
		return nil, fmt.Errorf("%w: empty file", ErrNotKernel)
	case bytes.HasPrefix(file, elfMagic):
		return &Image{Data: file, Form: "vmlinux ELF"}, nil
	case isBzImage(file):
		return decodeBzImage(file)
	case isArm64Image(file):
		return &Image{Data: file, Form: "arm64 Image", raw: true}, nil
	}
	if f, ok := compression.Detect(file); ok && f == compression.Gzip {
		plain, err := decompress(compression.Gzip, file, maxVmlinux)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if !isArm64Image(plain) {
			return nil, fmt.Errorf("%w: gzip data that is not an arm64 Image", ErrNotKernel)
		}
		return &Image{Data: plain, Form: "arm64 Image.gz", raw: true}, nil
	}
	return nil, fmt.Errorf("%w: neither a bzImage, an arm64 Image nor ELF (starts with % x)", ErrNotKernel, file[:min(len(file), 8)])
}

func isBzImage(b []byte) bool {
	return len(b) > bzPayloadLen+4 && string(b[bzHeaderMagic:bzHeaderMagic+4]) == "HdrS"
}

func isArm64Image(b []byte) bool {
	return len(b) >= 0x40 && bytes.Equal(b[0x38:0x3c], arm64Magic)
}

// payload returns the compressed kernel inside a bzImage. Protected-mode code starts after
// the real-mode setup sectors; payload_offset (boot protocol 2.08+) is relative to it.
func payload(file []byte) ([]byte, error) {
	if v := binary.LittleEndian.Uint16(file[bzVersion:]); v < 0x208 {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d has no payload fields (2.08+)", ErrNotKernel, v>>8, v&0xff)
	}
	sects := int64(file[bzSetupSects])
	if sects == 0 {
		sects = 4
	}
	off := (sects+1)*512 + int64(binary.LittleEndian.Uint32(file[bzPayloadOff:]))
	n := int64(binary.LittleEndian.Uint32(file[bzPayloadLen:]))
	if n < 4 || off+n > int64(len(file)) {
		return nil, fmt.Errorf("%w: payload of %d bytes at offset %d, file has %d", ErrTruncated, n, off, len(file))
	}
	return file[off : off+n], nil
}

func decodeBzImage(file []byte) (*Image, error) {
	p, err := payload(file)
	if err != nil {
		return nil, err
	}
	// The build appends the uncompressed size (scripts/Makefile.lib size_append): the decoders
	// stop at the end of their stream, and the size checks the result.
	size := int(binary.LittleEndian.Uint32(p[len(p)-4:]))
	if size > maxVmlinux || size > maxRatio*len(p)+1<<20 {
		return nil, fmt.Errorf("%w: bzImage payload of %d bytes claims to decode to %d", ErrNotKernel, len(p), size)
	}
	f, err := payloadFormat(p)
	if err != nil {
		return nil, err
	}
	out, err := decompress(f, p[:len(p)-4], size)
	if err != nil {
		return nil, fmt.Errorf("bzImage %s payload: %w", f, err)
	}
	if len(out) != size {
		return nil, fmt.Errorf("bzImage %s payload: decodes to %d bytes, its trailer says %d", f, len(out), size)
	}
	if !bytes.HasPrefix(out, elfMagic) {
		return nil, fmt.Errorf("%w: bzImage payload is not ELF (starts with % x)", ErrNotKernel, out[:min(len(out), 4)])
	}
	return &Image{Data: out, Form: "bzImage, " + string(f) + " payload"}, nil
}

// kernelCompressions are the payload formats of arch/x86/boot/compressed/Makefile that are
// not read here, by magic, for the message.
var kernelCompressions = []struct {
	name  string
	magic []byte
}{
	{"bzip2", []byte("BZh")},
	{"lzma", []byte{0x5d, 0x00, 0x00}},
	{"lzo", []byte{0x89, 'L', 'Z', 'O'}},
}

func payloadFormat(p []byte) (compression.Format, error) {
	f, ok := compression.Detect(p)
	switch {
	case ok && f != compression.Bzip2 && !bytes.HasPrefix(p, []byte{0x04, 0x22, 0x4d, 0x18}):
		return f, nil
	case ok && f == compression.LZ4:
		return "", fmt.Errorf("%w: lz4 frame format (the kernel's is the legacy format)", ErrCompression)
	}
	for _, c := range kernelCompressions {
		if bytes.HasPrefix(p, c.magic) {
			return "", fmt.Errorf("%w: %s (read: gzip, xz, zstd, lz4)", ErrCompression, c.name)
		}
	}
	return "", fmt.Errorf("%w: payload starts with % x, no known compression", ErrCompression, p[:min(len(p), 6)])
}

// decompress decodes data of format f, at most limit bytes. xz goes through decodeXZ for its
// BCJ filter; the others through internal/compression's readers.
func decompress(f compression.Format, data []byte, limit int) ([]byte, error) {
	if f == compression.XZ {
		if bin := compression.XZCommand(); bin != "" {
			return decodeXZWith(bin, data, limit)
		}
		return decodeXZ(data, limit)
	}
	r, err := compression.NewReader(bytes.NewReader(data), f)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := readAtMost(r, limit)
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, fmt.Errorf("decodes to more than %d MiB", limit>>20)
	}
	return out, nil
}

// readAtMost reads r to its end, at most limit+1 bytes (more than limit means r holds more),
// into a buffer sized for limit up front: io.ReadAll would grow and copy its way to the tens
// of MiB of a vmlinux. (bytes.Buffer grows when less than MinRead is free, hence the margin.)
func readAtMost(r io.Reader, limit int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(limit, 64<<20)+bytes.MinRead+1))
	_, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	return buf.Bytes(), err
}

// decodeXZWith decodes the first xz stream of data with xz(1) (compression.XZCommand), which
// applies the x86 BCJ filter itself, at most limit bytes: the size the payload announces.
func decodeXZWith(bin string, data []byte, limit int) ([]byte, error) {
	r, err := compression.NewXZCommandReader(bin, bytes.NewReader(data), true)
	if err != nil {
		return nil, err
	}
	plain, rerr := readAtMost(r, limit)
	cerr := r.Close()
	switch {
	case len(plain) > limit:
		return nil, fmt.Errorf("%w: decodes to more than the %d bytes expected", errXZ, limit)
	case rerr != nil:
		return nil, fmt.Errorf("%w: %v", errXZ, rerr)
	case cerr != nil:
		return nil, fmt.Errorf("%w: %v", errXZ, cerr)
	}
	return plain, nil
}
