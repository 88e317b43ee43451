package initramfs

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	cavalier "github.com/cavaliergopher/cpio"
	"github.com/kabiguard/kabiguard/internal/compression"
)

const testKver = "6.1.0-99-test"

// testFiles returns a tree with every kind of record, and the host file it references.
func testFiles(t testing.TB) []File {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 700<<10) // several zstd blocks, compressible in parts
	for i := range big {
		if i%3 == 0 {
			big[i] = byte(rnd.IntN(256))
		} else {
			big[i] = byte(i / 1024)
		}
	}
	host := filepath.Join(t.TempDir(), "hostfile")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mdir := "usr/lib/modules/" + testKver + "/"
	return []File{
		Regular("init", 0o755, []byte("#!/bin/sh\nexec /bin/sh\n")),
		Regular("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")),
		Regular("etc/empty", 0o600, nil),
		Regular("big.bin", 0o644, big),
		HostFile("etc/from-host", host, 0o640),
		Dir("root", 0o700),
		Regular("hl/a", 0o644, []byte("shared by three names\n")),
		Hardlink("hl/b", "hl/a"),
		Hardlink("hl/c", "hl/a"),
		Symlink("bin", "usr/bin"),
		Symlink("lib", "usr/lib"),
		Regular("usr/bin/sh", 0o755, []byte("not really a shell")),
		Symlink("etc/mtab", "/proc/self/mounts"),
		CharDev("dev/console", 0o600, 5, 1),
		CharDev("dev/null", 0o666, 1, 3),
		CharDev("dev/big-minor", 0o600, 240, 70000),
		BlockDev("dev/sda", 0o660, 8, 0),
		{Name: "run/fifo", Mode: modeFIFO | 0o600},
		Regular(mdir+"kernel/fs/a.ko", 0o644, []byte("\x7fELF a")),
		Regular(mdir+"kernel/fs/b.ko.xz", 0o644, []byte("\xfd7zXZ\x00 b")),
		Regular(mdir+"kernel/drivers/c-d.ko.zst", 0o644, []byte("\x28\xb5\x2f\xfd c")),
		Symlink(mdir+"weak-updates/e.ko", "../../6.1.0-98-test/extra/e.ko"),
		Regular(mdir+"modules.dep", 0o644, []byte("kernel/fs/a.ko:\nkernel/fs/b.ko.xz: kernel/fs/a.ko\nkernel/drivers/c-d.ko.zst: kernel/fs/b.ko.xz kernel/fs/a.ko\nweak-updates/e.ko:\n")),
	}
}

var allFormats = []compression.Format{compression.None, compression.Gzip, compression.Zstd, compression.XZ, compression.LZ4}

// cliDecompress decompresses with the reference CLI tool, after testing the stream with it.
func cliDecompress(t testing.TB, f compression.Format, data []byte) []byte {
	t.Helper()
	switch f {
	case compression.None:
		return data
	case compression.Gzip:
		run(t, data, "gzip", "-t")
		return run(t, data, "gzip", "-dc")
	case compression.Zstd:
		run(t, data, "zstd", "-t", "-q")
		return run(t, data, "zstd", "-dc")
	case compression.XZ:
		run(t, data, "xz", "-t")
		tmp := filepath.Join(t.TempDir(), "s.xz")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if info := string(run(t, nil, "xz", "--robot", "--list", tmp)); !strings.Contains(info, "CRC32") {
			t.Errorf("xz stream check is not CRC32: %s", info)
		}
		return run(t, data, "xz", "-dc")
	case compression.LZ4:
		run(t, data, "lz4", "-t", "-q")
		return run(t, data, "lz4", "-dc")
	}
	t.Fatalf("no CLI for %s", f)
	return nil
}

