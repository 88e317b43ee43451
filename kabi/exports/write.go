package exports

import (
	"bufio"
	"cmp"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// Write prints t as a symvers file in modpost's layout since Linux 5.6, one export a line:
// crc, symbol, module ("vmlinux" or the in-tree path without .ko), export type, namespace
// (possibly empty), tab-separated. Lines are sorted by symbol, then module: modpost's own order
// is not recoverable from an image, and a sorted file diffs well against a sorted
// Module.symvers.
func Write(w io.Writer, t *symvers.Table) error {
	es := make([]entry, 0, len(t.Exports))
	for name, e := range t.Exports {
		es = append(es, entry{name: name, crc: e.CRC, module: e.Module, gpl: e.GPLOnly, namespace: e.Namespace})
	}
	return writeEntries(w, es)
}

func writeEntries(w io.Writer, es []entry) error {
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.module, b.module))
	})
	bw := bufio.NewWriter(w)
	var line []byte
	for _, e := range es {
		line = append(line[:0], "0x"...)
		crc := strconv.AppendUint(nil, uint64(e.crc), 16)
		for range 8 - len(crc) {
			line = append(line, '0')
		}
		line = append(line, crc...)
		kind := "EXPORT_SYMBOL"
		if e.gpl {
			kind = "EXPORT_SYMBOL_GPL"
		}
		for _, f := range []string{e.name, e.module, kind, e.namespace} {
			line = append(append(line, '\t'), f...)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// entries lists every export d holds.
func (d *derived) entries() []entry {
	out := append([]entry(nil), d.vmlinux...)
	for _, p := range sortedKeys(d.modules) {
		out = append(out, d.modules[p]...)
	}
	return out
}
