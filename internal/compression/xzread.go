package compression

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"runtime"

	"github.com/ulikunitz/xz/lzma"
)

// Reading xz streams (see xz.go): their layout from the headers and index (WalkXZ), and
// their blocks decoded on every core (XZStream.NewReader).

// XZStream is the layout of one xz stream, read from its headers and index without decoding.
type XZStream struct {
	Length int64 // bytes from the stream header to the end of the footer
	check  byte
	blocks []xzBlock
}

type xzBlock struct {
	off        int64 // of the block header, in the ReaderAt
	headerLen  int64
	compressed int64
	size       int64 // uncompressed
	dictCap    int
}

// ErrXZNotIndexed means a block header does not record its compressed size, so blocks can
// only be found by decoding the stream in order.
var ErrXZNotIndexed = errors.New("xz block header without compressed size")

// WalkXZ reads the layout of the xz stream at off in ra (size bytes in all): the stream
// header, each block header, the index and the footer, checking their CRC32s and that the
// index agrees with the blocks. It fails with ErrXZNotIndexed when a block header lacks its
// compressed size, and with an error naming the offset of any defect.
func WalkXZ(ra io.ReaderAt, off, size int64) (*XZStream, error) {
	ra = io.NewSectionReader(ra, 0, size) // nothing past size is read, whatever ra holds
	var sh [12]byte
	if _, err := ra.ReadAt(sh[:], off); err != nil {
		return nil, fmt.Errorf("xz stream header at offset %d: %w", off, truncated(err))
	}
	if !bytes.Equal(sh[:6], xzMagic) {
		return nil, fmt.Errorf("xz stream header at offset %d: no magic", off)
	}
	if binary.LittleEndian.Uint32(sh[8:]) != crc32.ChecksumIEEE(sh[6:8]) || sh[6] != 0 || sh[7] > 0x0f {
		return nil, fmt.Errorf("xz stream header at offset %d: bad flags or CRC32", off)
	}
	st := &XZStream{check: sh[7]}
	p := off + 12
	var hb [1024]byte
	for {
		if _, err := ra.ReadAt(hb[:1], p); err != nil {
			return nil, fmt.Errorf("xz block header at offset %d: %w", p, truncated(err))
		}
		if hb[0] == 0 {
			break // the index indicator
		}
		b, err := readXZBlockHeader(ra, p, hb[:(int(hb[0])+1)*4])
		if err != nil {
			return nil, err
		}
		st.blocks = append(st.blocks, b)
		p += b.headerLen + b.compressed + pad4(b.compressed) + xzCheckSize(st.check)
		if p > size {
			return nil, fmt.Errorf("xz block at offset %d: truncated", b.off)
		}
	}
	indexLen, err := readXZIndex(ra, p, size, st)
	if err != nil {
		return nil, err
	}
	p += indexLen
	var ft [12]byte
	if _, err := ra.ReadAt(ft[:], p); err != nil {
		return nil, fmt.Errorf("xz stream footer at offset %d: %w", p, truncated(err))
	}
	if !bytes.Equal(ft[10:], xzFooterMagic) || binary.LittleEndian.Uint32(ft[:4]) != crc32.ChecksumIEEE(ft[4:10]) ||
		!bytes.Equal(ft[8:10], sh[6:8]) || (int64(binary.LittleEndian.Uint32(ft[4:8]))+1)*4 != indexLen {
		return nil, fmt.Errorf("xz stream footer at offset %d: does not match the header and index", p)
	}
	st.Length = p + 12 - off
	return st, nil
}

