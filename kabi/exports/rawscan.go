package exports

import (
	"encoding/binary"
	"fmt"
)

// scanRaw finds the export tables of a kernel image that is not ELF (an arm64 Image: the
// kernel's code and data as loaded, with no section headers). With PREL32 entries
// ({s32 value, s32 name, s32 namespace}, each relative to its own field) no load address is
// needed: an entry is recognised where its name offset lands on a NUL-terminated identifier
// in the image, and the tables are the longest run of such 12-byte entries. __ksymtab and
// __ksymtab_gpl are adjacent and each sorted by name, so the GPL table starts where the order
// restarts; __kcrctab and __kcrctab_gpl follow them directly, a u32 per entry in the same
// order (include/asm-generic/vmlinux.lds.h). Names may share bytes with the tail of a longer
// string, so nothing is assumed about the byte before a name.
func scanRaw(data []byte) ([]entry, error) {
	le := binary.LittleEndian
	n := len(data)
	target := func(field int) (int, bool) {
		t := field + int(int32(le.Uint32(data[field:])))
		return t, t >= 0 && t < n
	}
	name := func(i int) (string, bool) {
		t, ok := target(i + 4)
		if !ok {
			return "", false
		}
		end := t
		for end < n && end-t < 512 && isIdent(data[end]) {
			end++
		}
		if end == t || end >= n || data[end] != 0 || data[t] >= '0' && data[t] <= '9' {
			return "", false
		}
		return string(data[t:end]), true
	}
	namespace := func(i int) (string, bool) {
		if le.Uint32(data[i+8:]) == 0 {
			return "", true
		}
		t, ok := target(i + 8)
		if !ok {
			return "", false
		}
		end := t
		for end < n && end-t < 512 && data[end] >= 0x21 && data[end] < 0x7f {
			end++
		}
		if end >= n || data[end] != 0 { // "" is how 6.x spells no namespace
			return "", false
		}
		return string(data[t:end]), true
	}
	valid := func(i int) bool {
		_, ok1 := name(i)
		_, ok2 := namespace(i)
		return ok1 && ok2
	}
	// run[i/4]: how many valid entries end at offset i, stepping back 12 bytes at a time.
	run := make([]int32, n/4)
	bestEnd, best := 0, int32(0)
	for i := 0; i+12 <= n; i += 4 {
		if !valid(i) {
			continue
		}
		r := int32(1)
		if i >= 12 {
			r = run[(i-12)/4] + 1
		}
		run[i/4] = r
		if r > best {
			best, bestEnd = r, i+12
		}
	}
	if best < 2 {
		return nil, fmt.Errorf("%w: no export table found in the raw image", ErrNotKernel)
	}
	start := bestEnd - int(best)*12
	count := int(best)
	if bestEnd+4*count > n {
		return nil, fmt.Errorf("%w: export table at offset %d: no room for its %d CRCs", ErrTruncated, start, count)
	}
	out := make([]entry, count)
	restarts := 0
	for j := range out {
		i := start + 12*j
		out[j].name, _ = name(i)
		out[j].namespace, _ = namespace(i)
		out[j].crc = le.Uint32(data[bestEnd+4*j:])
		if j > 0 && out[j].name < out[j-1].name {
			restarts++
		}
		out[j].gpl = restarts > 0
	}
	if restarts != 1 {
		return nil, fmt.Errorf("%w: %d entries at offset %d are not two sorted tables (%d restarts of the order)", ErrNotKernel, count, start, restarts)
	}
	return out, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}
