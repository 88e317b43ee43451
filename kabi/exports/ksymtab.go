package exports

import (
	"bytes"
	"debug/elf"
	"fmt"

	"github.com/kabiguard/kabiguard/internal/safeelf"
)

// An entry is one exported symbol of the kernel or of an in-tree module.
type entry struct {
	name, namespace string
	crc             uint32
	gpl             bool
	module          string // modpost's module column: "vmlinux" or the in-tree path without .ko
}

// Section names of the export tables (include/asm-generic/vmlinux.lds.h).
const (
	secKsymtab    = "__ksymtab"
	secKsymtabGPL = "__ksymtab_gpl"
	secKcrctab    = "__kcrctab"
	secKcrctabGPL = "__kcrctab_gpl"
	secStrings    = "__ksymtab_strings"
)

// vmlinuxTables reads the exports of the kernel in img.
func vmlinuxTables(img *Image) ([]entry, error) {
	read := elfTables
	if img.raw {
		read = scanRaw
	}
	es, err := read(img.Data)
	for i := range es {
		es[i].module = "vmlinux"
	}
	return es, err
}

// elfTables reads the export tables of a vmlinux ELF file. A __ksymtab entry is
// struct kernel_symbol: with CONFIG_HAVE_ARCH_PREL32_RELOCATIONS (x86, arm64, ...) three s32
// offsets {value, name, namespace}, each relative to its own field's address; otherwise three
// pointers. __kcrctab* is a u32 array parallel to its table. Section addresses turn either
// form into an offset into __ksymtab_strings.
func elfTables(data []byte) ([]entry, error) {
	f, err := safeelf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: vmlinux ELF: %v", ErrNotKernel, err)
	}
	strs := f.Section(secStrings)
	if strs == nil || f.Section(secKsymtab) == nil {
		return nil, fmt.Errorf("%w: vmlinux ELF has no %s or %s section", ErrNotKernel, secKsymtab, secStrings)
	}
	sd, err := f.SectionData(strs)
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", secStrings, err)
	}
	str := func(addr uint64) (string, bool) {
		if addr < strs.Addr || addr >= strs.Addr+uint64(len(sd)) {
			return "", false
		}
		s := sd[addr-strs.Addr:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			return string(s[:i]), true
		}
		return "", false
	}
	var out []entry
	for _, t := range []struct {
		tab, crc string
		gpl      bool
	}{{secKsymtab, secKcrctab, false}, {secKsymtabGPL, secKcrctabGPL, true}} {
		es, err := readTable(f, t.tab, t.crc, str)
		if err != nil {
			return nil, err
		}
		for i := range es {
			es[i].gpl = t.gpl
		}
		out = append(out, es...)
	}
	return out, nil
}

// readTable reads one __ksymtab* section and its __kcrctab*. The entry size is the table's
// size over the CRC count; without CRCs (no CONFIG_MODVERSIONS) it is the PREL32 size and
// every CRC is 0, which is what modpost writes then.
func readTable(f *safeelf.File, tab, crcTab string, str func(uint64) (string, bool)) ([]entry, error) {
	s := f.Section(tab)
	if s == nil {
		return nil, nil
	}
	d, err := f.SectionData(s)
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", tab, err)
	}
	var crcs []byte
	if c := f.Section(crcTab); c != nil {
		if crcs, err = f.SectionData(c); err != nil {
			return nil, fmt.Errorf("section %s: %w", crcTab, err)
		}
	}
	bo := f.ByteOrder
	ptr := 8
	if f.Class == elf.ELFCLASS32 {
		ptr = 4
	}
	n := len(crcs) / 4
	size := 12
	if n > 0 {
		if len(d)%n != 0 || (len(d)/n != 12 && len(d)/n != 3*ptr) {
			return nil, fmt.Errorf("section %s: %d bytes do not hold the %d entries of %s", tab, len(d), n, crcTab)
		}
		size = len(d) / n
	} else if len(d)%size != 0 {
		return nil, fmt.Errorf("section %s: %d bytes are not a whole number of entries", tab, len(d))
	}
	// With 32-bit pointers both forms are 12 bytes: PREL32 is what every architecture Debian
	// ships uses; a name that does not resolve that way is tried as absolute.
	rel := size == 12
	word := func(off int) uint64 {
		if ptr == 4 || rel {
			return uint64(bo.Uint32(d[off:]))
		}
		return bo.Uint64(d[off:])
	}
	field := size / 3
	addr := func(i, k int, rel bool) (uint64, bool) {
		off := i*size + k*field
		v := word(off)
		if v == 0 {
			return 0, false
		}
		if rel {
			return s.Addr + uint64(off) + uint64(int64(int32(uint32(v)))), true
		}
		return v, true
	}
	out := make([]entry, len(d)/size)
	for i := range out {
		a, _ := addr(i, 1, rel)
		name, ok := str(a)
		if !ok && rel && ptr == 4 {
			rel = false
			a, _ = addr(i, 1, rel)
			name, ok = str(a)
		}
		if !ok || name == "" {
			return nil, fmt.Errorf("section %s: entry %d: name is not in %s", tab, i, secStrings)
		}
		e := entry{name: name}
		if a, ok := addr(i, 2, rel); ok {
			if e.namespace, ok = str(a); !ok {
				return nil, fmt.Errorf("section %s: entry %d (%s): namespace is not in %s", tab, i, name, secStrings)
			}
		}
		if n > 0 {
			e.crc = bo.Uint32(crcs[4*i:])
		}
		out[i] = e
	}
	return out, nil
}
