package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// earlyCpio is an uncompressed early segment like dracut's early microcode cpio; lsinitrd
// recognises it by its early_cpio file.
func earlyCpio(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := Writer{Compression: compression.None}
	err := w.Encode(&buf, []File{
		Regular("early_cpio", 0o644, []byte("1\n")),
		Regular("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("fake microcode\n")),
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDracutImages lists images built by the real dracut and compares the result with
// lsinitrd: the file list and the content of a few files.
func TestDracutImages(t *testing.T) {
	testkit.Slow(t, "builds seven images with the host's dracut")
	variants := []struct {
		name  string
		args  []string
		comp  compression.Format
		early bool
	}{
		{"none", []string{"--no-compress"}, compression.None, false},
		{"gzip", []string{"--gzip"}, compression.Gzip, false},
		{"zstd", []string{"--zstd"}, compression.Zstd, false},
		{"xz", []string{"--xz"}, compression.XZ, false},
		{"early+zstd", []string{"--zstd"}, compression.Zstd, true},
		{"early+none", []string{"--no-compress"}, compression.None, true},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			img := dracutImage(t, dir, v.args...)
			if v.early {
				main, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(img, append(earlyCpio(t), main...), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			im, err := Open(img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()

			last := im.Segments[len(im.Segments)-1]
			if last.Compression != v.comp {
				t.Errorf("main segment compression %s, want %s", last.Compression, v.comp)
			}
			wantSegs := 1
			if v.early {
				wantSegs = 2
				if im.Segments[0].Compression != compression.None || im.Segments[0].Offset != 0 {
					t.Errorf("early segment: %+v", im.Segments[0])
				}
			}
			if len(im.Segments) != wantSegs {
				t.Fatalf("%d segments, want %d", len(im.Segments), wantSegs)
			}
			if end := last.Offset + last.Length; end > im.Size {
				t.Errorf("last segment ends at %d beyond the file (%d)", end, im.Size)
			}
			if len(im.Skipped) != 0 {
				t.Errorf("skipped entries: %+v", im.Skipped)
			}

			var ours []string
			for _, e := range im.Entries() {
				ours = append(ours, e.Name)
			}
			theirs := lsinitrdNames(t, img)
			if a, b := diffLists(ours, theirs); len(a)+len(b) > 0 {
				t.Errorf("listing differs from lsinitrd: only ours %q, only lsinitrd %q", a, b)
			}
			if len(ours) < 100 {
				t.Errorf("only %d entries", len(ours))
			}

			// Content: a few files against lsinitrd -f, and every regular file read in one pass.
			var regular []string
			for _, e := range im.Entries() {
				if e.IsRegular() {
					regular = append(regular, e.Name)
				}
			}
			all, err := im.ReadFiles(regular...)
			if err != nil {
				t.Fatal(err)
			}
			checked, unpackedFiles := 0, 0
			for _, name := range []string{"init", "etc/passwd", "etc/group", "usr/lib/initrd-release", "etc/ld.so.cache", "usr/bin/bash"} {
				e, ok := im.Lookup(name)
				if !ok || !e.IsRegular() {
					continue
				}
				want := run(t, nil, "lsinitrd", "-f", name, img)
				got, err := im.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || !bytes.Equal(all[name], want) {
					t.Errorf("%s: %d bytes, lsinitrd -f gives %d", name, len(got), len(want))
				}
				checked++
			}
			if checked < 4 {
				t.Errorf("only %d files compared with lsinitrd -f", checked)
			}
			// Every file against lsinitrd --unpack (which unpacks the main image, not the early cpio).
			unpacked := filepath.Join(dir, "unpacked")
			if err := os.Mkdir(unpacked, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("lsinitrd", "--unpack", img)
			cmd.Dir = unpacked
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("lsinitrd --unpack: %v\n%s", err, out)
			}
			for _, e := range im.Entries() {
				if e.Pos.SegmentOffset != im.Segments[len(im.Segments)-1].Offset || e.Name == "." {
					continue
				}
				p := filepath.Join(unpacked, e.Name)
				switch {
				case e.IsRegular():
					b, err := os.ReadFile(p)
					if err != nil || !bytes.Equal(b, all[e.Name]) {
						t.Errorf("%s: content differs from lsinitrd --unpack (%v)", e.Name, err)
					}
					unpackedFiles++
				case e.IsSymlink():
					if target, err := os.Readlink(p); err != nil || target != e.LinkTarget {
						t.Errorf("%s: symlink %q, lsinitrd --unpack %q (%v)", e.Name, e.LinkTarget, target, err)
					}
					unpackedFiles++
				case e.IsDir():
					if st, err := os.Lstat(p); err != nil || !st.IsDir() {
						t.Errorf("%s: not a directory after lsinitrd --unpack (%v)", e.Name, err)
					}
					unpackedFiles++
				}
			}
			// Symlinks are followed inside the image: etc/os-release -> initrd-release -> ../usr/lib/initrd-release.
			if got, err := im.ReadFile("etc/os-release"); err != nil || !bytes.Equal(got, all["usr/lib/initrd-release"]) {
				t.Errorf("etc/os-release through symlinks: %q, %v", got, err)
			}
			if v.early {
				if got, err := im.ReadFile("kernel/x86/microcode/GenuineIntel.bin"); err != nil || string(got) != "fake microcode\n" {
					t.Errorf("early file: %q, %v", got, err)
				}
			}
			// Walk sees every record once, bodies equal to ReadFiles'.
			records, bodies := 0, 0
			err = im.Walk(func(e Entry, r io.Reader) error {
				records++
				if r == nil {
					return nil
				}
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				bodies++
				if e.HardlinkTo == "" && e.Pos.SegmentOffset == im.Segments[len(im.Segments)-1].Offset && !bytes.Equal(b, all[e.Name]) {
					if cur, _ := im.Lookup(e.Name); cur.Pos.SegmentOffset == e.Pos.SegmentOffset {
						t.Errorf("Walk body of %s differs", e.Name)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, s := range im.Segments {
				total += len(s.Entries)
			}
			if records != total {
				t.Errorf("Walk saw %d records, segments hold %d", records, total)
			}
			t.Logf("%s: %d segments, %d entries (= lsinitrd), %d regular files read, %d compared with lsinitrd -f, %d entries with lsinitrd --unpack, %d bytes", v.name, len(im.Segments), len(ours), len(all), checked, unpackedFiles, im.Size)
		})
	}
}