func readXZBlockHeader(ra io.ReaderAt, off int64, h []byte) (xzBlock, error) {
	bad := func(what string) (xzBlock, error) {
		return xzBlock{}, fmt.Errorf("xz block header at offset %d: %s", off, what)
	}
	if _, err := ra.ReadAt(h, off); err != nil {
		return xzBlock{}, fmt.Errorf("xz block header at offset %d: %w", off, truncated(err))
	}
	n := len(h)
	if binary.LittleEndian.Uint32(h[n-4:]) != crc32.ChecksumIEEE(h[:n-4]) {
		return bad("CRC32 mismatch")
	}
	flags := h[1]
	if flags&0x3c != 0 {
		return bad("reserved flags set")
	}
	if flags&0x40 == 0 {
		return xzBlock{}, ErrXZNotIndexed
	}
	b := xzBlock{off: off, headerLen: int64(n), size: -1}
	rest := h[2 : n-4]
	varint := func() (int64, bool) { return takeUvarint(&rest) }
	var ok bool
	if b.compressed, ok = varint(); !ok || b.compressed == 0 {
		return bad("bad compressed size")
	}
	if flags&0x80 != 0 {
		if b.size, ok = varint(); !ok {
			return bad("bad uncompressed size")
		}
	}
	// One filter, LZMA2: what the kernel reads (it also knows BCJ filters, which dracut does
	// not use; such a stream goes to the sequential reader).
	if flags&0x03 != 0 {
		return xzBlock{}, ErrXZNotIndexed
	}
	id, ok1 := varint()
	props, ok2 := varint()
	if !ok1 || !ok2 || id != xzFilterLZMA2 || props != 1 || len(rest) < 1 {
		return xzBlock{}, ErrXZNotIndexed
	}
	dict, err := lzma.DecodeDictCap(rest[0])
	if err != nil {
		return bad(err.Error())
	}
	b.dictCap = int(dict)
	if dict > xzMaxParallel {
		return xzBlock{}, ErrXZNotIndexed // not dracut's; leave such memory to the sequential reader
	}
	for _, c := range rest[1:] {
		if c != 0 {
			return bad("non-zero header padding")
		}
	}
	return b, nil
}

// readXZIndex reads the index at off, checks it against the blocks walked and completes their
// uncompressed sizes; it returns the index length.
func readXZIndex(ra io.ReaderAt, off, size int64, st *XZStream) (int64, error) {
	bad := func(what string) (int64, error) {
		return 0, fmt.Errorf("xz index at offset %d: %s", off, what)
	}
	// Each record takes at most 18 bytes; the count at most 9.
	maxLen := min(size-off, 1+9+18*int64(len(st.blocks))+3+4)
	if maxLen < 8 { // indicator, count, padding and CRC32 at the least
		return bad("truncated")
	}
	buf := make([]byte, maxLen)
	if n, err := ra.ReadAt(buf, off); int64(n) < maxLen {
		return 0, fmt.Errorf("xz index at offset %d: %w", off, truncated(err))
	}
	rest := buf[1:]
	varint := func() (int64, bool) { return takeUvarint(&rest) }
	count, ok := varint()
	if !ok || count != int64(len(st.blocks)) {
		return bad("record count differs from the blocks found")
	}
	for i := range st.blocks {
		b := &st.blocks[i]
		unpadded, ok1 := varint()
		usize, ok2 := varint()
		if !ok1 || !ok2 || unpadded != b.headerLen+b.compressed+xzCheckSize(st.check) || (b.size >= 0 && usize != b.size) {
			return bad(fmt.Sprintf("record %d differs from the block at offset %d", i+1, b.off))
		}
		if usize > xzMaxParallel {
			return 0, ErrXZNotIndexed
		}
		b.size = usize
	}
	n := int64(len(buf) - len(rest))
	end := n + pad4(n)
	if end+4 > int64(len(buf)) {
		return bad("truncated")
	}
	for _, c := range buf[n:end] {
		if c != 0 {
			return bad("non-zero padding")
		}
	}
	if binary.LittleEndian.Uint32(buf[end:]) != crc32.ChecksumIEEE(buf[:end]) {
		return bad("CRC32 mismatch")
	}
	return end + 4, nil
}

// Blocks is the number of blocks in the stream.
func (st *XZStream) Blocks() int { return len(st.blocks) }

// Size is the uncompressed size of the stream.
func (st *XZStream) Size() int64 {
	var n int64
	for _, b := range st.blocks {
		n += b.size
	}
	return n
}

// NewReader returns a reader of the stream's uncompressed content whose blocks are decoded
// concurrently, a few ahead of the reader, in bounded memory. Close it to stop the decoders.
func (st *XZStream) NewReader(ra io.ReaderAt) io.ReadCloser {
	return &xzParallelReader{ra: ra, st: st, ahead: max(2, runtime.GOMAXPROCS(0)) + 1, free: make(chan []byte, 2)}
}

// xzMaxInFlight bounds the memory of the blocks being decoded and read (output and
// dictionary): dracut's blocks take 4 MiB each, `xz -6 -T0`'s 32 MiB; one block always goes.
var xzMaxInFlight int64 = 256 << 20 // a variable for tests

type xzParallelReader struct {
	ra       io.ReaderAt
	st       *XZStream
	ahead    int // blocks in flight, the one being read included
	next     int // next block to start
	pending  []chan xzDecoded
	costs    []int64 // memory of each pending block
	inFlight int64   // memory of the pending blocks and of the one being read
	cur      []byte  // unread part of the block being read
	curBuf   []byte  // its buffer, returned to free when done
	curCost  int64
	free     chan []byte // a few buffers of blocks read, for the next ones
	err      error
}

