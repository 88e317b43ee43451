package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// Load keeps the decompressed streams: every read gives what Open's reads give, for every
// compression, with an uncompressed early segment in front, and a truncated image still fails
// with the segment and offset named.
func TestLoadEqualsOpen(t *testing.T) {
	files := testFiles(t)
	for _, f := range []compression.Format{compression.None, compression.Gzip, compression.Zstd, compression.XZ, compression.LZ4} {
		t.Run(string(f), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "initrd.img")
			w := Writer{Compression: f, Early: []File{Regular("kernel/x86/microcode/AuthenticAMD.bin", 0o644, []byte("ucode"))}}
			if err := w.WriteFile(img, files); err != nil {
				t.Fatal(err)
			}
			a, err := Open(img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := Open(img, Options{Keep: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var names []string
			for _, e := range a.Entries() {
				if e.IsRegular() {
					names = append(names, e.Name)
				}
			}
			ra, err := a.ReadFiles(names...)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.ReadFiles(names...)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if !bytes.Equal(ra[n], rb[n]) {
					t.Fatalf("%s differs between Open and Load", n)
				}
			}
			walk := func(im *Image) []byte {
				var out bytes.Buffer
				if err := im.Walk(func(e Entry, r io.Reader) error {
					out.WriteString(e.Name + "\n")
					if r != nil {
						_, err := io.Copy(&out, r)
						return err
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				return out.Bytes()
			}
			if !bytes.Equal(walk(a), walk(b)) {
				t.Fatal("Walk differs between Open and Load")
			}
			// WalkBodies gives, without decompressing again, what ReadFiles gives.
			bodies := 0
			if err := b.WalkBodies(func(e Entry, body []byte) error {
				if want, ok := rb[e.Name]; ok && e.HardlinkTo == "" {
					bodies++
					if !bytes.Equal(body, want) {
						return fmt.Errorf("WalkBodies: %s: %d bytes, ReadFiles %d", e.Name, len(body), len(want))
					}
				}
				return nil
			}); err != nil || bodies == 0 {
				t.Fatalf("WalkBodies: %v (%d bodies)", err, bodies)
			}
			if f != compression.None {
				if err := a.WalkBodies(func(Entry, []byte) error { return nil }); err == nil {
					t.Fatal("WalkBodies on a compressed image opened without Load: no error")
				}
			}
			raw, _ := os.ReadFile(img)
			os.WriteFile(img, raw[:len(raw)*2/3], 0o600)
			var fe *FormatError
			if _, err := Open(img, Options{Keep: true}); !errors.As(err, &fe) {
				t.Fatalf("truncated image: %v", err)
			} else {
				t.Log(err)
			}
		})
	}
}
