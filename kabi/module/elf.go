// Package module reads what the kernel's loader and kmod read from a module file: .modinfo,
// the symbol versions it was built against (__versions, or the extended tables), the symbols it
// exports with their CRCs and namespaces, the size of its struct module, and whether a
// signature is appended. Every field is read in one pass over the file.
//
// Layouts follow the kernel's include/linux/module.h, include/linux/export-internal.h,
// include/linux/module_signature.h and scripts/mod/modpost.c; see
// ../shared/reference/libraries-and-formats.md §5 for the facts and their citations.
package module

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/safeelf"
)

// Symbol is a symbol name with the CRC of its prototype (genksyms or gendwarfksyms).
type Symbol struct {
	Name string `json:"symbol"`
	CRC  uint32 `json:"crc"`
}

// Export is a symbol the module itself exports to others.
type Export struct {
	Name      string `json:"symbol"`
	CRC       uint32 `json:"crc"`
	HasCRC    bool   `json:"has_crc"`             // a module built without modversions exports no CRCs
	Namespace string `json:"namespace,omitempty"` // EXPORT_SYMBOL_NS
	GPLOnly   bool   `json:"gpl_only"`
}

// Undefined is a symbol the module needs from the kernel or another module.
type Undefined struct {
	Name string
	Weak bool // a weak reference may stay unresolved at load time
}

// Module is everything the compatibility verdict needs from one module file.
type Module struct {
	Path        string
	Compression compression.Format
	Class       elf.Class
	ByteOrder   binary.ByteOrder
	Machine     elf.Machine

	// From .modinfo.
	Name       string
	Vermagic   string
	License    string
	SrcVersion string
	Depends    []string
	ImportNS   []string
	InTree     bool
	Info       map[string][]string // every key, values in file order

	// Versions is the __versions table in file order, as `modprobe --dump-modversions` prints it.
	Versions []Symbol
	// ExtVersions is the extended table (__version_ext_names/__version_ext_crcs, Linux 6.14+);
	// nil when the module has none. When present, the loader checks only this table.
	ExtVersions []Symbol

	Exports   []Export    // sorted by name
	Undefined []Undefined // sorted by name

	ThisModuleSize uint64 // size of .gnu.linkonce.this_module: sizeof(struct module) at build time
	Signed         bool   // a "~Module signature appended~" trailer is present
}

// Modversions returns the symbol versions the loader checks: the extended table when the
// module has one, the __versions table otherwise.
func (m *Module) Modversions() []Symbol {
	if m.ExtVersions != nil {
		return m.ExtVersions
	}
	return m.Versions
}

// HasModversions reports whether the module carries symbol versions at all. A module without
// them loads only into the exact kernel release it was built for.
func (m *Module) HasModversions() bool {
	return len(m.Versions) > 0 || m.ExtVersions != nil
}

// VermagicRelease is the kernel release the module was built for: vermagic's first word.
func (m *Module) VermagicRelease() string {
	release, _, _ := strings.Cut(strings.TrimSpace(m.Vermagic), " ")
	return release
}

// VermagicFlags is vermagic after the release ("SMP preempt mod_unload modversions"),
// which the loader compares exactly for a versioned module.
func (m *Module) VermagicFlags() string {
	return vermagicFlags(m.Vermagic)
}

func vermagicFlags(v string) string {
	_, flags, _ := strings.Cut(strings.TrimSpace(v), " ")
	return strings.Join(strings.Fields(flags), " ")
}

// VermagicFlagsOf returns the flags part of a vermagic string.
func VermagicFlagsOf(vermagic string) string { return vermagicFlags(vermagic) }

// Open reads and parses the module file at path, decompressing .ko.gz, .ko.xz and .ko.zst
// content in process. Errors name the file. Only a regular file is read: a FIFO or device
// named x.ko is refused (rootfs.ErrNotRegular) without blocking.
func Open(path string) (*Module, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return OpenFile(f, path)
}

