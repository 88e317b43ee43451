package module

// Table tests over testdata/elf: gcc-built synthetic modules of five architectures (both byte
// orders, 32 and 64 bit), extended modversions, a signed module, each compression, and bad
// inputs (scripts/make-elf-fixtures.sh builds them from testdata/elf/src/fixture.c).
// Oracles: kmod's `modprobe --dump-modversions` for __versions and `modinfo -F` for .modinfo;
// what kmod cannot tell (exports, extended tables, signature) is checked against the values
// written in fixture.c.

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fixtures = "../../testdata/elf"

// dumpModversions renders Versions the way modprobe --dump-modversions prints them.
func dumpModversions(m *Module) string {
	var b strings.Builder
	for _, s := range m.Versions {
		fmt.Fprintf(&b, "0x%08x\t%s\n", s.CRC, s.Name)
	}
	return b.String()
}

func TestFixtures(t *testing.T) {
	for _, c := range []struct {
		file     string
		class    elf.Class
		order    binary.ByteOrder
		machine  elf.Machine
		versions bool
		ext      bool
		signed   bool
		thisSize uint64
		compress string
	}{
		{"x86_64.ko", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, false, false, 1344, "none"},
		{"aarch64.ko", elf.ELFCLASS64, binary.LittleEndian, elf.EM_AARCH64, true, false, false, 1280, "none"},
		{"i686.ko", elf.ELFCLASS32, binary.LittleEndian, elf.EM_386, true, false, false, 640, "none"},
		{"s390x.ko", elf.ELFCLASS64, binary.BigEndian, elf.EM_S390, true, false, false, 1216, "none"},
		{"powerpc.ko", elf.ELFCLASS32, binary.BigEndian, elf.EM_PPC, true, false, false, 704, "none"},
		{"x86_64-ext.ko", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, true, false, 1344, "none"},
		{"s390x-ext.ko", elf.ELFCLASS64, binary.BigEndian, elf.EM_S390, true, true, false, 1216, "none"},
		{"x86_64-noversions.ko", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, false, false, false, 1344, "none"},
		{"x86_64-signed.ko", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, false, true, 1344, "none"},
		{"x86_64.ko.gz", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, false, false, 1344, "gzip"},
		{"x86_64.ko.xz", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, false, false, 1344, "xz"},
		{"x86_64.ko.zst", elf.ELFCLASS64, binary.LittleEndian, elf.EM_X86_64, true, false, false, 1344, "zstd"},
	} {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join(fixtures, c.file)
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if m.Class != c.class || m.ByteOrder != c.order || m.Machine != c.machine {
				t.Errorf("class %v order %v machine %v", m.Class, m.ByteOrder, m.Machine)
			}
			if string(m.Compression) != c.compress || m.Signed != c.signed || m.ThisModuleSize != c.thisSize {
				t.Errorf("compression %q signed %v this_module %d", m.Compression, m.Signed, m.ThisModuleSize)
			}

			// __versions against kmod. Debian's kmod reads .ko.xz and .ko.zst but not .ko.gz:
			// the gzip fixture is compared with kmod's reading of the file it was made from.
			oracle := p
			if c.compress == "gzip" {
				oracle = strings.TrimSuffix(p, ".gz")
			}
			want, err := exec.Command("modprobe", "--dump-modversions", oracle).Output()
			if c.versions {
				if err != nil || len(want) == 0 {
					t.Fatalf("modprobe --dump-modversions: %v", err)
				}
				if got := dumpModversions(m); got != string(want) {
					t.Errorf("versions:\n%s\nmodprobe:\n%s", got, want)
				}
			} else if len(m.Versions) != 0 || m.HasModversions() || err == nil {
				t.Errorf("no-modversions module: %d versions, modprobe err %v", len(m.Versions), err)
			}

			// .modinfo against kmod.
			for field, got := range map[string]string{
				"name": m.Name, "vermagic": m.Vermagic, "license": m.License,
				"srcversion": m.SrcVersion, "import_ns": strings.Join(m.ImportNS, "\n"),
				"depends": strings.Join(m.Depends, ","),
			} {
				out, err := exec.Command("modinfo", "-F", field, oracle).Output()
				if err != nil {
					t.Fatalf("modinfo -F %s: %v", field, err)
				}
				if w := strings.TrimSuffix(string(out), "\n"); got != w {
					t.Errorf("%s: got %q, modinfo %q", field, got, w)
				}
			}

			// Extended modversions: fixture.c's values; the loader then checks only these.
			if c.ext {
				wantExt := []Symbol{{"module_layout", 0xbce1a965}, {"_printk", 0x92997ed8},
					{"a_rust_symbol_whose_name_is_much_longer_than_fifty_six_bytes_of_a_record", 0xdeadbeef}}
				if !reflect.DeepEqual(m.ExtVersions, wantExt) || !reflect.DeepEqual(m.Modversions(), wantExt) {
					t.Errorf("ext versions %v, Modversions %v", m.ExtVersions, m.Modversions())
				}
			} else if m.ExtVersions != nil {
				t.Errorf("unexpected ext versions %v", m.ExtVersions)
			}

			// Exports and undefined symbols: fixture.c's values.
			wantExports := []Export{
				{Name: "fixture_export", CRC: 0xcafef00d, HasCRC: true},
				{Name: "fixture_ns_export", CRC: 0x13572468, HasCRC: true, Namespace: "KABIGUARD_TEST", GPLOnly: true},
			}
			if !reflect.DeepEqual(m.Exports, wantExports) {
				t.Errorf("exports %+v", m.Exports)
			}
			undef := map[string]bool{}
			for _, u := range m.Undefined {
				undef[u.Name] = u.Weak
			}
			for name, weak := range map[string]bool{"_printk": false, "misc_register": false, "kfree": false, "optional_hook": true} {
				if w, ok := undef[name]; !ok || w != weak {
					t.Errorf("undefined %s: present %v weak %v", name, ok, w)
				}
			}
		})
	}
}

func TestBadInputs(t *testing.T) {
	for file, cause := range map[string]string{
		"bad-empty.ko":             "neither ELF nor a known compression",
		"bad-text.ko":              "neither ELF nor a known compression (starts with 74 68 69 73)",
		"bad-header-only.ko":       "truncated ELF file",
		"bad-cut-section-table.ko": "truncated ELF file",
		"bad-shoff.ko":             "truncated ELF file",
		"bad-executable.ko":        "ELF type is ET_DYN, modules are ET_REL",
		"bad-truncated.ko.xz":      "corrupt xz data",
		"does-not-exist.ko":        "no such file or directory",
	} {
		t.Run(file, func(t *testing.T) {
			p := filepath.Join(fixtures, file)
			m, err := Open(p)
			if err == nil || m != nil {
				t.Fatalf("no error for %s", file)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, cause) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s and %q", msg, p, cause)
			}
			if strings.HasPrefix(file, "bad-") && !strings.HasSuffix(file, ".xz") && !errors.Is(err, ErrNotModule) {
				t.Fatalf("%v is not ErrNotModule", err)
			}
		})
	}
}

// TestParseEqualsOpen: Parse on the bytes and Open on the file (which maps it) agree.
func TestParseEqualsOpen(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.ko*"))
	for _, p := range files {
		a, errA := Open(p)
		data, _ := os.ReadFile(p)
		b, errB := Parse(p, data)
		if (errA == nil) != (errB == nil) || (errA == nil && !reflect.DeepEqual(a, b)) {
			t.Errorf("%s: Open %v / Parse %v differ", p, errA, errB)
		}
	}
}
