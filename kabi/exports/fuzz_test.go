package exports

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"testing"
)

// FuzzDecode feeds arbitrary files to the image parser (boot header, payload location, every
// decompressor, ELF and raw table readers): an error or an image, never a panic or a hang.
func FuzzDecode(f *testing.F) {
	elf, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		f.Fatal(err)
	}
	elf = elf[:min(len(elf), 4096)]
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(elf)
	w.Close()
	f.Add(bzImage(withSize(gz.Bytes(), len(elf))))
	cmd := exec.Command("xz", "-c", "--check=crc32", "--x86", "--lzma2=dict=64KiB")
	cmd.Stdin = bytes.NewReader(elf)
	if xz, err := cmd.Output(); err == nil {
		f.Add(bzImage(withSize(xz, len(elf))))
	}
	arm := make([]byte, 256)
	copy(arm[0x38:], arm64Magic)
	f.Add(arm)
	f.Add(elf)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data)
		if (img == nil) == (err == nil) {
			t.Fatalf("Decode: image %v with error %v", img != nil, err)
		}
		if img != nil {
			vmlinuxTables(img)
		}
	})
}
