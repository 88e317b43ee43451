package exports

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// TestXZWithBCJMatchesXZUtils: a real x86 executable compressed by xz-utils with the filter
// chain the kernel's build uses decodes to the same bytes (BCJ undone, CRC32 checked).
func TestXZWithBCJMatchesXZUtils(t *testing.T) {
	orig, err := os.ReadFile("/usr/bin/xz")
	if err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{{"--x86", "--lzma2=dict=1MiB"}, {"--x86=start=4096", "--lzma2"}, {"--lzma2", "--check=crc64"}} {
		cmd := exec.Command("xz", append([]string{"-c", "--check=crc32", "--format=xz"}, flags...)...)
		cmd.Stdin = bytes.NewReader(orig)
		packed, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz %v: %v", flags, err)
		}
		got, err := decodeXZ(packed, maxVmlinux)
		if err != nil {
			t.Fatalf("xz %v: %v", flags, err)
		}
		if !bytes.Equal(got, orig) {
			t.Fatalf("xz %v: decoded %d bytes differ from the %d original ones", flags, len(got), len(orig))
		}
	}
}

// bzImage builds a minimal bzImage: boot header, setup sectors, and payload as its
// compressed kernel, its size trailer included.
func bzImage(payload []byte) []byte {
	const setupSects = 3
	img := make([]byte, (setupSects+1)*512)
	img[bzSetupSects] = setupSects
	copy(img[bzHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(img[bzVersion:], 0x20f)
	binary.LittleEndian.PutUint32(img[bzPayloadOff:], 16)
	binary.LittleEndian.PutUint32(img[bzPayloadLen:], uint32(len(payload)))
	img = append(img, make([]byte, 16)...)
	return append(img, payload...)
}

func withSize(data []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte(nil), data...), uint32(size))
}

func compress(t *testing.T, tool string, args []string, data []byte) []byte {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

// TestPayloadFormats: each compression the kernel's x86 build offers is read or refused
// with ErrCompression naming it.
func TestPayloadFormats(t *testing.T) {
	elf, err := os.ReadFile("/usr/bin/true") // any ELF: Decode checks the payload is one
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool string
		args []string
		ok   bool
		want string
	}{
		{"xz", []string{"-c", "--check=crc32", "--x86", "--lzma2"}, true, "xz"},
		{"zstd", []string{"-c", "-q", "--ultra", "-22"}, true, "zstd"},
		{"gzip", []string{"-c", "-9"}, true, "gzip"},
		{"lz4", []string{"-c", "-l", "-q"}, true, "lz4"},
		{"bzip2", []string{"-c"}, false, "bzip2"},
		{"xz", []string{"-c", "--format=lzma"}, false, "lzma"},
		{"lz4", []string{"-c", "-q"}, false, "lz4 frame format"},
	} {
		img := bzImage(withSize(compress(t, c.tool, c.args, elf), len(elf)))
		got, err := Decode(img)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s %v: %v", c.tool, c.args, err)
		case c.ok && (!bytes.Equal(got.Data, elf) || !strings.Contains(got.Form, c.want)):
			t.Errorf("%s %v: %s, %d bytes; want the %d input bytes", c.tool, c.args, got.Form, len(got.Data), len(elf))
		case !c.ok && (!errors.Is(err, ErrCompression) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %v: error %v; want %v naming %s", c.tool, c.args, err, ErrCompression, c.want)
		}
	}
}

// TestBadImagesGiveOneLineErrors: a truncated payload, an unknown compression, a file that is
// no kernel and a FIFO each fail ForKernel with one line naming the file.
func TestBadImagesGiveOneLineErrors(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	real, err := os.ReadFile(filepath.Join(k.Root, "boot", "vmlinuz-"+k.Release))
	if err != nil {
		t.Fatal(err)
	}
	p, err := payload(real)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(real, p[:64])
	cutPayload := real[:off+len(p)/2] // the header's payload length now points past the end
	shortStream := append([]byte(nil), real...)
	copy(shortStream[off+len(p)/2:], make([]byte, len(p)/2)) // the xz stream ends in zeros
	unknown := append([]byte(nil), real...)
	copy(unknown[off:], "\x89LZO\x00")
	for _, c := range []struct {
		name    string
		content []byte
		want    error
	}{
		{"truncated payload", cutPayload, ErrTruncated},
		{"corrupt payload", shortStream, errXZ},
		{"unknown compression", unknown, ErrCompression},
		{"not a kernel", []byte("#!/bin/sh\necho this is no kernel\n"), ErrNotKernel},
		{"empty", nil, ErrNotKernel},
		{"FIFO", nil, rootfs.ErrNotRegular},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			image := filepath.Join(root, "boot", "vmlinuz-"+k.Release)
			os.MkdirAll(filepath.Dir(image), 0o755)
			os.MkdirAll(filepath.Join(root, "lib", "modules", k.Release), 0o755)
			if c.name == "FIFO" {
				if err := syscall.Mkfifo(image, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(image, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ForKernel(root, k.Release, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), image) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q; want one line naming %s and wrapping %v", err, image, c.want)
			}
			t.Log(err)
		})
	}
}
