package exports

// A decoder for the xz container as the kernel's build writes it for a compressed kernel
// (scripts/xz_wrap.sh: `xz --check=crc32 --x86 --lzma2=,dict=32MiB`): blocks whose filter
// chain is an optional BCJ filter and LZMA2. github.com/ulikunitz/xz reads LZMA2 only and
// rejects any other filter (its lzmafilter.go is the one filter it knows), and
// internal/compression's xz reader is built on it; so the container is read here, LZMA2 is
// decoded by ulikunitz's lzma.Reader2 and the BCJ filter undone by unBCJx86. Format:
// https://tukaani.org/xz/xz-file-format.txt.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

var errXZ = errors.New("corrupt xz data")

// decodeXZ decodes the first xz stream of data (what follows it is ignored: the kernel's
// payload ends with its 4-byte size) and returns at most limit bytes of output.
func decodeXZ(data []byte, limit int) ([]byte, error) {
	bad := func(format string, a ...any) ([]byte, error) {
		return nil, fmt.Errorf("%w: %s", errXZ, fmt.Sprintf(format, a...))
	}
	if len(data) < 12 || !bytes.HasPrefix(data, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return bad("no stream header")
	}
	if crc32.ChecksumIEEE(data[6:8]) != binary.LittleEndian.Uint32(data[8:12]) || data[6] != 0 || data[7]&0xf0 != 0 {
		return bad("bad stream flags")
	}
	check := data[7] & 0x0f
	checkLen := map[byte]int{0x00: 0, 0x01: 4, 0x04: 8, 0x0a: 32}[check]
	if check != 0 && checkLen == 0 {
		return bad("unsupported check type %#x", check)
	}
	var out []byte
	pos := 12
	for {
		if pos >= len(data) {
			return bad("truncated: no index after block %d", pos)
		}
		if data[pos] == 0 { // the index indicator: every block is read
			return out, nil
		}
		block, n, err := decodeXZBlock(data[pos:], check, checkLen, limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("%w: block at offset %d: %v", errXZ, pos, err)
		}
		out = append(out, block...)
		pos += n
	}
}

// decodeXZBlock decodes the block at the start of data and returns its output and its length
// in data (header, compressed data, padding, check).
func decodeXZBlock(data []byte, check byte, checkLen int, limit int) ([]byte, int, error) {
	hlen := (int(data[0]) + 1) * 4
	if hlen < 8 || hlen > len(data) {
		return nil, 0, errors.New("truncated block header")
	}
	h := data[:hlen]
	if crc32.ChecksumIEEE(h[:hlen-4]) != binary.LittleEndian.Uint32(h[hlen-4:]) {
		return nil, 0, errors.New("block header CRC32 mismatch")
	}
	flags := h[1]
	if flags&0x3c != 0 {
		return nil, 0, errors.New("reserved block flags set")
	}
	rest := h[2 : hlen-4]
	uvarint := func() (uint64, error) {
		v, k := binary.Uvarint(rest)
		if k <= 0 || k > 9 {
			return 0, errors.New("bad integer in block header")
		}
		rest = rest[k:]
		return v, nil
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present { // sizes: the check after decoding is what is trusted
			if _, err := uvarint(); err != nil {
				return nil, 0, err
			}
		}
	}
	var bcj, haveBCJ bool
	var bcjStart uint32
	var dictCap int
	filters := int(flags&3) + 1
	for f := range filters {
		id, err := uvarint()
		if err != nil {
			return nil, 0, err
		}
		plen, err := uvarint()
		if err != nil || plen > uint64(len(rest)) {
			return nil, 0, errors.New("bad filter properties")
		}
		props := rest[:plen]
		rest = rest[plen:]
		last := f == filters-1
		switch {
		case id == xzFilterX86 && !last && !haveBCJ && (plen == 0 || plen == 4):
			bcj, haveBCJ = true, true
			if plen == 4 {
				bcjStart = binary.LittleEndian.Uint32(props)
			}
		case id == xzFilterLZMA2 && last && plen == 1:
			dc, err := lzma.DecodeDictCap(props[0])
			if err != nil {
				return nil, 0, err
			}
			dictCap = int(dc)
		default:
			return nil, 0, fmt.Errorf("unsupported filter chain (filter %#x at position %d of %d)", id, f+1, filters)
		}
	}
	body := bytes.NewReader(data[hlen:])
	// A dictionary larger than the output is never used beyond its size: reserve no more.
	lr, err := lzma.Reader2Config{DictCap: max(min(dictCap, limit), lzma.MinDictCap)}.NewReader2(body)
	if err != nil {
		return nil, 0, err
	}
	out, err := io.ReadAll(io.LimitReader(lr, int64(limit)+1))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, fmt.Errorf("LZMA2: %w", err)
	}
	if len(out) > limit {
		return nil, 0, fmt.Errorf("decodes to more than %d MiB", limit>>20)
	}
	end := len(data) - body.Len()
	end += (4 - (end-hlen)%4) % 4 // block padding
	if end+checkLen > len(data) {
		return nil, 0, errors.New("truncated before the block's check")
	}
	if bcj { // the check covers the data before any filter, so it is compared after this
		unBCJx86(out, bcjStart)
	}
	sum := data[end : end+checkLen]
	switch check {
	case 0x01:
		if crc32.ChecksumIEEE(out) != binary.LittleEndian.Uint32(sum) {
			return nil, 0, errors.New("CRC32 of the decoded data does not match")
		}
	case 0x04:
		if crc64.Checksum(out, crc64.MakeTable(crc64.ECMA)) != binary.LittleEndian.Uint64(sum) {
			return nil, 0, errors.New("CRC64 of the decoded data does not match")
		}
	}
	return out, end + checkLen, nil
}
