package compression

import (
	"io"
	"runtime"
)

// parallelWriter cuts what is written into chunks of size bytes, has encode compress them on
// every core (as many in flight as cores, so memory stays bounded) and writes the results in
// order after head. It is the frame of the xz and gzip writers, whose formats let pieces
// compressed apart join into one stream; the output does not depend on the number of cores.
type parallelWriter struct {
	w    io.Writer
	size int
	head []byte // written before the first chunk
	// encode compresses one chunk; prev is the chunk before it (nil for the first; gzip
	// primes its dictionary with it) and final marks the last one.
	encode func(chunk, prev []byte, final bool) ([]byte, error)
	// written, if set, is told each encoded chunk and its input size once written, in order.
	written func(encoded []byte, n int)

	cur, prev []byte
	pending   []chan encodedChunk
	started   bool
	err       error
}

type encodedChunk struct {
	data []byte
	n    int
	err  error
}

func (c *parallelWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		if c.cur == nil {
			c.cur = make([]byte, 0, c.size)
		}
		k := min(len(p), c.size-len(c.cur))
		c.cur = append(c.cur, p[:k]...)
		p = p[k:]
		if len(c.cur) == c.size {
			c.submit(false)
		}
	}
	if c.err != nil {
		return 0, c.err
	}
	return n, nil
}

// submit starts compressing the current chunk, first writing out the oldest one when as many
// chunks as cores are in flight.
func (c *parallelWriter) submit(final bool) {
	chunk, prev := c.cur, c.prev
	c.prev, c.cur = chunk, nil
	for len(c.pending) >= max(2, runtime.GOMAXPROCS(0)) && c.err == nil {
		c.writeOldest()
	}
	ch := make(chan encodedChunk, 1)
	c.pending = append(c.pending, ch)
	go func() {
		out, err := c.encode(chunk, prev, final)
		ch <- encodedChunk{out, len(chunk), err}
	}()
}

func (c *parallelWriter) writeOldest() {
	e := <-c.pending[0]
	c.pending = c.pending[1:]
	if c.err != nil {
		return
	}
	if c.err = e.err; c.err != nil {
		return
	}
	if c.writeHead(); c.err != nil {
		return
	}
	if _, c.err = c.w.Write(e.data); c.err == nil && c.written != nil {
		c.written(e.data, e.n)
	}
}

func (c *parallelWriter) writeHead() {
	if !c.started {
		c.started = true
		_, c.err = c.w.Write(c.head)
	}
}

// end compresses what is left as the final chunk (also when nothing is left, if always) and
// writes everything out, head included; the caller writes its trailer next.
func (c *parallelWriter) end(always bool) error {
	if len(c.cur) > 0 || always {
		c.submit(true)
	}
	for len(c.pending) > 0 {
		c.writeOldest()
	}
	if c.err == nil {
		c.writeHead()
	}
	return c.err
}
