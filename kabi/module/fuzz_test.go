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
	// Every file directly in testdata/elf; src/ (the fixtures' C source) is no seed.
	seeds, err := os.ReadDir(filepath.Join("..", "..", "testdata", "elf"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range seeds {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "elf", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 1<<20 {
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
