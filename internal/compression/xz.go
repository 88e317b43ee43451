package compression

// The xz container (https://tukaani.org/xz/xz-file-format.txt) around ulikunitz/xz's LZMA2
// coder, so that the blocks of one stream are coded on every core.
//
// Why: ulikunitz/xz codes a stream block after block on one goroutine. On a 2-core machine it
// compressed a 21 MiB cpio in 7.8 s (a refresh of dracut's full xz image took as long as
// rebuilding it with dracut) and decodes at a third of liblzma's speed. Streams made by
// dracut (`xz -T0`) and by this writer are cut into blocks that record their sizes, so each
// block is coded on its own core and the stream joined in order: 1.1 s for those 21 MiB
// (with the dictionary below), and `initramfs ls` of dracut's xz image in 0.6 s instead of
// 1.0-1.4 s. Streams whose block headers lack the sizes (single-threaded `xz`) are read by
// ulikunitz's sequential reader.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzDictCap and xzBlockSize trade little size for speed. On a 21 MiB dracut cpio (2 cores):
// dracut's dictionary of 1 MiB in xz -T0's blocks of 3 MiB gives 8.51 MB in 1.8 s; 256 KiB in
// blocks of 1 MiB gives 8.54 MB (+0.3%) in 1.1 s; 64 KiB gives 8.77 MB (+3%) in as long.
const xzDictCap = 256 << 10

// xzBlockSize is a variable so tests can cut many small blocks.
var xzBlockSize = 1 << 20

// xzMaxParallel bounds the block and dictionary sizes decoded concurrently (each block is
// held whole in memory). `xz -9 -T0` makes blocks of 192 MiB; those are read sequentially.
const xzMaxParallel = 64 << 20

var (
	xzMagic       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	xzFooterMagic = []byte{'Y', 'Z'}
)

const (
	xzCheckNone   = 0x00
	xzCheckCRC32  = 0x01
	xzCheckCRC64  = 0x04
	xzCheckSHA256 = 0x0a
	xzFilterLZMA2 = 0x21
)

// xzCheckSize is the size of the check of each check type (the format reserves the sizes of
// types it does not define yet).
func xzCheckSize(check byte) int64 {
	if check == 0 {
		return 0
	}
	return 4 << ((check - 1) / 3)
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// takeUvarint reads an integer in the xz format's multibyte encoding (that of
// encoding/binary's Uvarint, at most 9 bytes) from the front of *b.
func takeUvarint(b *[]byte) (int64, bool) {
	v, k := binary.Uvarint(*b)
	if k <= 0 || k > 9 || v > 1<<62 || k > 1 && (*b)[k-1] == 0 { // the kernel rejects 0x80 0x00
		return 0, false
	}
	*b = (*b)[k:]
	return int64(v), true
}

// ---- Writing -------------------------------------------------------------------------------

// xzWriter writes one xz stream with a CRC32 check (the kernel rejects CRC64) whose blocks
// of xzBlockSize bytes are compressed concurrently, each block header recording its sizes.
type xzWriter struct {
	parallelWriter
	index []xzRecord // the blocks written
}

type xzRecord struct{ unpadded, uncompressed int64 }

func newXZWriter(w io.Writer) *xzWriter {
	x := &xzWriter{}
	x.parallelWriter = parallelWriter{w: w, size: xzBlockSize, head: xzStreamHeader(),
		encode: func(chunk, _ []byte, _ bool) ([]byte, error) { return encodeXZBlock(chunk) },
		written: func(block []byte, n int) {
			x.index = append(x.index, xzRecord{unpadded: xzUnpadded(block), uncompressed: int64(n)})
		},
	}
	return x
}

// Close writes the last block, the index and the stream footer. It does not close the
// underlying writer.
func (x *xzWriter) Close() error {
	if err := x.end(false); err != nil {
		return err
	}
	index := xzIndex(x.index)
	if _, err := x.w.Write(index); err != nil {
		return err
	}
	_, err := x.w.Write(xzStreamFooter(int64(len(index))))
	return err
}

func xzStreamFlags() []byte { return []byte{0x00, xzCheckCRC32} }

func xzStreamHeader() []byte {
	h := append(append([]byte{}, xzMagic...), xzStreamFlags()...)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(xzStreamFlags()))
}

func xzStreamFooter(indexLen int64) []byte {
	body := binary.LittleEndian.AppendUint32(nil, uint32(indexLen/4-1)) // backward size
	body = append(body, xzStreamFlags()...)
	f := binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(body))
	return append(append(f, body...), xzFooterMagic...)
}

func xzIndex(recs []xzRecord) []byte {
	b := binary.AppendUvarint([]byte{0x00}, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(r.unpadded))
		b = binary.AppendUvarint(b, uint64(r.uncompressed))
	}
	b = append(b, make([]byte, pad4(int64(len(b))))...)
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// encodeXZBlock compresses data into one block: a header recording the compressed and
// uncompressed sizes and the LZMA2 filter, the LZMA2 chunks, padding and the CRC32 of data.
func encodeXZBlock(data []byte) ([]byte, error) {
	var comp bytes.Buffer
	zw, err := lzma.Writer2Config{DictCap: xzDictCap, BufSize: 64 << 10}.NewWriter2(&comp)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	h := []byte{0, 0xc0} // size (set below); flags: both sizes present, one filter
	h = binary.AppendUvarint(h, uint64(comp.Len()))
	h = binary.AppendUvarint(h, uint64(len(data)))
	h = append(h, xzFilterLZMA2, 1, lzma.EncodeDictCap(xzDictCap))
	h = append(h, make([]byte, pad4(int64(len(h))))...)
	h[0] = byte((len(h)+4)/4 - 1)
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))

	out := make([]byte, 0, len(h)+comp.Len()+3+4)
	out = append(out, h...)
	out = append(out, comp.Bytes()...)
	out = append(out, make([]byte, pad4(int64(comp.Len())))...)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	return out, nil
}

// xzUnpadded is the index's "unpadded size" of a block encodeXZBlock made: header, compressed
// data and check, without the padding.
func xzUnpadded(block []byte) int64 {
	rest := block[2:]
	compressed, _ := takeUvarint(&rest)
	return (int64(block[0])+1)*4 + compressed + xzCheckSize(xzCheckCRC32)
}
