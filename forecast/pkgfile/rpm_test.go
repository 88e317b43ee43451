package pkgfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildRPM makes a package with the real rpmbuild, its payload compressed by the given rpm
// I/O method (w9.xzdio, w19.zstdio, w9.gzdio), from a tree laid out as RHEL's kernel-core:
// a directory, a module, an executable, an empty file, a symlink and a hard link.
func buildRPM(t *testing.T, payload string) string {
	t.Helper()
	top := t.TempDir()
	src := filepath.Join(top, "tree")
	for _, d := range []string{"boot", "lib/modules/9.9.9-1.el9.x86_64/kernel/drivers"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kdir := "lib/modules/9.9.9-1.el9.x86_64"
	files := map[string]string{
		kdir + "/vmlinuz":                strings.Repeat("kernel image ", 5000),
		kdir + "/kernel/drivers/a.ko.xz": strings.Repeat("\xfd7zXZ module ", 3000),
		kdir + "/modules.order":          "kernel/drivers/a.ko\n",
		kdir + "/modules.builtin":        "",
		"boot/run.sh":                    "#!/bin/sh\n",
	}
	for rel, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(src, rel), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../"+kdir+"/vmlinuz", filepath.Join(src, "boot/vmlinuz-9.9.9-1.el9.x86_64")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, kdir, "vmlinuz"), filepath.Join(src, "boot/.vmlinuz-hardlink")); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(top, "k.spec")
	os.WriteFile(spec, []byte(`Name: kernel-core
Version: 9.9.9
Release: 1.el9
Summary: test kernel
License: GPL-2.0
BuildArch: noarch
%description
test
%install
cp -a `+src+`/. %{buildroot}/
%files
/boot
/lib/modules/9.9.9-1.el9.x86_64
`), 0o644)
	cmd := exec.Command("rpmbuild", "-bb", "--nodeps", "--define", "_topdir "+top, "--define", "_binary_payload "+payload,
		"--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}", "--define", "_build_id_links none", spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	return rpms[0]
}

// Every payload compression rpmbuild writes reads back as the tree the real rpm2cpio and cpio
// unpack from it, and the name, version and arch are what rpm -qp says.
func TestRPMMatchesRpm2cpio(t *testing.T) {
	for _, payload := range []string{"w9.xzdio", "w19.zstdio", "w9.gzdio"} {
		t.Run(payload, func(t *testing.T) {
			rpm := buildRPM(t, payload)
			pkg := mustOpen(t, rpm)
			out, err := exec.Command("rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}", rpm).Output()
			if err != nil {
				t.Fatal(err)
			}
			if f := strings.Fields(string(out)); pkg.Kind != RPM || pkg.Name != f[0] || pkg.Version != f[1] || pkg.Arch != f[2] {
				t.Errorf("Open: %+v; rpm -qp: %v", pkg, f)
			}
			dir := t.TempDir()
			unpack := exec.Command("sh", "-c", `rpm2cpio "$1" | cpio -idm --quiet`, "sh", rpm)
			unpack.Dir = dir
			if out, err := unpack.CombinedOutput(); err != nil {
				t.Fatalf("rpm2cpio | cpio: %v\n%s", err, out)
			}
			got := collect(t, pkg)
			unpacked := collect(t, mustOpen(t, dir))
			for name, e := range unpacked {
				if _, listed := got[name]; !listed && e.mode.IsDir() {
					delete(unpacked, name) // a parent cpio made that the payload does not own
				}
			}
			compareTrees(t, got, unpacked)
			if e := got["boot/.vmlinuz-hardlink"]; e.sum == "" {
				t.Errorf("the hard link's content was not found: %+v", e)
			}
		})
	}
}

// A broken RPM fails with one line naming the file and the cause, from Open when the headers
// are broken and from Walk when the payload is.
func TestBadRPM(t *testing.T) {
	good, err := os.ReadFile(buildRPM(t, "w9.xzdio"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hugeIndex := append([]byte(nil), good...)
	copy(hugeIndex[rpmLeadLen+8:], []byte{0xff, 0xff, 0xff, 0xff}) // the signature header's entry count
	for _, tc := range []struct {
		name   string
		path   string
		want   error
		inOpen bool
	}{
		{"lead only", write("lead.rpm", good[:rpmLeadLen]), ErrTruncated, true},
		{"headers cut", write("cut.rpm", good[:rpmLeadLen+200]), ErrTruncated, true},
		{"header entry count out of range", write("huge.rpm", hugeIndex), ErrFormat, true},
		{"payload cut", write("payload.rpm", good[:len(good)-len(good)/4]), ErrTruncated, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg, err := Open(tc.path)
			if err == nil {
				if tc.inOpen {
					t.Fatalf("Open succeeded: %+v", pkg)
				}
				err = pkg.Walk(func(File, io.Reader) error { return nil })
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.path+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with the file's name", msg)
			}
		})
	}
}
