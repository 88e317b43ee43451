package module

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/internal/safeelf"
)

// Reading the ELF file: the signature trailer, then the sections the loader reads.

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
