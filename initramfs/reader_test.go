package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

func encode(t testing.TB, f compression.Format, files []File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := (Writer{Compression: f}).Encode(&buf, files); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parseBytes(t testing.TB, data []byte) *Image {
	t.Helper()
	im, err := Read(bytes.NewReader(data), int64(len(data)), "initrd.img", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// gnuCpio archives dir with GNU cpio in format (newc or crc), as dracut does.
func gnuCpio(t testing.TB, dir, format string) []byte {
	t.Helper()
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio -o --quiet -H "+format)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGNUHardlinks: GNU cpio puts a hard link group's data on its last name; both 070701 and
// 070702 (checksummed) archives are read, and a corrupted checksummed body is an error.
func TestGNUHardlinks(t *testing.T) {
	needTools(t, "cpio")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("hard linked content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"newc", "crc"} {
		data := gnuCpio(t, dir, format)
		im := parseBytes(t, data)
		raw := im.Segments[0].Entries
		var sizes []string
		for _, e := range raw {
			sizes = append(sizes, fmt.Sprintf("%s:%d", e.Name, e.node.seg))
		}
		for _, n := range []string{"a", "b"} {
			b, err := im.ReadFile(n)
			if err != nil || string(b) != "hard linked content" {
				t.Errorf("%s %s: %q %v (records %v)", format, n, b, err, sizes)
			}
		}
		if e, _ := im.Lookup("b"); e.HardlinkTo != "a" || e.Size != 19 {
			t.Errorf("%s: b = %+v", format, e)
		}
		if e, _ := im.Lookup("a"); e.Size != 19 {
			t.Errorf("%s: a size %d (GNU writes it with size 0)", format, e.Size)
		}
		// The group's first name carries the content in WalkBodies, as the kernel leaves it.
		if err := im.WalkBodies(func(e Entry, body []byte) error {
			if want := map[string]string{"a": "hard linked content"}[e.Name]; e.Name == "a" && string(body) != want || e.Name == "b" && body != nil {
				return fmt.Errorf("%s: %q", e.Name, body)
			}
			return nil
		}); err != nil {
			t.Errorf("%s: WalkBodies: %v", format, err)
		}
		if format == "crc" {
			i := bytes.Index(data, []byte("hard linked content"))
			bad := bytes.Clone(data)
			bad[i] ^= 1
			_, err := Read(bytes.NewReader(bad), int64(len(bad)), "crc.img", Options{})
			if err == nil || !strings.Contains(err.Error(), "bad data checksum") || !strings.Contains(err.Error(), `entry "b"`) {
				t.Errorf("corrupted crc archive: %v", err)
			}
		}
	}
}

// TestSegmentSequence: every compression in one image, with NUL padding between segments;
// later segments override earlier ones as in the kernel.
func TestSegmentSequence(t *testing.T) {
	needTools(t, "bzip2")
	seg := func(f compression.Format, n int) []byte {
		files := []File{
			Regular("same", 0o644, []byte(fmt.Sprintf("segment %d", n))),
			Regular(fmt.Sprintf("only/%d", n), 0o644, []byte(string(f))),
			Symlink("link", fmt.Sprintf("target%d", n)),
			Dir("d", 0o700+uint32(n)),
		}
		if f == compression.Bzip2 {
			return run(t, encode(t, compression.None, files), "bzip2", "-c")
		}
		return encode(t, f, files)
	}
	order := []compression.Format{compression.None, compression.Gzip, compression.Zstd, compression.None, compression.XZ, compression.Bzip2, compression.LZ4}
	var img []byte
	for i, f := range order {
		img = append(img, seg(f, i)...)
		if f != compression.LZ4 {
			img = append(img, make([]byte, 4+(4-len(img)%4)%4)...) // kernel-style NUL padding
		}
	}
	im := parseBytes(t, img)
	if len(im.Segments) != len(order) {
		t.Fatalf("%d segments, want %d", len(im.Segments), len(order))
	}
	for i, f := range order {
		s := im.Segments[i]
		if s.Compression != f || s.Archives != 1 || len(s.Entries) != 5 {
			t.Errorf("segment %d: %s, %d archives, %d entries; want %s", i+1, s.Compression, s.Archives, len(s.Entries), f)
		}
		if b, err := im.ReadFile(fmt.Sprintf("only/%d", i)); err != nil || string(b) != string(f) {
			t.Errorf("only/%d: %q %v", i, b, err)
		}
	}
	if b, _ := im.ReadFile("same"); string(b) != fmt.Sprintf("segment %d", len(order)-1) {
		t.Errorf("same = %q, want the last segment's", b)
	}
	// The kernel's symlink() fails on an existing symlink: the first target stays.
	if e, _ := im.Lookup("link"); e.LinkTarget != "target0" {
		t.Errorf("link -> %q, want target0", e.LinkTarget)
	}
	// mkdir fails on the existing directory, chmod applies: the last mode wins.
	if e, _ := im.Lookup("d"); e.Mode&0o777 != 0o700+uint32(len(order)-1) {
		t.Errorf("d mode %#o", e.Mode)
	}
}

// TestMergeRules: what the kernel does with missing parents, and files over directories.
func TestMergeRules(t *testing.T) {
	// A raw archive without parents, written by hand with the u-root writer through Encode
	// cannot be made (Encode adds parents), so concatenate two of our archives instead.
	first := encode(t, compression.None, []File{Regular("x/y", 0o644, []byte("y")), Dir("e", 0o755)})
	second := encode(t, compression.Gzip, []File{Regular("x", 0o644, []byte("file over non-empty dir")), Regular("e", 0o644, []byte("file over empty dir"))})
	im := parseBytes(t, append(first, second...))
	if e, _ := im.Lookup("x"); !e.IsDir() {
		t.Errorf("x replaced a non-empty directory: %+v", e)
	}
	if len(im.Skipped) != 1 || im.Skipped[0].Entry.Name != "x" || im.Skipped[0].Reason != "directory not empty" {
		t.Errorf("skipped %+v", im.Skipped)
	}
	if b, err := im.ReadFile("e"); err != nil || string(b) != "file over empty dir" {
		t.Errorf("e: %q %v", b, err)
	}
}

// TestCorruptImages truncates images of every compression at many offsets and flips bits:
// always an error naming the file (never a panic), and for truncations the segment.
func TestCorruptImages(t *testing.T) {
	files := testFiles(t)
	for _, f := range allFormats {
		w := Writer{Compression: f, Early: []File{Regular("early", 0o644, []byte("e"))}}
		var buf bytes.Buffer
		if err := w.Encode(&buf, files); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		step := max(1, len(data)/250)
		if testing.Short() {
			step *= 5
		}
		earlyEnd := int(parseBytes(t, data).Segments[1].Offset)
		cuts := 0
		for n := 1; n < len(data); n += step {
			if n == earlyEnd { // just the early segment: a valid image
				continue
			}
			cuts++
			_, err := Read(bytes.NewReader(data[:n]), int64(n), "initrd.img", Options{})
			if err == nil {
				t.Errorf("%s: no error when truncated to %d of %d bytes", f, n, len(data))
				continue
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "initrd.img: segment ") {
				t.Errorf("%s: truncated to %d: error %q does not name the file and segment", f, n, err)
			}
		}
		// The last bytes one by one: the end of the compressed stream is checked.
		for n := max(1, len(data)-16); n < len(data); n++ {
			if _, err := Read(bytes.NewReader(data[:n]), int64(n), "initrd.img", Options{}); err == nil {
				t.Errorf("%s: no error when truncated to %d of %d bytes", f, n, len(data))
			}
		}
		flips, flipErrs := 0, 0
		for i := 0; i < len(data); i += max(1, len(data)/150) {
			bad := bytes.Clone(data)
			bad[i] ^= 0x10
			flips++
			im, err := Read(bytes.NewReader(bad), int64(len(bad)), "initrd.img", Options{})
			if err != nil {
				flipErrs++
				if !strings.HasPrefix(err.Error(), "initrd.img: ") {
					t.Errorf("%s: flip at %d: %q", f, i, err)
				}
				continue
			}
			exercise(im)
		}
		t.Logf("%s: %d bytes, %d truncations, %d bit flips (%d errors)", f, len(data), cuts+16, flips, flipErrs)
	}
}

// exercise calls every reading method, for corrupt and fuzzed images.
func exercise(im *Image) {
	var names []string
	for _, e := range im.Entries() {
		if e.IsRegular() {
			names = append(names, e.Name)
		}
		_, _ = im.Stat(e.Name)
	}
	_, _ = im.ReadFiles(names...)
	_ = im.Walk(func(e Entry, r io.Reader) error {
		if r != nil {
			var b [512]byte
			for {
				if _, err := r.Read(b[:]); err != nil {
					break
				}
			}
		}
		return nil
	})
}

func TestUnknownCompression(t *testing.T) {
	good := encode(t, compression.None, []File{Regular("a", 0o644, nil)})
	cases := map[string]struct {
		tail []byte
		want string
	}{
		"garbage": {[]byte("ABCDEFGH"), "segment 2 at offset " + fmt.Sprint(len(good)) + ": unknown compression: magic 41 42 43 44 45 46 47 48"},
		"lzma":    {[]byte{0x5d, 0, 0, 0x80, 0}, "compression lzma is not supported (magic 5d 00 00 80 00)"},
		"lz4frame": {[]byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0, 0, 0, 0},
			"segment 2 (lz4) at offset " + fmt.Sprint(len(good)) + ": lz4 frame format"},
		"unaligned cpio": {append([]byte{0, 0}, good...), "magic 30 37 30 37 30 31"},
		"odc":            {[]byte("0707070000000000000000000000000000000000000000000000000000000000000000000000a\x00"), "odc cpio"},
	}
	for name, c := range cases {
		img := append(bytes.Clone(good), c.tail...)
		_, err := Read(bytes.NewReader(img), int64(len(img)), "initrd.img", Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "initrd.img: ") {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// TestTruncatedEntryMessage: the error names file, segment, compression, offset and entry.
func TestTruncatedEntryMessage(t *testing.T) {
	early := encode(t, compression.None, []File{Regular("e", 0o644, []byte("e"))})
	var main bytes.Buffer
	cw, _ := compression.NewWriter(&main, compression.Zstd)
	full := encode(t, compression.None, []File{Regular("usr/lib/x", 0o644, bytes.Repeat([]byte("x"), 5000))})
	cw.Write(full[:len(full)-3000]) // a complete zstd frame holding a cut cpio
	cw.Close()
	img := append(bytes.Clone(early), main.Bytes()...)
	_, err := Read(bytes.NewReader(img), int64(len(img)), "initrd.img", Options{})
	want := fmt.Sprintf(`initrd.img: segment 2 (zstd) at offset %d: entry "usr/lib/x" at cpio offset `, len(early))
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "truncated: unexpected EOF") {
		t.Errorf("got %v\nwant %s…truncated: unexpected EOF", err, want)
	}
}
