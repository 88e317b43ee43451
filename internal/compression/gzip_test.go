package compression

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// The chunked member is read back whole by gzip(1), Go's reader and klauspost's, for sizes
// around the chunk boundaries; it is as small as one stream of the same level, and the same
// on every run.
func TestGzipWriterChunks(t *testing.T) {
	old := gzipChunk
	gzipChunk = 64 << 10
	t.Cleanup(func() { gzipChunk = old })
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 64 << 11, 300 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := testData(n, int64(n))
			stream := encodeInPieces(t, Gzip, data)

			if out, err := realTool(stream, "gzip", "-dc"); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("gzip -dc: %d bytes of %d, %v", len(out), n, err)
			}
			sr, err := stdgzip.NewReader(bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			sr.Multistream(false) // one member, as the kernel reads
			if out, err := io.ReadAll(sr); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("compress/gzip: %d bytes of %d, %v", len(out), n, err)
			}
			kr, err := gzip.NewReader(bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := io.ReadAll(kr); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("klauspost gzip: %d bytes of %d, %v", len(out), n, err)
			}

			var one bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&one, flate.DefaultCompression)
			zw.Write(data)
			zw.Close()
			if len(stream) > one.Len()+one.Len()/100+64 {
				t.Errorf("chunked member %d bytes, one stream %d: more than 1%% larger", len(stream), one.Len())
			}
			if again := encodeInPieces(t, Gzip, data); !bytes.Equal(again, stream) {
				t.Error("a second run gives other bytes")
			}
		})
	}
}
