package pkgfile

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// entry is what a test compares of a package entry.
type entry struct {
	mode     os.FileMode
	size     int64
	sum      string
	linkname string
}

// collect walks pkg and returns its entries by name. Hard links are resolved to the content
// of the file they repeat, as an unpacked tree shows them.
func collect(t testing.TB, pkg *Package) map[string]entry {
	t.Helper()
	got := map[string]entry{}
	err := pkg.Walk(func(f File, body io.Reader) error {
		if _, dup := got[f.Name]; dup {
			return fmt.Errorf("%s listed twice", f.Name)
		}
		e := entry{mode: f.Mode, size: f.Size}
		switch {
		case f.HardLink:
			first, ok := got[f.Linkname]
			if !ok {
				return fmt.Errorf("hard link %s to %s, which came not before it", f.Name, f.Linkname)
			}
			e.size, e.sum = first.size, first.sum
		case f.Mode&os.ModeSymlink != 0:
			e.linkname = f.Linkname
		case f.IsRegular():
			h := sha256.New()
			n, err := io.Copy(h, body)
			if err != nil {
				return err
			}
			if n != f.Size {
				return fmt.Errorf("%s: read %d bytes, header says %d", f.Name, n, f.Size)
			}
			e.sum = hex.EncodeToString(h.Sum(nil))
		default:
			e.size = 0 // a directory's size means nothing
		}
		got[f.Name] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", pkg.Path, err)
	}
	return got
}

func mustOpen(t testing.TB, p string) *Package {
	t.Helper()
	pkg, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	return pkg
}

// compareTrees reports every difference between the entries read from a package and from the
// tree the real dpkg-deb unpacked. Permissions of directories are left out: dpkg-deb -x
// applies the umask-less modes, tar headers too, but the test's temporary root is 0700.
func compareTrees(t *testing.T, fromPkg, fromDir map[string]entry) {
	t.Helper()
	for name, want := range fromDir {
		got, ok := fromPkg[name]
		if !ok {
			t.Errorf("%s: unpacked by dpkg-deb, not listed by pkgfile", name)
			continue
		}
		if got.mode.Type() != want.mode.Type() || (!want.mode.IsDir() && got.mode.Perm() != want.mode.Perm()) ||
			got.size != want.size || got.sum != want.sum || got.linkname != want.linkname {
			t.Errorf("%s: pkgfile %+v, dpkg-deb unpacked %+v", name, got, want)
		}
	}
	for name := range fromPkg {
		if _, ok := fromDir[name]; !ok {
			t.Errorf("%s: listed by pkgfile, not unpacked by dpkg-deb", name)
		}
	}
}

func dpkgDeb(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildDeb makes a package with the real dpkg-deb from a small tree holding a directory, a
// regular file, an executable, a symlink and a hard link.
func buildDeb(t *testing.T, compress string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"DEBIAN", "boot", "lib/modules/9.9.9-test/kernel/drivers"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(src, rel), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("DEBIAN/control", "Package: linux-image-9.9.9-test\nVersion: 9.9.9-1\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test\n multi-line\n", 0o644)
	write("boot/vmlinuz-9.9.9-test", strings.Repeat("kernel image ", 5000), 0o644)
	write("lib/modules/9.9.9-test/kernel/drivers/a.ko", strings.Repeat("\x7fELF module ", 3000), 0o644)
	write("lib/modules/9.9.9-test/modules.order", "kernel/drivers/a.ko\n", 0o644)
	write("boot/run.sh", "#!/bin/sh\n", 0o755)
	if err := os.Symlink("../../boot/vmlinuz-9.9.9-test", filepath.Join(src, "lib/modules/9.9.9-test/vmlinuz")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "boot/vmlinuz-9.9.9-test"), filepath.Join(src, "boot/vmlinuz-hardlink")); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(t.TempDir(), "test_"+compress+".deb")
	dpkgDeb(t, "--root-owner-group", "-Z"+compress, "--build", src, deb)
	return deb
}

// Every compression dpkg-deb writes reads back as the tree dpkg-deb itself unpacks.
func TestDebMatchesDpkgDeb(t *testing.T) {
	for _, z := range []string{"xz", "xz-without-xz(1)", "gzip", "zstd", "none"} {
		t.Run(z, func(t *testing.T) {
			if z == "xz-without-xz(1)" { // the pure-Go readers, as on a host without xz
				z = "xz"
				defer func(f func() string) { compression.XZCommand = f }(compression.XZCommand)
				compression.XZCommand = func() string { return "" }
			}
			deb := buildDeb(t, z)
			pkg := mustOpen(t, deb)
			fields := strings.Fields(dpkgDeb(t, "--showformat=${Package} ${Version} ${Architecture}", "--show", deb))
			if pkg.Kind != Deb || pkg.Name != fields[0] || pkg.Version != fields[1] || pkg.Arch != fields[2] {
				t.Errorf("Open: %+v; dpkg-deb --show: %v", pkg, fields)
			}
			out := t.TempDir()
			dpkgDeb(t, "-x", deb, out)
			compareTrees(t, collect(t, pkg), collect(t, mustOpen(t, out)))
		})
	}
}

// arBytes is an ar archive of the given members (name, data).
func arBytes(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m[0], 0, 0, 0, "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// writeAr writes arBytes(members) to a temporary file.
func writeAr(t testing.TB, members ...[2]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(p, arBytes(members...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func tarOf(t testing.TB, hdrs ...*tar.Header) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.String()
}

func controlTar(t testing.TB) string {
	return tarOf(t, &tar.Header{Name: "./control", Mode: 0o644, Size: 0, Typeflag: tar.TypeReg})
}

// Hostile and broken packages fail with one line that names the file and the cause, and
// nothing outside the package is ever reported as its file.
func TestBadPackages(t *testing.T) {
	var goodControl string
	{
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		body := "Package: p\nVersion: 1\n"
		tw.WriteHeader(&tar.Header{Name: "./control", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
		tw.Close()
		goodControl = b.String()
	}
	escape := tarOf(t, &tar.Header{Name: "./boot/../../etc/shadow", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	hardEscape := tarOf(t, &tar.Header{Name: "./boot/x", Mode: 0o644, Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"})
	okData := tarOf(t, &tar.Header{Name: "./boot/vmlinuz-1", Mode: 0o644, Size: 4000, Typeflag: tar.TypeReg})
	truncated := writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", goodControl}, [2]string{"data.tar", okData})
	whole, _ := os.ReadFile(truncated)
	if err := os.WriteFile(truncated, whole[:len(whole)-3000], 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo.deb")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(t.TempDir(), "notes.deb")
	os.WriteFile(text, []byte("just some text\n"), 0o644)
	empty := filepath.Join(t.TempDir(), "empty.deb")
	os.WriteFile(empty, nil, 0o644)

	for _, tc := range []struct {
		name   string
		path   string
		want   error
		inOpen bool // the error comes from Open (metadata), not from Walk
	}{
		{"text file", text, ErrFormat, true},
		{"empty file", empty, ErrFormat, true},
		{"FIFO", fifo, ErrFormat, true},
		{"first member not debian-binary", writeAr(t, [2]string{"control.tar", goodControl}), ErrFormat, true},
		{"format version 3", writeAr(t, [2]string{"debian-binary", "3.0\n"}, [2]string{"control.tar", goodControl}, [2]string{"data.tar", okData}), ErrFormat, true},
		{"no data member", writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", goodControl}), ErrFormat, true},
		{"no control file", writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", controlTar(t)}, [2]string{"data.tar", okData}), ErrFormat, true},
		{"truncated member", truncated, ErrTruncated, true},
		{"entry leads outside", writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", goodControl}, [2]string{"data.tar", escape}), ErrOutside, false},
		{"hard link leads outside", writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", goodControl}, [2]string{"data.tar", hardEscape}), ErrOutside, false},
		{"data not a tar", writeAr(t, [2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", goodControl}, [2]string{"data.tar.xz", "\xfd7zXZ\x00garbage"}), ErrFormat, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				pkg, err := Open(tc.path)
				if err == nil {
					if tc.inOpen {
						done <- fmt.Errorf("Open succeeded: %+v", pkg)
						return
					}
					err = pkg.Walk(func(File, io.Reader) error { return nil })
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("hangs")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.path+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with the file's name", msg)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
		err      error
	}{
		{"./boot/vmlinuz", "boot/vmlinuz", true, nil},
		{"/boot//x/./y", "boot/x/y", true, nil},
		{"./", "", false, nil},
		{".", "", false, nil},
		{"a/../b", "b", true, nil},
		{"a/../../b", "", false, ErrOutside},
		{"../x", "", false, ErrOutside},
		{"./lib/modules/K/..", "lib/modules", true, nil},
		{"a\x00b", "", false, ErrFormat},
	} {
		got, ok, err := cleanName(tc.in)
		if got != tc.want || ok != tc.ok || !errors.Is(err, tc.err) {
			t.Errorf("cleanName(%q) = %q, %v, %v; want %q, %v, %v", tc.in, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
}

// A directory's symlinks are reported, not followed, even one that leads out of it.
func TestDirSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.Symlink("/etc", filepath.Join(dir, "boot", "etc"))
	got := collect(t, mustOpen(t, dir))
	if e := got["boot/etc"]; e.linkname != "/etc" || e.mode&os.ModeSymlink == 0 {
		t.Errorf("boot/etc: %+v", e)
	}
	for name := range got {
		if strings.HasPrefix(name, "boot/etc/") {
			t.Errorf("%s: the walk followed a symlink out of the package", name)
		}
	}
}

// FuzzWalk feeds the .deb and RPM readers anything: no panic, no hang, no name escaping.
func FuzzWalk(f *testing.F) {
	f.Add([]byte(arMagic))
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./boot/x", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	f.Add(arBytes([2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar", b.String()}, [2]string{"data.tar", b.String()}))
	f.Add(append(append(append([]byte{}, rpmLeadMagic...), make([]byte, rpmLeadLen-4)...), rpmHeaderMagic+"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		ra := bytes.NewReader(data)
		readDebMeta(ra, int64(len(data)))
		readRPMMeta(ra, int64(len(data)))
		walkRPM(ra, int64(len(data)), func(fl File, body io.Reader) error {
			_, err := io.Copy(io.Discard, io.LimitReader(body, 1<<20))
			return err
		})
		walkDeb(ra, int64(len(data)), func(fl File, body io.Reader) error {
			if _, _, err := cleanName(fl.Name); err != nil || strings.HasPrefix(fl.Name, "/") || strings.HasPrefix(fl.Name, "../") {
				t.Fatalf("entry %q escapes", fl.Name)
			}
			_, err := io.Copy(io.Discard, io.LimitReader(body, 1<<20))
			return err
		})
	})
}
