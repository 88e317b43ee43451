package initramfs

import (
	"bytes"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// FuzzRead parses arbitrary bytes as an image and uses every reading method: errors are
// fine, panics and hangs are not.
func FuzzRead(f *testing.F) {
	files := []File{
		Regular("init", 0o755, []byte("#!/bin/sh\n")),
		Regular("hl/a", 0o644, []byte("shared")),
		Hardlink("hl/b", "hl/a"),
		Symlink("lib", "usr/lib"),
		Regular("usr/lib/modules/6.1.0-1-test/kernel/a.ko", 0o644, []byte("ko")),
		Regular("usr/lib/modules/6.1.0-1-test/modules.dep", 0o644, []byte("kernel/a.ko:\n")),
		CharDev("dev/console", 0o600, 5, 1),
	}
	early := []File{Regular("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("u"))}
	for _, c := range allFormats {
		var buf bytes.Buffer
		if err := (Writer{Compression: c, Early: early}).Encode(&buf, files); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		buf.Reset()
		if err := (Writer{Compression: c}).Encode(&buf, files[:2]); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	// A checksummed (070702) archive with GNU-style hard links (data on the last name).
	crc := encode(f, compression.None, files[:1])
	crc = bytes.Replace(crc, []byte("070701"), []byte("070702"), 1)
	f.Add(crc)
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz.img", Options{})
		if err != nil {
			if im != nil {
				t.Fatal("image and error")
			}
			return
		}
		exercise(im)
	})
}
