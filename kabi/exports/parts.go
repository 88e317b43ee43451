package exports

import (
	"bytes"
	"debug/elf"
	"strings"

	"github.com/kabiguard/kabiguard/internal/safeelf"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// The pieces of a derivation, for callers that hold a kernel's files rather than a root: a
// forecast reads them from a package as it streams past, and never unpacks it.

// ImageExports returns vmlinux's exports, by symbol, from the bytes of a kernel image
// (vmlinuz), and how the image was read ("bzImage, xz payload", ...).
func ImageExports(file []byte) (map[string]symvers.Export, string, error) {
	img, err := Decode(file)
	if err != nil {
		return nil, "", err
	}
	es, err := vmlinuxTables(img)
	if err != nil {
		return nil, img.Form, err
	}
	out := make(map[string]symvers.Export, len(es))
	for _, e := range es {
		out[e.name] = e.export()
	}
	return out, img.Form, nil
}

// ModuleExports returns the exports of an in-tree module parsed from the file at rel, its path
// below lib/modules/K/kernel/ ("drivers/net/tun.ko.xz"): the module column is rel without its
// suffix, as modpost writes it.
func ModuleExports(m *module.Module, rel string) map[string]symvers.Export {
	col := moduleStem(rel)
	if col == "" {
		col = rel
	}
	out := make(map[string]symvers.Export, len(m.Exports))
	for _, e := range m.Exports {
		out[e.Name] = entry{name: e.Name, namespace: e.Namespace, crc: e.CRC, gpl: e.GPLOnly, module: col}.export()
	}
	return out
}

// MayExport reports whether the module in raw (an uncompressed ELF file) may export one of
// wanted, from its section headers and __ksymtab_strings alone, without reading its symbol
// table: a forecast uses it to parse only the in-tree modules that matter to the host's
// external modules. false means the module surely exports none of them: it has no export
// table, or none of its export names (and namespaces, which share the section) is wanted. A
// file whose headers cannot be read returns the error, so that it is not silently skipped.
func MayExport(raw []byte, wanted map[string]bool) (bool, error) {
	f, err := safeelf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return false, err
	}
	var table bool
	var names []byte
	for _, s := range f.Sections {
		switch {
		case s.Name == secStrings:
			end := s.Offset + s.Size
			if s.Type == elf.SHT_NOBITS || end < s.Offset || end > uint64(len(raw)) {
				return true, nil // unusual: let the full parse judge it
			}
			names = raw[s.Offset:end]
		case strings.HasPrefix(s.Name, secKsymtab):
			table = true
		}
	}
	switch {
	case !table:
		return false, nil
	case names == nil:
		return true, nil // export tables without the names' section: read it all
	}
	for len(names) > 0 {
		name, rest, _ := bytes.Cut(names, []byte{0})
		if len(name) > 0 && wanted[string(name)] { // string(...) in a map index does not allocate
			return true, nil
		}
		names = rest
	}
	return false, nil
}