func TestWriterRoundTrip(t *testing.T) {
	needTools(t, "cpio", "gzip", "zstd", "xz", "lz4")
	files := testFiles(t)
	byName := map[string]File{}
	for _, f := range files {
		byName[normalize(f.Name)] = f
	}
	for _, f := range allFormats {
		for _, early := range []bool{false, true} {
			name := string(f)
			if early {
				name = "early+" + name
			}
			t.Run(name, func(t *testing.T) {
				w := Writer{Compression: f, MTime: 1700000000}
				if early {
					w.Early = []File{Regular("kernel/x86/microcode/GenuineIntel.bin", 0o644, []byte("ucode"))}
				}
				dir := t.TempDir()
				img := filepath.Join(dir, "initrd.img")
				if err := w.WriteFile(img, files); err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				// Reproducible: a second write gives the same bytes.
				img2 := filepath.Join(dir, "again.img")
				if err := w.WriteFile(img2, files); err != nil {
					t.Fatal(err)
				}
				if data2, _ := os.ReadFile(img2); !bytes.Equal(data, data2) {
					t.Fatal("two writes of the same input differ")
				}
				if st, _ := os.Stat(img); st.Mode().Perm() != 0o600 {
					t.Errorf("new image mode %v, want 0600", st.Mode().Perm())
				}

				im, err := Open(img, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer im.Close()
				checkOurReader(t, im, byName, early)

				// Independent readers on the main segment's bytes.
				main := im.Segments[len(im.Segments)-1]
				if early {
					if main.Offset == 0 || len(im.Segments) != 2 {
						t.Fatalf("segments %+v", im.Segments)
					}
					// GNU cpio reads the first archive of the file: the early one.
					if got := strings.Fields(string(run(t, data, "cpio", "-t", "--quiet"))); strings.Join(got, " ") != "kernel kernel/x86 kernel/x86/microcode kernel/x86/microcode/GenuineIntel.bin" {
						t.Errorf("cpio -t of the early segment: %q", got)
					}
				}
				raw := cliDecompress(t, f, data[main.Offset:])
				checkIndependent(t, raw, byName)
			})
		}
	}
}

// checkOurReader compares what our reader returns with the input files.
func checkOurReader(t *testing.T, im *Image, byName map[string]File, early bool) {
	t.Helper()
	if len(im.Skipped) > 0 {
		t.Errorf("skipped: %+v", im.Skipped)
	}
	got := map[string]Entry{}
	for _, e := range im.Entries() {
		got[e.Name] = e
	}
	for name, f := range byName {
		e, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if f.HardlinkTo != "" {
			f.Mode = byName[f.HardlinkTo].Mode
		}
		if e.Mode != f.Mode {
			t.Errorf("%s: mode %#o, want %#o", name, e.Mode, f.Mode)
		}
		if e.MTime != 1700000000 || e.UID != 0 || e.Devmajor != 0 {
			t.Errorf("%s: mtime %d uid %d devmajor %d", name, e.MTime, e.UID, e.Devmajor)
		}
		switch f.Mode & modeType {
		case modeSymlink:
			if e.LinkTarget != f.LinkTarget {
				t.Errorf("%s: target %q, want %q", name, e.LinkTarget, f.LinkTarget)
			}
		case modeChar, modeBlock:
			if e.Rmajor != f.Rmajor || e.Rminor != f.Rminor {
				t.Errorf("%s: %d:%d, want %d:%d", name, e.Rmajor, e.Rminor, f.Rmajor, f.Rminor)
			}
		case modeRegular:
			want := f.Data
			if f.HardlinkTo != "" {
				want = byName[f.HardlinkTo].Data
			}
			if f.Source != "" {
				want, _ = os.ReadFile(f.Source)
			}
			b, err := im.ReadFile(name)
			if err != nil || !bytes.Equal(b, want) || e.Size != int64(len(want)) {
				t.Errorf("%s: %d bytes (size %d), want %d: %v", name, len(b), e.Size, len(want), err)
			}
		}
	}
	// Hard links: one group, first name carries the data, later names point to it.
	a, b, c := got["hl/a"], got["hl/b"], got["hl/c"]
	if a.HardlinkTo != "" || b.HardlinkTo != "hl/a" || c.HardlinkTo != "hl/a" || a.Ino != b.Ino || a.NLink != 3 {
		t.Errorf("hard links: %+v %+v %+v", a, b, c)
	}
	// Parents were added.
	for _, d := range []string{"etc", "hl", "usr", "usr/lib/modules/" + testKver + "/kernel/fs", "dev", "run"} {
		if e, ok := got[d]; !ok || !e.IsDir() || e.Mode&0o777 != 0o755 {
			t.Errorf("parent %s: %+v", d, e)
		}
	}
	if early {
		if b, err := im.ReadFile("kernel/x86/microcode/GenuineIntel.bin"); err != nil || string(b) != "ucode" {
			t.Errorf("early file: %q %v", b, err)
		}
	}
	// Paths through the lib -> usr/lib symlink.
	if b, err := im.ReadFile("lib/modules/" + testKver + "/modules.dep"); err != nil || len(b) == 0 {
		t.Errorf("modules.dep through lib symlink: %v", err)
	}
}

var cpioTVDev = regexp.MustCompile(`^[cb]\S+\s+\d+\s+\S+\s+\S+\s+(\d+),\s+(\d+)\s.*\s(\S+)$`)

// checkIndependent reads a decompressed cpio with cavaliergopher/cpio and GNU cpio.
func checkIndependent(t *testing.T, raw []byte, byName map[string]File) {
	t.Helper()
	// cavaliergopher: names, modes, contents, symlink targets.
	r := cavalier.NewReader(bytes.NewReader(raw))
	seen := map[string]bool{}
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("cavaliergopher: %v", err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("cavaliergopher %s: %v", h.Name, err)
		}
		seen[h.Name] = true
		f, ok := byName[h.Name]
		if !ok {
			continue // an added parent
		}
		if f.HardlinkTo != "" || h.Name == "hl/a" {
			if h.Links != 3 {
				t.Errorf("cavaliergopher %s: %d links", h.Name, h.Links)
			}
			continue
		}
		switch f.Mode & modeType {
		case modeRegular:
			want := f.Data
			if f.Source != "" {
				want, _ = os.ReadFile(f.Source)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("cavaliergopher %s: content differs", h.Name)
			}
		case modeSymlink:
			if h.Linkname != f.LinkTarget {
				t.Errorf("cavaliergopher %s: target %q", h.Name, h.Linkname)
			}
		}
	}
	for name := range byName {
		if !seen[name] {
			t.Errorf("cavaliergopher does not see %s", name)
		}
	}
	// GNU cpio: the same names, sorted as written, and device numbers.
	list := strings.Fields(string(run(t, raw, "cpio", "-t", "--quiet")))
	if !sort.StringsAreSorted(list) || len(list) != len(seen) {
		t.Errorf("cpio -t: %d names (sorted %v), cavaliergopher %d", len(list), sort.StringsAreSorted(list), len(seen))
	}
	devs := 0
	for _, line := range strings.Split(string(run(t, raw, "cpio", "-tv", "--quiet")), "\n") {
		m := cpioTVDev.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := byName[m[3]]
		if want := strings.Join([]string{itoa(f.Rmajor), itoa(f.Rminor)}, ":"); m[1]+":"+m[2] != want {
			t.Errorf("cpio -tv %s: %s:%s, want %s", m[3], m[1], m[2], want)
		}
		devs++
	}
	if devs != 4 {
		t.Errorf("cpio -tv shows %d device nodes, want 4", devs)
	}
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

// TestWriteFileAtomic: a failed write leaves the old image whole and no temporary file.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(img, []byte("old image"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := Writer{Compression: compression.Zstd}
	err := w.WriteFile(img, []File{Regular("a", 0o644, []byte("a")), HostFile("b", filepath.Join(dir, "missing"), 0o644)})
	if err == nil {
		t.Fatal("no error for a missing source")
	}
	if b, _ := os.ReadFile(img); string(b) != "old image" {
		t.Errorf("old image changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	// A successful write replaces it and keeps its mode.
	if err := w.WriteFile(img, []File{Regular("a", 0o644, []byte("a"))}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(img); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want the old 0644", st.Mode().Perm())
	}
	im, err := Open(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if b, err := im.ReadFile("a"); err != nil || string(b) != "a" {
		t.Errorf("a: %q %v", b, err)
	}
}

func TestWriterRejects(t *testing.T) {
	cases := map[string][]File{
		"duplicate":       {Regular("a", 0o644, nil), Regular("/a", 0o644, nil)},
		"dotdot":          {Regular("a/../b", 0o644, nil)},
		"dangling link":   {Hardlink("b", "a")},
		"link to symlink": {Symlink("a", "x"), Hardlink("b", "a")},
		"file as parent":  {Regular("a", 0o644, nil), Regular("a/b", 0o644, nil)},
		"no type":         {{Name: "a", Mode: 0o644}},
		"empty symlink":   {Symlink("a", "")},
	}
	for name, files := range cases {
		if err := (Writer{}).Encode(io.Discard, files); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Writer{Compression: compression.Bzip2}).Encode(io.Discard, nil); err == nil {
		t.Error("bzip2 writing accepted")
	}
}

// TestFilesFromDir: a host tree with a hard link and a symlink survives a write and a read.
func TestFilesFromDir(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("tool"), 0o755))
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	files, err := FilesFromDir(root)
	must(err)
	var buf bytes.Buffer
	must(Writer{Compression: compression.Gzip}.Encode(&buf, files))
	im, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "mem", Options{})
	must(err)
	for _, n := range []string{"bin/tool", "bin/tool2"} {
		if b, err := im.ReadFile(n); err != nil || string(b) != "tool" {
			t.Errorf("%s: %q %v", n, b, err)
		}
	}
	if e, _ := im.Lookup("usr/bin/tool2"); e.HardlinkTo != "usr/bin/tool" {
		t.Errorf("tool2: %+v", e)
	}
}