// OpenFile parses the module in f, a file the caller opened (through rootfs.Root.Open, so
// that it lies inside a root); path names it in errors and in Module.Path. f stays open.
// Anything but a regular file is refused with rootfs.ErrNotRegular, never read.
//
// The file is mapped, not read: scanning a 4000-module tree then copies only the sections
// the parser needs. Everything the Module holds is copied out of the mapping before it goes.
func OpenFile(f *os.File, path string) (m *Module, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, rootfs.ErrNotRegular, rootfs.Kind(fi.Mode()))
	}
	if fi.Size() > 1<<30 {
		return nil, fmt.Errorf("%s: %d bytes: too large for a module", path, fi.Size())
	}
	if fi.Size() == 0 {
		return Parse(path, nil) // nothing to map; the parser names what is missing
	}
	raw, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Munmap(raw)
	// A file truncated while mapped faults (SIGBUS) on access: make that an error, not a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%s: file changed while being read: %v", path, r)
		}
	}()
	return Parse(path, raw)
}

// Parse parses module file content; path is used for Path and in error messages.
func Parse(path string, raw []byte) (*Module, error) {
	m, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

var elfMagic = []byte{0x7f, 'E', 'L', 'F'}

// ErrNotModule is wrapped by errors for files that are not kernel modules.
var ErrNotModule = errors.New("not a kernel module")

func parse(raw []byte) (*Module, error) {
	m := &Module{Compression: compression.None}
	if !bytes.HasPrefix(raw, elfMagic) {
		f, ok := compression.Detect(raw)
		if !ok {
			return nil, fmt.Errorf("%w: neither ELF nor a known compression (starts with % x)", ErrNotModule, head(raw))
		}
		plain, _, err := compression.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("corrupt %s data: %w", f, err)
		}
		if !bytes.HasPrefix(plain, elfMagic) {
			return nil, fmt.Errorf("%w: %s data does not hold an ELF file (starts with % x)", ErrNotModule, f, head(plain))
		}
		m.Compression = f
		raw = plain
	}
	raw, m.Signed = stripSignature(raw)

	f, err := safeelf.NewFile(bytes.NewReader(raw))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: truncated ELF file: a header or table lies past the end of its %d bytes", ErrNotModule, len(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotModule, err)
	}
	if f.Type != elf.ET_REL {
		return nil, fmt.Errorf("%w: ELF type is %s, modules are ET_REL", ErrNotModule, f.Type)
	}
	m.Class, m.ByteOrder, m.Machine = f.Class, f.ByteOrder, f.Machine

	r := reader{f: f, m: m}
	if err := r.read(); err != nil {
		return nil, err
	}
	return m, nil
}

func head(b []byte) []byte {
	if len(b) > 4 {
		return b[:4]
	}
	return b
}

// Signature trailer: [ELF][signature][struct module_signature (12 bytes)][magic (28 bytes)].
const (
	sigMagic   = "~Module signature appended~\n"
	sigInfoLen = 12
)

// stripSignature returns the ELF part of a signed module and whether a signature was found.
// A trailer whose recorded length does not fit the file is not treated as a signature.
func stripSignature(raw []byte) ([]byte, bool) {
	if !bytes.HasSuffix(raw, []byte(sigMagic)) || len(raw) < len(sigMagic)+sigInfoLen {
		return raw, false
	}
	end := len(raw) - len(sigMagic)
	info := raw[end-sigInfoLen : end]
	sigLen := int(binary.BigEndian.Uint32(info[8:12]))
	elfEnd := end - sigInfoLen - sigLen
	if sigLen < 0 || elfEnd < 0 {
		return raw, false
	}
	return raw[:elfEnd], true
}

// reader holds the state of one pass over the ELF file.
type reader struct {
	f *safeelf.File
	m *Module
}

func (r *reader) section(name string) *elf.Section {
	return r.f.Section(name)
}

func (r *reader) data(name string) ([]byte, error) {
	s := r.section(name)
	if s == nil {
		return nil, nil
	}
	d, err := r.f.SectionData(s)
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", name, err)
	}
	return d, nil
}

