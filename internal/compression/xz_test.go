package compression

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// realTool runs the host's name (gzip, xz) with stdin and returns its output.
func realTool(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd.Output()
}

// testData is compressible but not trivial: words drawn from a small vocabulary, with
// random bytes mixed in, like an archive of text and binaries.
func testData(n int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"module", "kernel", "symbol", "\x7fELF", "weak-updates", "\x00\x00\x00\x00", "crc"}
	var b bytes.Buffer
	for b.Len() < n {
		if rng.Intn(8) == 0 {
			b.WriteByte(byte(rng.Intn(256)))
			continue
		}
		b.WriteString(words[rng.Intn(len(words))])
	}
	return b.Bytes()[:n]
}

// smallXZBlocks makes the writer cut blocks of 64 KiB for the test, so small inputs span
// many blocks.
func smallXZBlocks(t *testing.T) {
	old := xzBlockSize
	xzBlockSize = 64 << 10
	t.Cleanup(func() { xzBlockSize = old })
}

// encodeInPieces compresses data in format through NewWriter, in uneven writes, so chunks
// and blocks are cut across Write calls.
func encodeInPieces(t *testing.T, format Format, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, format)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		k := min(len(p), 10007)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readParallel(t *testing.T, stream []byte) ([]byte, *XZStream, error) {
	t.Helper()
	st, err := WalkXZ(bytes.NewReader(stream), 0, int64(len(stream)))
	if err != nil {
		return nil, nil, err
	}
	r := st.NewReader(bytes.NewReader(stream))
	defer r.Close()
	out, err := io.ReadAll(r)
	return out, st, err
}

// The writer's streams are read back by xz-utils, by ulikunitz's sequential reader and by the
// concurrent reader, for sizes around the block boundaries.
func TestXZWriterRoundTrip(t *testing.T) {
	smallXZBlocks(t)
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := testData(n, int64(n))
			stream := encodeInPieces(t, XZ, data)

			viaXZ, err := realTool(stream, "xz", "-dc")
			if err != nil {
				t.Fatalf("xz -dc rejects the stream: %v", err)
			}
			if !bytes.Equal(viaXZ, data) {
				t.Fatalf("xz -dc: %d bytes differ from the %d written", len(viaXZ), len(data))
			}
			// xz-utils' own view of the layout: one block per 64 KiB, sizes in every header,
			// CRC32 check.
			file := filepath.Join(t.TempDir(), "s.xz")
			if err := os.WriteFile(file, stream, 0o644); err != nil {
				t.Fatal(err)
			}
			robot, err := exec.Command("xz", "--robot", "-lvv", file).Output()
			if err != nil {
				t.Fatalf("xz -lvv: %v", err)
			}
			wantBlocks := (n + 64<<10 - 1) / (64 << 10)
			var blocks int
			for _, line := range strings.Split(string(robot), "\n") {
				f := strings.Split(line, "\t")
				if f[0] != "block" {
					continue
				}
				blocks++
				if len(f) < 16 || f[12] != "cu" || f[9] != "CRC32" || f[15] != "--lzma2=dict=256KiB" {
					t.Errorf("block line %q: want a header with both sizes and a CRC32 check", line)
				}
			}
			if blocks != wantBlocks {
				t.Errorf("xz lists %d blocks, want %d", blocks, wantBlocks)
			}

			zr, err := xz.NewReader(bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			seq, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(seq, data) {
				t.Fatalf("ulikunitz reader: %d bytes, %v", len(seq), err)
			}

			par, st, err := readParallel(t, stream)
			if err != nil || !bytes.Equal(par, data) {
				t.Fatalf("concurrent reader: %d bytes, %v", len(par), err)
			}
			if len(st.blocks) != wantBlocks || st.Length != int64(len(stream)) || st.Size() != int64(n) {
				t.Errorf("walk: %d blocks, length %d, size %d; want %d, %d, %d", len(st.blocks), st.Length, st.Size(), wantBlocks, len(stream), n)
			}
		})
	}
}

// Streams made by xz-utils: multi-threaded ones (sizes in the block headers) are read
// concurrently with every check type; single-threaded ones are reported as not indexed.
func TestXZReadsXZUtilsStreams(t *testing.T) {
	data := testData(500<<10, 7)
	compress := func(args ...string) []byte {
		out, err := realTool(data, "xz", append(args, "-c")...)
		if err != nil {
			t.Fatalf("xz %v: %v", args, err)
		}
		return out
	}
	for _, check := range []string{"none", "crc32", "crc64", "sha256"} {
		stream := compress("-T2", "--block-size=100KiB", "--check="+check, "--lzma2=dict=1MiB")
		par, st, err := readParallel(t, stream)
		if err != nil || !bytes.Equal(par, data) {
			t.Fatalf("check %s: concurrent reader: %d bytes, %v", check, len(par), err)
		}
		if len(st.blocks) != 5 {
			t.Errorf("check %s: %d blocks, want 5", check, len(st.blocks))
		}
	}
	if _, err := WalkXZ(bytes.NewReader(compress("-T1")), 0, 1<<30); !errors.Is(err, ErrXZNotIndexed) {
		t.Errorf("single-threaded xz stream: %v, want ErrXZNotIndexed", err)
	}
}