// TestWriterLate: files from Late end the archive, sorted among themselves, after the sorted
// files (GNU cpio, an independent reader, lists them there with their content); Late runs
// after the other files are written; bad late files are refused.
func TestWriterLate(t *testing.T) {
	needTools(t, "cpio")
	files := []File{Regular("m/b", 0o644, []byte("b")), Regular("z", 0o644, []byte("z"))}
	var buf bytes.Buffer
	wroteBefore := -1
	w := Writer{MTime: 1, Late: func() ([]File, error) {
		wroteBefore = buf.Len()
		return []File{Regular("m/modules.dep", 0o644, []byte("dep")), Regular("m/modules.alias", 0o644, []byte("alias"))}, nil
	}}
	if err := w.Encode(&buf, files); err != nil {
		t.Fatal(err)
	}
	if wroteBefore <= 0 {
		t.Fatalf("Late called before the files were written (%d bytes out)", wroteBefore)
	}
	got := strings.Join(strings.Fields(string(run(t, buf.Bytes(), "cpio", "-t", "--quiet"))), " ")
	if want := "m m/b z m/modules.alias m/modules.dep"; got != want {
		t.Fatalf("cpio -t: %q, want %q", got, want)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-id", "--quiet")
	cmd.Dir, cmd.Stdin = dir, bytes.NewReader(buf.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "m", "modules.dep")); err != nil || string(b) != "dep" {
		t.Fatalf("m/modules.dep: %q %v", b, err)
	}
	for name, late := range map[string][]File{
		"name taken":   {Regular("z", 0o644, []byte("x"))},
		"twice":        {Regular("m/x", 0o644, []byte("x")), Regular("m/x", 0o644, []byte("y"))},
		"no directory": {Regular("n/x", 0o644, []byte("x"))},
		"not regular":  {Symlink("m/l", "b")},
		"under a file": {Regular("z/x", 0o644, []byte("x"))},
	} {
		w := Writer{Late: func() ([]File, error) { return late, nil }}
		if err := w.Encode(io.Discard, files); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	failing := Writer{Late: func() ([]File, error) { return nil, errors.New("depmod failed") }}
	if err := failing.Encode(io.Discard, files); err == nil || !strings.Contains(err.Error(), "depmod failed") {
		t.Errorf("Late's error not returned: %v", err)
	}
}
