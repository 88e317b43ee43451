package initramfs

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// TestChunksReadAt: a stream written in uneven pieces reads back at any offset and length,
// across chunk boundaries, as the same bytes, with io.EOF for a read past its end.
func TestChunksReadAt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 2*chunkSize+12345)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	var c chunks
	for p := want; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(chunkSize/3))
		if k, err := c.Write(p[:n]); k != n || err != nil {
			t.Fatalf("Write: %d %v", k, err)
		}
		p = p[n:]
	}
	if c.size != int64(len(want)) || len(c.bufs) != 3 {
		t.Fatalf("size %d in %d chunks, want %d in 3", c.size, len(c.bufs), len(want))
	}
	for _, r := range [][2]int64{{0, 10}, {chunkSize - 3, 7}, {chunkSize - 1, chunkSize + 2}, {0, int64(len(want))}, {int64(len(want)) - 1, 1}} {
		got := make([]byte, r[1])
		if n, err := c.ReadAt(got, r[0]); err != nil || int64(n) != r[1] || !bytes.Equal(got, want[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt(%d, %d): n=%d err=%v equal=%v", r[0], r[1], n, err, bytes.Equal(got, want[r[0]:r[0]+r[1]]))
		}
	}
	if n, err := c.ReadAt(make([]byte, 10), int64(len(want))-4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt past the end: n=%d err=%v, want 4, EOF", n, err)
	}
}
