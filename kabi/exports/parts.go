package exports

import (
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