func (r *reader) read() error {
	if err := r.readModinfo(); err != nil {
		return err
	}
	if err := r.readVersions(); err != nil {
		return err
	}
	if err := r.readExtVersions(); err != nil {
		return err
	}
	if s := r.section(".gnu.linkonce.this_module"); s != nil {
		r.m.ThisModuleSize = s.Size
	}
	return r.readSymbols()
}

func (r *reader) readModinfo() error {
	d, err := r.data(".modinfo")
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%w: no .modinfo section", ErrNotModule)
	}
	m := r.m
	m.Info = map[string][]string{}
	for _, kv := range bytes.Split(d, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok || k == "" {
			continue // alignment padding between entries
		}
		m.Info[k] = append(m.Info[k], v)
	}
	first := func(k string) string {
		if v := m.Info[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	m.Name = first("name")
	m.Vermagic = first("vermagic")
	m.License = first("license")
	m.SrcVersion = first("srcversion")
	m.InTree = first("intree") == "Y"
	m.ImportNS = append([]string(nil), m.Info["import_ns"]...)
	for _, d := range strings.Split(first("depends"), ",") {
		if d != "" {
			m.Depends = append(m.Depends, d)
		}
	}
	return nil
}

// readVersions reads __versions: records of 64 bytes, a CRC word of the ELF class's width in
// the file's byte order, then a NUL-terminated name filling the rest of the record.
func (r *reader) readVersions() error {
	d, err := r.data("__versions")
	if err != nil || d == nil {
		return err
	}
	const recLen = 64
	crcLen := 8
	if r.m.Class == elf.ELFCLASS32 {
		crcLen = 4
	}
	if len(d)%recLen != 0 {
		return fmt.Errorf("section __versions: size %d is not a multiple of %d", len(d), recLen)
	}
	bo := r.m.ByteOrder
	r.m.Versions = make([]Symbol, 0, len(d)/recLen)
	for off := 0; off < len(d); off += recLen {
		rec := d[off : off+recLen]
		var crc uint64
		if crcLen == 8 {
			crc = bo.Uint64(rec)
		} else {
			crc = uint64(bo.Uint32(rec))
		}
		name := cstring(rec[crcLen:])
		if name == "" {
			return fmt.Errorf("section __versions: record %d has an empty name", off/recLen)
		}
		// The loader compares the low 32 bits only (check_version compares a u32 CRC).
		r.m.Versions = append(r.m.Versions, Symbol{Name: name, CRC: uint32(crc)})
	}
	return nil
}

// readExtVersions reads the extended modversions tables: an array of 32-bit CRCs and, in the
// same order, the concatenated NUL-terminated names.
func (r *reader) readExtVersions() error {
	crcs, err := r.data("__version_ext_crcs")
	if err != nil || crcs == nil {
		return err
	}
	names, err := r.data("__version_ext_names")
	if err != nil {
		return err
	}
	if len(crcs)%4 != 0 {
		return fmt.Errorf("section __version_ext_crcs: size %d is not a multiple of 4", len(crcs))
	}
	n := len(crcs) / 4
	list := bytes.Split(bytes.TrimRight(names, "\x00"), []byte{0})
	if len(names) == 0 {
		list = nil
	}
	if len(list) != n {
		return fmt.Errorf("extended modversions: %d CRCs but %d names", n, len(list))
	}
	r.m.ExtVersions = make([]Symbol, n)
	for i := range n {
		r.m.ExtVersions[i] = Symbol{Name: string(list[i]), CRC: r.m.ByteOrder.Uint32(crcs[4*i:])}
	}
	return nil
}

// readSymbols derives exports and undefined symbols from the symbol table. Exports are
// recognised by the labels modpost and <linux/export-internal.h> emit for each exported symbol:
// __ksymtab_<sym> in __ksymtab or __ksymtab_gpl, __crc_<sym> (an offset into __kcrctab*, or an
// absolute symbol whose value is the CRC in kernels before 4.10-era relative CRCs), and
// __kstrtabns_<sym> pointing at the namespace string.
func (r *reader) readSymbols() error {
	syms, err := r.f.Symbols()
	if err != nil {
		return fmt.Errorf("symbol table: %w", err)
	}
	m := r.m
	exports := map[string]*Export{}
	crcs := map[string]uint32{}
	namespaces := map[string]string{}
	undef := map[string]bool{} // name -> weak

	for i := range syms {
		s := &syms[i]
		if s.Name == "" {
			continue
		}
		if s.Section == elf.SHN_UNDEF {
			bind := elf.ST_BIND(s.Info)
			if bind == elf.STB_GLOBAL || bind == elf.STB_WEAK {
				// A name referenced both weakly and strongly is a strong reference.
				weak, seen := undef[s.Name]
				undef[s.Name] = (!seen || weak) && bind == elf.STB_WEAK
			}
			continue
		}
		switch {
		case strings.HasPrefix(s.Name, "__ksymtab_"):
			sec := r.sectionAt(s.Section)
			if sec == nil || !strings.HasPrefix(sec.Name, "__ksymtab") || sec.Name == "__ksymtab_strings" {
				continue
			}
			name := strings.TrimPrefix(s.Name, "__ksymtab_")
			exports[name] = &Export{Name: name, GPLOnly: strings.HasSuffix(sec.Name, "_gpl")}
		case strings.HasPrefix(s.Name, "__crc_"):
			crc, ok, err := r.crcValue(s)
			if err != nil {
				return err
			}
			if ok {
				crcs[strings.TrimPrefix(s.Name, "__crc_")] = crc
			}
		case strings.HasPrefix(s.Name, "__kstrtabns_"):
			ns, err := r.stringAt(s)
			if err != nil {
				return err
			}
			namespaces[strings.TrimPrefix(s.Name, "__kstrtabns_")] = ns
		}
	}

	for name, e := range exports {
		if crc, ok := crcs[name]; ok {
			e.CRC, e.HasCRC = crc, true
		}
		e.Namespace = namespaces[name]
		m.Exports = append(m.Exports, *e)
	}
	sort.Slice(m.Exports, func(i, j int) bool { return m.Exports[i].Name < m.Exports[j].Name })
	for name, weak := range undef {
		m.Undefined = append(m.Undefined, Undefined{Name: name, Weak: weak})
	}
	sort.Slice(m.Undefined, func(i, j int) bool { return m.Undefined[i].Name < m.Undefined[j].Name })
	return nil
}

func (r *reader) sectionAt(idx elf.SectionIndex) *elf.Section {
	if int(idx) <= 0 || int(idx) >= len(r.f.Sections) {
		return nil
	}
	return r.f.Sections[idx]
}

// crcValue returns the CRC a __crc_<sym> label stands for.
func (r *reader) crcValue(s *elf.Symbol) (uint32, bool, error) {
	if s.Section == elf.SHN_ABS {
		return uint32(s.Value), true, nil
	}
	sec := r.sectionAt(s.Section)
	if sec == nil || !strings.HasPrefix(sec.Name, "__kcrctab") {
		return 0, false, nil
	}
	d, err := r.f.SectionData(sec)
	if err != nil {
		return 0, false, fmt.Errorf("section %s: %w", sec.Name, err)
	}
	if s.Value+4 > uint64(len(d)) {
		return 0, false, fmt.Errorf("section %s: %s at offset %d is past its end (%d bytes)", sec.Name, s.Name, s.Value, len(d))
	}
	return r.m.ByteOrder.Uint32(d[s.Value:]), true, nil
}

// stringAt returns the NUL-terminated string a label points at.
func (r *reader) stringAt(s *elf.Symbol) (string, error) {
	sec := r.sectionAt(s.Section)
	if sec == nil {
		return "", nil
	}
	d, err := r.f.SectionData(sec)
	if err != nil {
		return "", fmt.Errorf("section %s: %w", sec.Name, err)
	}
	if s.Value >= uint64(len(d)) {
		return "", fmt.Errorf("section %s: %s at offset %d is past its end (%d bytes)", sec.Name, s.Name, s.Value, len(d))
	}
	return cstring(d[s.Value:]), nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
