package initramfs

import "io"

// chunkSize is the unit of a chunks store: big enough that a module rarely spans two, small
// enough that the last one wastes little.
const chunkSize = 4 << 20

// chunks holds a decompressed stream in fixed-size pieces. A single growing buffer would copy
// and zero the whole stream at every doubling (hundreds of MB for a full dracut image) and
// hold up the garbage collector in long non-preemptible clears; appending chunks does neither.
type chunks struct {
	bufs [][]byte
	size int64
}

func (c *chunks) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(c.bufs) == 0 || len(c.bufs[len(c.bufs)-1]) == chunkSize {
			c.bufs = append(c.bufs, make([]byte, 0, chunkSize))
		}
		last := &c.bufs[len(c.bufs)-1]
		k := copy((*last)[len(*last):chunkSize], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
	}
	c.size += int64(n)
	return n, nil
}

// ReadAt reads from the stream as stored so far.
func (c *chunks) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := 0
	for n < len(p) && off < c.size {
		b := c.bufs[off/chunkSize][off%chunkSize:]
		k := copy(p[n:], b)
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// slice returns n bytes at off: the stored bytes themselves when they lie in one chunk (the
// usual case for a module), else a copy.
func (c *chunks) slice(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > c.size {
		return nil, io.ErrUnexpectedEOF
	}
	if n == 0 {
		return []byte{}, nil
	}
	if i := off / chunkSize; (off+n-1)/chunkSize == i {
		b := c.bufs[i][off%chunkSize : off%chunkSize+n]
		return b[:n:n], nil
	}
	b := make([]byte, n)
	_, err := c.ReadAt(b, off)
	return b, err
}
