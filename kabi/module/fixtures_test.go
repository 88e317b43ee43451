package module

// Table tests over testdata/elf: gcc-built synthetic modules of five architectures (both byte
// orders, 32 and 64 bit), extended modversions, no modversions, absolute (pre-6.1) export CRCs,
// signed modules, each compression, and bad inputs. scripts/make-elf-fixtures.sh builds them
// from testdata/elf/src/fixture.c.
//
// Oracles, none of them this parser:
//   - __versions: kmod's `modprobe --dump-modversions` (kmod reads both ELF classes and byte
//     orders; it reads .ko.xz and .ko.zst but Debian's kmod has no zlib, so a .ko.gz is
//     compared with kmod's reading of the file it was compressed from);
//   - .modinfo: `modinfo` (every key it lists, each with `modinfo -F key`);
//   - signature: `modinfo -F sig_id` (kmod decodes the PKCS#7 trailer), and the signed module
//     minus its trailer must parse exactly like the module sign-file was given;
//   - compression: the compressed file must parse exactly like its plain original;
//   - what kmod cannot tell (exports and their CRCs and namespaces, extended modversions,
//     undefined symbols, class/machine, this_module size): the values in fixture.c and in
//     make-elf-fixtures.sh.

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
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

// kmod runs a kmod tool; a failure to start it fails the test (kmod is a test dependency).
func kmod(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), err
}