type xzDecoded struct {
	data []byte
	err  error
}

// xzBlockMemory is what decoding b holds: its output and its decoder's dictionary.
func xzBlockMemory(b xzBlock) int64 { return b.size + int64(xzDecodeDict(b)) }

func (x *xzParallelReader) fill() {
	for len(x.pending) < x.ahead && x.next < len(x.st.blocks) {
		b := x.st.blocks[x.next]
		cost := xzBlockMemory(b)
		if x.inFlight > 0 && x.inFlight+cost > xzMaxInFlight {
			return
		}
		x.next++
		x.inFlight += cost
		var buf []byte
		select {
		case buf = <-x.free:
		default:
		}
		ch := make(chan xzDecoded, 1)
		x.pending = append(x.pending, ch)
		x.costs = append(x.costs, cost)
		go func() {
			data, err := decodeXZBlock(x.ra, b, x.st.check, buf)
			ch <- xzDecoded{data, err}
		}()
	}
}

func (x *xzParallelReader) Read(p []byte) (int, error) {
	for len(x.cur) == 0 {
		if x.err != nil {
			return 0, x.err
		}
		if x.curBuf != nil {
			select {
			case x.free <- x.curBuf[:0]:
			default:
			}
			x.curBuf = nil
			x.inFlight -= x.curCost
		}
		x.fill()
		if len(x.pending) == 0 {
			x.err = io.EOF
			return 0, io.EOF
		}
		d := <-x.pending[0]
		x.pending, x.curCost, x.costs = x.pending[1:], x.costs[0], x.costs[1:]
		if d.err != nil {
			x.err = d.err
			return 0, d.err
		}
		x.cur, x.curBuf = d.data, d.data
		x.fill()
	}
	n := copy(p, x.cur)
	x.cur = x.cur[n:]
	return n, nil
}

// Close waits for the blocks being decoded, so no decoder outlives the reader.
func (x *xzParallelReader) Close() error {
	for _, ch := range x.pending {
		<-ch
	}
	x.pending = nil
	if x.err == nil {
		x.err = errors.New("xz: read after Close")
	}
	return nil
}

// xzDecodeDict is the dictionary decoding b needs. A block starts with a dictionary reset, so
// no match reaches beyond its own content: a dictionary larger than the block would only cost
// memory.
func xzDecodeDict(b xzBlock) int { return max(lzma.MinDictCap, min(b.dictCap, int(b.size)+4096)) }

// decodeXZBlock decodes block b into buf (grown as needed) and verifies its size and check.
func decodeXZBlock(ra io.ReaderAt, b xzBlock, check byte, buf []byte) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("xz block at offset %d: %w", b.off, err)
	}
	data := b.off + b.headerLen
	zr, err := lzma.Reader2Config{DictCap: xzDecodeDict(b)}.NewReader2(bufio.NewReaderSize(io.NewSectionReader(ra, data, b.compressed), 64<<10))
	if err != nil {
		return fail(err)
	}
	if int64(cap(buf)) < b.size {
		buf = make([]byte, b.size)
	}
	out := buf[:b.size]
	if _, err := io.ReadFull(zr, out); err != nil {
		return fail(fmt.Errorf("decoding: %w", truncated(err)))
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		return fail(errors.New("the LZMA2 data does not end where the index says (end marker missing or sizes wrong)"))
	}
	cs := xzCheckSize(check)
	want := make([]byte, cs)
	if _, err := ra.ReadAt(want, data+b.compressed+pad4(b.compressed)); err != nil {
		return fail(fmt.Errorf("check: %w", truncated(err)))
	}
	var h hash.Hash
	switch check {
	case xzCheckNone:
		return out, nil
	case xzCheckCRC32:
		h = crc32.NewIEEE()
	case xzCheckCRC64:
		h = crc64.New(crc64.MakeTable(crc64.ECMA))
	case xzCheckSHA256:
		h = sha256.New()
	default:
		return fail(fmt.Errorf("check type %#x not supported", check))
	}
	h.Write(out)
	got := h.Sum(nil)
	if check != xzCheckSHA256 { // CRCs are stored little-endian, hash.Hash gives big-endian
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	if !bytes.Equal(got, want) {
		return fail(errors.New("check mismatch: the data is corrupt"))
	}
	return out, nil
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
