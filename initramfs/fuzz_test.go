package initramfs

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// FuzzRead parses arbitrary bytes as an image and uses every reading method: errors are
// fine, panics and hangs are not. Of an image that parses, Rewrite's Decide sees each regular
// file record with a body as Options.Visit saw it, at the same Pos.
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
		visited := map[Pos]Entry{}
		visit := func(e Entry, _ io.Reader) error { visited[e.Pos] = e; return nil }
		im, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz.img", Options{Visit: visit})
		if err != nil {
			if im != nil {
				t.Fatal("image and error")
			}
			return
		}
		exercise(im)
		_ = Rewrite(bytes.NewReader(data), int64(len(data)), "fuzz.img", io.Discard, Edit{Decide: func(e Entry) ([]byte, bool, bool, error) {
			if v, ok := visited[e.Pos]; e.IsRegular() && e.Size > 0 && (!ok || v != e) {
				t.Errorf("Decide got %+v, Visit %+v (%v)", e, v, ok)
				return nil, false, false, errors.New("mismatch")
			}
			return nil, false, false, nil
		}})
	})
}