// modinfoKeys lists the keys `modinfo FILE` prints that come from .modinfo, in first-seen order.
func modinfoKeys(t *testing.T, file string) []string {
	out, err := kmod(t, "modinfo", file)
	if err != nil {
		t.Fatalf("modinfo %s: %v", file, err)
	}
	var keys []string
	for _, line := range strings.Split(out, "\n") {
		k, _, ok := strings.Cut(line, ":")
		if !ok || line[0] == '\t' || k == "filename" || k == "signature" || strings.HasPrefix(k, "sig_") || k == "signer" {
			continue
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// The fixture.c values.
var (
	wantUndefined = []Undefined{
		{Name: "_printk"}, {Name: "kfree"}, {Name: "misc_register"}, {Name: "optional_hook", Weak: true},
	}
	wantExt = []Symbol{
		{"module_layout", 0xbce1a965}, {"_printk", 0x92997ed8},
		{"a_rust_symbol_whose_name_is_much_longer_than_fifty_six_bytes_of_a_record", 0xdeadbeef},
	}
)

func wantExports(crcs bool) []Export {
	e := []Export{
		{Name: "fixture_export", CRC: 0xcafef00d},
		{Name: "fixture_gpl_export", CRC: 0x8badf00d, GPLOnly: true},
		{Name: "fixture_ns_export", CRC: 0x13572468, Namespace: "KABIGUARD_TEST", GPLOnly: true},
		{Name: "fixture_other_export", CRC: 0x00c0ffee},
	}
	for i := range e {
		if e[i].HasCRC = crcs; !crcs {
			e[i].CRC = 0
		}
	}
	return e
}

type fixture struct {
	file     string
	class    elf.Class
	order    binary.ByteOrder
	machine  elf.Machine
	thisSize uint64
	versions bool // has __versions
	ext      bool // has the extended modversions tables
	signed   bool // sign-file appended a signature
	compress compression.Format
	plain    string // the file this one was compressed or signed from, if any
}

var le, be = binary.LittleEndian, binary.BigEndian

var fixtureTable = []fixture{
	{"x86_64.ko", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, false, compression.None, ""},
	{"aarch64.ko", elf.ELFCLASS64, le, elf.EM_AARCH64, 1280, true, false, false, compression.None, ""},
	{"i686.ko", elf.ELFCLASS32, le, elf.EM_386, 640, true, false, false, compression.None, ""},
	{"s390x.ko", elf.ELFCLASS64, be, elf.EM_S390, 1216, true, false, false, compression.None, ""},
	{"powerpc.ko", elf.ELFCLASS32, be, elf.EM_PPC, 704, true, false, false, compression.None, ""},
	{"x86_64-ext.ko", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, true, false, compression.None, ""},
	{"s390x-ext.ko", elf.ELFCLASS64, be, elf.EM_S390, 1216, true, true, false, compression.None, ""},
	{"x86_64-noversions.ko", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, false, false, false, compression.None, ""},
	{"x86_64-abscrc.ko", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, false, compression.None, ""},
	{"powerpc-abscrc.ko", elf.ELFCLASS32, be, elf.EM_PPC, 704, true, false, false, compression.None, ""},
	{"x86_64-signed.ko", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, true, compression.None, "x86_64.ko"},
	{"x86_64-signed.ko.zst", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, true, compression.Zstd, "x86_64-signed.ko"},
	{"x86_64.ko.gz", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, false, compression.Gzip, "x86_64.ko"},
	{"x86_64.ko.xz", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, false, compression.XZ, "x86_64.ko"},
	{"x86_64.ko.zst", elf.ELFCLASS64, le, elf.EM_X86_64, 1344, true, false, false, compression.Zstd, "x86_64.ko"},
}

// TestFixtureTableComplete: every module fixture on disk is in the table.
func TestFixtureTableComplete(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.ko*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, p := range files {
		name := filepath.Base(p)
		if strings.HasPrefix(name, "bad-") {
			continue
		}
		if !slices.ContainsFunc(fixtureTable, func(f fixture) bool { return f.file == name }) {
			t.Errorf("%s has no row in fixtureTable", name)
		}
	}
}

func TestFixtures(t *testing.T) {
	for _, c := range fixtureTable {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join(fixtures, c.file)
			m, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if m.Path != p || m.Class != c.class || m.ByteOrder != c.order || m.Machine != c.machine {
				t.Errorf("path %s class %v order %v machine %v", m.Path, m.Class, m.ByteOrder, m.Machine)
			}
			if m.Compression != c.compress || m.Signed != c.signed || m.ThisModuleSize != c.thisSize {
				t.Errorf("compression %q signed %v this_module %d", m.Compression, m.Signed, m.ThisModuleSize)
			}

			// kmod reads the file itself, except gzip (Debian's kmod is built without zlib).
			oracle := p
			if c.compress == compression.Gzip {
				oracle = filepath.Join(fixtures, c.plain)
			}

			// __versions against kmod.
			want, err := kmod(t, "modprobe", "--dump-modversions", oracle)
			if c.versions {
				if err != nil || want == "" {
					t.Fatalf("modprobe --dump-modversions %s: %v", oracle, err)
				}
				if got := dumpModversions(m); got != want {
					t.Errorf("versions:\n%s\nmodprobe:\n%s", got, want)
				}
			} else if len(m.Versions) != 0 || m.HasModversions() || err == nil || want != "" {
				t.Errorf("no-modversions module: %d versions; modprobe said %q, %v", len(m.Versions), want, err)
			}

			// .modinfo against kmod: the same keys, every value of each in file order.
			keys := modinfoKeys(t, oracle)
			gotKeys := make([]string, 0, len(m.Info))
			for k := range m.Info {
				gotKeys = append(gotKeys, k)
			}
			slices.Sort(gotKeys)
			if slices.Sort(keys); !slices.Equal(gotKeys, keys) {
				t.Errorf(".modinfo keys %q, modinfo %q", gotKeys, keys)
			}
			for _, k := range keys {
				out, err := kmod(t, "modinfo", "-F", k, oracle)
				if err != nil {
					t.Fatalf("modinfo -F %s: %v", k, err)
				}
				if got, w := strings.Join(m.Info[k], "\n"), strings.TrimSuffix(out, "\n"); got != w {
					t.Errorf("Info[%s] = %q, modinfo %q", k, got, w)
				}
			}
			// The typed fields are the first value of their key (depends is a list).
			for field, got := range map[string]string{
				"name": m.Name, "vermagic": m.Vermagic, "license": m.License, "srcversion": m.SrcVersion,
				"import_ns": strings.Join(m.ImportNS, "\n"), "depends": strings.Join(m.Depends, ","),
			} {
				if w := strings.Join(m.Info[field], "\n"); got != w || got == "" {
					t.Errorf("%s = %q, .modinfo has %q", field, got, w)
				}
			}
			if !m.InTree {
				t.Error("intree=Y not seen")
			}
			if got, want := strings.Contains(m.VermagicFlags(), "modversions"), c.versions; got != want {
				t.Errorf("vermagic %q: modversions flag %v, fixture has versions %v", m.Vermagic, got, want)
			}

			// Signature against kmod, which decodes the PKCS#7 trailer.
			sig, _ := kmod(t, "modinfo", "-F", "sig_id", oracle)
			if got := strings.TrimSpace(sig) == "PKCS#7"; got != m.Signed {
				t.Errorf("Signed %v, modinfo sig_id %q", m.Signed, sig)
			}

			// A compressed or signed file parses like the file it was made from.
			if c.plain != "" {
				orig, err := Open(filepath.Join(fixtures, c.plain))
				if err != nil {
					t.Fatal(err)
				}
				a, b := *m, *orig
				a.Path, a.Compression, a.Signed = "", "", false
				b.Path, b.Compression, b.Signed = "", "", false
				if !reflect.DeepEqual(a, b) {
					t.Errorf("differs from %s:\n%+v\n%+v", c.plain, a, b)
				}
			}

			// Extended modversions: fixture.c's values; the loader then checks only these.
			if c.ext {
				if !reflect.DeepEqual(m.ExtVersions, wantExt) || !reflect.DeepEqual(m.Modversions(), wantExt) {
					t.Errorf("ext versions %v, Modversions %v", m.ExtVersions, m.Modversions())
				}
			} else if m.ExtVersions != nil || !reflect.DeepEqual(m.Modversions(), m.Versions) {
				t.Errorf("unexpected ext versions %v", m.ExtVersions)
			}

			// Exports (a module built without modversions has no CRCs) and undefined symbols.
			if w := wantExports(c.versions); !reflect.DeepEqual(m.Exports, w) {
				t.Errorf("exports\n got %+v\nwant %+v", m.Exports, w)
			}
			if !reflect.DeepEqual(m.Undefined, wantUndefined) {
				t.Errorf("undefined %+v", m.Undefined)
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
			check := func(how string, m *Module, err error) {
				t.Helper()
				if err == nil || m != nil {
					t.Fatalf("%s: no error for %s", how, file)
				}
				msg := err.Error()
				if !strings.Contains(msg, p) || !strings.Contains(msg, cause) || strings.Contains(msg, "\n") {
					t.Fatalf("%s: error %q: want one line naming %s and %q", how, msg, p, cause)
				}
				notModule := strings.HasPrefix(file, "bad-") && !strings.HasSuffix(file, ".xz")
				if errors.Is(err, ErrNotModule) != notModule {
					t.Fatalf("%s: %v: errors.Is(ErrNotModule) = %v", how, err, !notModule)
				}
			}
			m, err := Open(p)
			check("Open", m, err)
			if data, err := os.ReadFile(p); err == nil {
				m, err := Parse(p, data)
				check("Parse", m, err)
			}
		})
	}
}

// TestNotModuleHeaders: a few hand-made ELF headers are refused as not modules, never parsed.
func TestNotModuleHeaders(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join(fixtures, "x86_64.ko"))
	if err != nil {
		t.Fatal(err)
	}
	noModinfo := bytes.Clone(plain)
	copy(noModinfo[bytes.Index(noModinfo, []byte(".modinfo\x00")):], ".nodinfo") // renamed section
	for name, data := range map[string][]byte{
		"magic only":  []byte("\x7fELF"),
		"no .modinfo": noModinfo,
	} {
		m, err := Parse(name, data)
		if m != nil || !errors.Is(err, ErrNotModule) || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestParseEqualsOpen: Parse on the bytes and Open on the file (which maps it) agree.
func TestParseEqualsOpen(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.ko*"))
	for _, p := range files {
		a, errA := Open(p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, errB := Parse(p, data)
		if (errA == nil) != (errB == nil) || (errA == nil && !reflect.DeepEqual(a, b)) {
			t.Errorf("%s: Open %v / Parse %v differ", p, errA, errB)
		}
	}
}
