package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// byName is an Edit.Decide that replaces the records named in replace and drops those named
// in drop.
func byName(replace map[string][]byte, drop ...string) func(Entry) ([]byte, bool, bool, error) {
	return func(rec Entry) ([]byte, bool, bool, error) {
		data, ok := replace[rec.Name]
		return data, ok, slices.Contains(drop, rec.Name), nil
	}
}

// TestRewrite: in every compression, with an early cpio in front, Rewrite replaces a file and
// a symlink by new content, drops a file, appends late files before the last trailer, keeps
// every other record (hard links included) as it was, copies the early cpio byte for byte,
// and writes what both our reader and GNU cpio read back.
func TestRewrite(t *testing.T) {
	needTools(t, "cpio")
	mdir := "usr/lib/modules/" + testKver + "/"
	for _, f := range allFormats {
		t.Run(string(f), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "initrd.img")
			early := []File{Regular("kernel/x86/microcode/AuthenticAMD.bin", 0o644, []byte("ucode"))}
			if err := (Writer{Compression: f, Early: early, MTime: 7}).WriteFile(img, testFiles(t)); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(img)
			im, err := Open(img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ed := Edit{
				Decide: byName(map[string][]byte{mdir + "kernel/fs/a.ko": []byte("\x7fELF new a"), mdir + "weak-updates/e.ko": []byte("\x7fELF e")},
					mdir+"modules.dep", "etc/passwd"),
				Late: func() ([]File, error) {
					return []File{Regular(mdir+"modules.dep", 0o644, []byte("new dep\n")), Regular(mdir+"modules.alias", 0o644, []byte("alias\n"))}, nil
				},
			}
			if err := RewriteFile(img, ed); err != nil {
				t.Fatal(err)
			}
			im.Close()
			after, _ := os.ReadFile(img)
			if earlyLen := im.Segments[len(im.Segments)-1].Offset; !bytes.Equal(before[:earlyLen], after[:earlyLen]) {
				t.Fatal("the early cpio was not copied byte for byte")
			}
			re, err := Open(img, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer re.Close()
			if got := re.Segments[len(re.Segments)-1].Compression; got != f {
				t.Fatalf("compression %s, want %s", got, f)
			}
			want := map[string]string{
				mdir + "kernel/fs/a.ko": "\x7fELF new a", mdir + "weak-updates/e.ko": "\x7fELF e",
				mdir + "modules.dep": "new dep\n", mdir + "modules.alias": "alias\n",
				"hl/a": "shared by three names\n", "hl/c": "shared by three names\n", "init": "#!/bin/sh\nexec /bin/sh\n",
			}
			for name, content := range want {
				if b, err := re.ReadFile(name); err != nil || string(b) != content {
					t.Errorf("%s: %q %v, want %q", name, b, err, content)
				}
			}
			if e, ok := re.Lookup(mdir + "weak-updates/e.ko"); !ok || !e.IsRegular() {
				t.Errorf("the replaced symlink is not a regular file: %+v", e)
			}
			if _, ok := re.Lookup("etc/passwd"); ok {
				t.Error("etc/passwd was not dropped")
			}
			if e, _ := re.Lookup("dev/big-minor"); e.Rmajor != 240 || e.Rminor != 70000 {
				t.Errorf("device numbers changed: %+v", e)
			}
			// GNU cpio, an independent reader: the late files come last, before the trailer.
			seg := re.Segments[len(re.Segments)-1]
			plain := after[seg.Offset : seg.Offset+seg.Length]
			if f != compression.None {
				plain = cliDecompress(t, f, plain)
			}
			list := strings.Fields(string(run(t, plain, "cpio", "-t", "--quiet")))
			if n := len(list); n < 2 || list[n-2] != mdir+"modules.alias" || list[n-1] != mdir+"modules.dep" {
				t.Errorf("cpio -t does not end with the late files: %v", list[max(0, n-4):])
			}
		})
	}
}