// Damage anywhere gives an error naming the offset, never wrong data or a panic.
func TestXZDamage(t *testing.T) {
	smallXZBlocks(t)
	data := testData(200<<10, 3)
	stream := encodeInPieces(t, XZ, data)
	st, err := WalkXZ(bytes.NewReader(stream), 0, int64(len(stream)))
	if err != nil {
		t.Fatal(err)
	}
	second := st.blocks[1]

	// A flipped byte inside the second block's LZMA2 data: the decoder or the CRC32 catches it.
	bad := bytes.Clone(stream)
	bad[second.off+second.headerLen+second.compressed/2] ^= 0x55
	out, _, err := readParallel(t, bad)
	if err == nil {
		t.Fatalf("corrupt block read without error (%d bytes)", len(out))
	}
	if want := fmt.Sprintf("xz block at offset %d", second.off); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}

	// A changed check value alone.
	bad = bytes.Clone(stream)
	bad[second.off+second.headerLen+second.compressed+pad4(second.compressed)] ^= 1
	if _, _, err := readParallel(t, bad); err == nil || !strings.Contains(err.Error(), "check mismatch") {
		t.Errorf("wrong CRC32: %v", err)
	}

	// Header, index and footer damage, and truncation, are found by the walk.
	cases := map[string][]byte{
		"block header": func() []byte { b := bytes.Clone(stream); b[second.off+2] ^= 1; return b }(),
		"index":        func() []byte { b := bytes.Clone(stream); b[len(b)-12-5] ^= 1; return b }(),
		"footer":       func() []byte { b := bytes.Clone(stream); b[len(b)-3] ^= 1; return b }(),
		"truncated":    stream[:len(stream)-7],
		"cut in block": stream[:second.off+10],
	}
	for name, b := range cases {
		if _, err := WalkXZ(bytes.NewReader(b), 0, int64(len(b))); err == nil || errors.Is(err, ErrXZNotIndexed) {
			t.Errorf("%s: walk gives %v, want an error naming the defect", name, err)
		} else if !strings.Contains(err.Error(), "offset") {
			t.Errorf("%s: error %q names no offset", name, err)
		}
	}
}

// FuzzXZ: whatever the concurrent reader accepts, ulikunitz's sequential reader decodes to the
// same bytes; nothing panics.
func FuzzXZ(f *testing.F) {
	old := xzBlockSize
	xzBlockSize = 1 << 10
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, XZ)
	w.Write(testData(3000, 1))
	w.Close()
	xzBlockSize = old
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()-20])
	f.Fuzz(func(t *testing.T, stream []byte) {
		st, err := WalkXZ(bytes.NewReader(stream), 0, int64(len(stream)))
		if err != nil {
			return
		}
		r := st.NewReader(bytes.NewReader(stream))
		par, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return
		}
		zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(stream[:st.Length]))
		if err != nil {
			t.Fatalf("concurrent reader accepted %d bytes the sequential reader rejects: %v", len(par), err)
		}
		seq, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(seq, par) {
			t.Fatalf("sequential reader: %d bytes, %v; concurrent: %d bytes", len(seq), err, len(par))
		}
	})
}

// A size shorter than the data behind the reader bounds the walk: errors, never a panic
// (an earlier parse may pass a segment length that ends inside the stream).
func TestXZWalkWithinSize(t *testing.T) {
	smallXZBlocks(t)
	empty := encodeInPieces(t, XZ, nil)
	stream := encodeInPieces(t, XZ, testData(100<<10, 5))
	st, err := WalkXZ(bytes.NewReader(stream), 0, int64(len(stream)))
	if err != nil {
		t.Fatal(err)
	}
	first := st.blocks[0]
	afterFirst := first.off + first.headerLen + first.compressed + pad4(first.compressed) + 4
	for _, c := range []struct {
		data []byte
		size int64
	}{{empty, 12}, {empty, 5}, {empty, int64(len(empty)) - 1}, {stream, afterFirst}, {stream, afterFirst + 3}, {stream, int64(len(stream)) - 12}} {
		if _, err := WalkXZ(bytes.NewReader(c.data), 0, c.size); err == nil {
			t.Errorf("walk of %d bytes within %d: no error", len(c.data), c.size)
		}
	}
}

// Multibyte integers must be minimal, as the kernel's xz decoder wants them.
func TestXZIntegers(t *testing.T) {
	for _, c := range []struct {
		in []byte
		ok bool
	}{{[]byte{0x05}, true}, {[]byte{0x00}, true}, {[]byte{0x85, 0x01}, true}, {[]byte{0x85, 0x00}, false}, {[]byte{0x80}, false}} {
		b := c.in
		if _, ok := takeUvarint(&b); ok != c.ok {
			t.Errorf("% x: ok %v, want %v", c.in, ok, c.ok)
		}
	}
}

// The blocks in flight stay within the memory budget: with room for one, one is decoded at a
// time, and the content is still whole.
func TestXZReaderMemoryBound(t *testing.T) {
	smallXZBlocks(t)
	old := xzMaxInFlight
	xzMaxInFlight = 100 << 10 // less than one 64 KiB block and its dictionary
	t.Cleanup(func() { xzMaxInFlight = old })
	data := testData(400<<10, 9)
	stream := encodeInPieces(t, XZ, data)
	st, err := WalkXZ(bytes.NewReader(stream), 0, int64(len(stream)))
	if err != nil {
		t.Fatal(err)
	}
	r := st.NewReader(bytes.NewReader(stream)).(*xzParallelReader)
	defer r.Close()
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if len(r.pending) > 0 {
			t.Fatalf("%d blocks decoding beside the one being read", len(r.pending))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes read, want %d", len(got), len(data))
	}
}
