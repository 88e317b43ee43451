package module

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the module parser: it must return a module or an error,
// never panic (debug/elf panics on some malformed inputs; safeelf turns those into errors).
// The corpus starts from every fixture in testdata/elf, so mutations explore real layouts of
// both byte orders and word sizes.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "elf", "*"))
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil && len(data) < 1<<20 {
			f.Add(data)
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("\x7fELF\x01\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.ko", data)
		if err == nil && m == nil {
			t.Fatal("nil module without an error")
		}
		if err != nil && m != nil {
			t.Fatal("module and error both returned")
		}
	})
}