// TestRewriteRefusesHardlinkEdits: replacing one name of a hard-link group record by record
// would leave the others with the old content: Rewrite refuses, and the image is untouched.
func TestRewriteRefusesHardlinkEdits(t *testing.T) {
	img := filepath.Join(t.TempDir(), "initrd.img")
	if err := (Writer{Compression: compression.Gzip}).WriteFile(img, testFiles(t)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img)
	im, err := Open(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if err := RewriteFile(img, Edit{Decide: byName(map[string][]byte{"hl/b": []byte("x")})}); !errors.Is(err, ErrCannotEdit) {
		t.Fatalf("err = %v, want ErrCannotEdit", err)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("a refused rewrite changed the image")
	}
}

// TestRewriteDecide: Decide sees every record of the last segment in order, at the positions
// and with the fields Options.Visit reports for them, symlinks with their targets, and its
// answer is applied; an error from Await abandons the rewrite with the image untouched and no
// temporary file left.
func TestRewriteDecide(t *testing.T) {
	img := filepath.Join(t.TempDir(), "initrd.img")
	early := []File{Regular("kernel/x86/microcode/AuthenticAMD.bin", 0o644, []byte("ucode"))}
	if err := (Writer{Compression: compression.Zstd, Early: early}).WriteFile(img, testFiles(t)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(img)
	mdir := "usr/lib/modules/" + testKver + "/"
	scanned := map[Pos]Entry{}
	im, err := Open(img, Options{Visit: func(e Entry, _ io.Reader) error { scanned[e.Pos] = e; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	last := im.Segments[len(im.Segments)-1]
	im.Close()
	seen, links := 0, 0
	ed := Edit{Decide: func(rec Entry) ([]byte, bool, bool, error) {
		if rec.Pos.SegmentOffset != last.Offset {
			return nil, false, false, fmt.Errorf("Decide got %+v, not in the last segment at %d", rec, last.Offset)
		}
		if rec.IsRegular() && rec.Size > 0 {
			if scanned[rec.Pos] != rec {
				return nil, false, false, fmt.Errorf("Decide got %+v, Visit %+v", rec, scanned[rec.Pos])
			}
			seen++
		}
		if rec.IsSymlink() {
			if want := findEntry(last.Entries, rec.Pos); rec.LinkTarget == "" || rec.LinkTarget != want.LinkTarget {
				return nil, false, false, fmt.Errorf("Decide got symlink %+v, the parse %+v", rec, want)
			}
			links++
		}
		switch rec.Name {
		case mdir + "kernel/fs/a.ko":
			return []byte("decided"), true, false, nil
		case "etc/passwd":
			return nil, false, true, nil
		}
		return nil, false, false, nil
	}}
	if err := RewriteFile(img, ed); err != nil {
		t.Fatal(err)
	}
	if want := len(scanned) - 1; seen != want { // the early segment's microcode is not edited
		t.Fatalf("Decide saw %d of the %d regular records of the last segment", seen, want)
	}
	if links == 0 {
		t.Fatal("Decide saw no symlink")
	}
	im, err = Open(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := im.ReadFile(mdir + "kernel/fs/a.ko"); err != nil || string(b) != "decided" {
		t.Fatalf("replaced by Decide: %q %v", b, err)
	}
	if _, ok := im.Lookup("etc/passwd"); ok {
		t.Fatal("etc/passwd not dropped by Decide")
	}
	im.Close()

	if err := os.WriteFile(img, before, 0o600); err != nil {
		t.Fatal(err)
	}
	abandon := Edit{Await: func() error { return errors.New("nothing to do") }}
	if err := RewriteFile(img, abandon); err == nil || !strings.Contains(err.Error(), "nothing to do") {
		t.Fatalf("Await's error: %v", err)
	}
	if after, _ := os.ReadFile(img); !bytes.Equal(before, after) {
		t.Fatal("an abandoned rewrite changed the image")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(img), ".*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// findEntry returns the entry of es at pos.
func findEntry(es []Entry, pos Pos) Entry {
	for _, e := range es {
		if e.Pos == pos {
			return e
		}
	}
	return Entry{}
}
