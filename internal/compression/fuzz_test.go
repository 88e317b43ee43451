package compression

import (
	"bytes"
	"testing"
)

// FuzzDecode: arbitrary bytes, including truncated and corrupted streams of each format, give
// data or an error, never a panic or a hang.
func FuzzDecode(f *testing.F) {
	payload := []byte("kernel module payload \x7fELF repeated repeated repeated")
	for _, format := range []Format{Gzip, Zstd, XZ, LZ4} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, format)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(payload)
		w.Close()
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()/2])
	}
	f.Add(payload)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, format, err := Decode(data)
		if err == nil && format == None && !bytes.Equal(out, data) {
			t.Fatal("uncompressed input changed by Decode")
		}
	})
}
