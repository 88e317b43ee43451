// Package symvers reads a kernel's exported-symbol table (Module.symvers, /boot/symvers-K.gz)
// and finds it on a system.
//
// Three line layouts exist (scripts/mod/modpost.c over time), all tab-separated:
//
//	crc  symbol  module  export  namespace   Linux 5.6+ (namespace may be empty)
//	crc  symbol  namespace  module  export   Linux 5.4-5.6-rc (namespace third)
//	crc  symbol  module  export              before 5.4
//	crc  symbol  module                      oldest
package symvers

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// Export is one exported symbol of a kernel.
type Export struct {
	CRC       uint32
	Module    string // "vmlinux" or the in-tree module path without .ko
	GPLOnly   bool
	Namespace string
}

// Table is a kernel's exports by symbol name.
type Table struct {
	Path string // the file read, for messages
	// Exports holds every export, or, for a table from LoadWanted, the wanted ones found.
	Exports map[string]Export

	// A table from LoadWanted keeps the file to answer, by parsing it whole once, a lookup
	// of a name it was not asked for: a wrong guess of what is needed costs time, never a
	// wrong answer.
	wanted map[string]bool
	text   string
	once   sync.Once
	all    map[string]Export

	// more answers, for a table from NewTable, a lookup of a name Exports lacks.
	more func(name string) (Export, bool)
}

// NewTable returns a table of exports that were not read from a symvers file (kabi/exports
// derives them from a kernel image); path names their source in messages. more, when not nil,
// is asked for a name exports lacks, so that a table built for some wanted symbols still
// answers any lookup right. It must be safe for concurrent use.
func NewTable(path string, exports map[string]Export, more func(name string) (Export, bool)) *Table {
	return &Table{Path: path, Exports: exports, more: more}
}

// Lookup returns the export of name.
func (t *Table) Lookup(name string) (Export, bool) {
	if t.more != nil {
		if e, ok := t.Exports[name]; ok {
			return e, true
		}
		return t.more(name)
	}
	if t.wanted != nil && !t.wanted[name] {
		t.once.Do(func() { t.all, _ = parse(t.text, nil) }) // the text parsed once already
		e, ok := t.all[name]
		return e, ok
	}
	e, ok := t.Exports[name]
	return e, ok
}

// Parse reads symvers lines from r. path is used in error messages only.
func Parse(path string, r io.Reader) (*Table, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ParseBytes(path, data)
}

// ParseBytes parses a whole symvers file, which it keeps: the caller must not modify data
// afterwards. Every name is a substring of the file, so a 30000-line Module.symvers costs no
// per-line allocation and no copy, which matters when a check or a plan loads six kernels'
// tables.
func ParseBytes(path string, data []byte) (*Table, error) { return parseTable(path, data, nil) }

func parseTable(path string, data []byte, wanted map[string]bool) (*Table, error) {
	text := unsafe.String(unsafe.SliceData(data), len(data))
	exports, err := parse(text, wanted)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	if exports == nil {
		return nil, fmt.Errorf("%s: no exported symbols in file", path)
	}
	t := &Table{Path: path, Exports: exports}
	if wanted != nil {
		t.wanted, t.text = wanted, text
	}
	return t, nil
}

// parse checks every line of text and returns its exports, only those named in wanted when
// wanted is not nil; nil when the text has no export at all. Errors start with the line
// number.
func parse(text string, wanted map[string]bool) (map[string]Export, error) {
	var exports map[string]Export
	if wanted == nil {
		exports = make(map[string]Export, strings.Count(text, "\n")+1)
	} else {
		exports = make(map[string]Export, len(wanted))
	}
	line, any := 0, false
	for len(text) > 0 {
		line++
		var s string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			s, text = text[:i], text[i+1:]
		} else {
			s, text = text, ""
		}
		s = strings.TrimRight(s, "\r")
		if strings.TrimSpace(s) == "" {
			continue
		}
		name, e, err := parseLine(s)
		if err != nil {
			return nil, fmt.Errorf("%d: %w", line, err)
		}
		any = true
		if wanted == nil || wanted[name] {
			exports[name] = e
		}
	}
	if !any {
		return nil, nil
	}
	return exports, nil
}

func parseLine(s string) (string, Export, error) {
	var f [5]string
	n := 0
	for {
		i := strings.IndexByte(s, '\t')
		if n == len(f) {
			return "", Export{}, fmt.Errorf("expected 3 to 5 tab-separated fields, got more than 5")
		}
		if i < 0 {
			f[n] = s
			n++
			break
		}
		f[n], s = s[:i], s[i+1:]
		n++
	}
	if n < 3 {
		return "", Export{}, fmt.Errorf("expected 3 to 5 tab-separated fields, got %d", n)
	}
	crc, ok := parseCRC(f[0])
	if !ok {
		return "", Export{}, fmt.Errorf("bad CRC %q", f[0])
	}
	name := f[1]
	if name == "" {
		return "", Export{}, fmt.Errorf("empty symbol name")
	}
	e := Export{CRC: uint32(crc)}
	var kind string
	switch {
	case n == 5 && isNamespace(f[2]) && strings.HasPrefix(f[4], "EXPORT_"):
		e.Namespace, e.Module, kind = f[2], f[3], f[4]
	case n >= 4:
		e.Module, kind = f[2], f[3]
		if n == 5 {
			e.Namespace = f[4]
		}
	default:
		e.Module = f[2]
	}
	if kind != "" && !strings.HasPrefix(kind, "EXPORT_") {
		return "", Export{}, fmt.Errorf("bad export type %q", kind)
	}
	e.GPLOnly = strings.Contains(kind, "_GPL")
	return name, e, nil
}

// parseCRC reads modpost's "0x%08x": 0x and one to 16 hex digits, of which the CRC is the low
// 32 bits. Written out because strconv.ParseUint was a tenth of a plan's time.
func parseCRC(s string) (uint32, bool) {
	if len(s) < 3 || len(s) > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0, false
	}
	var v uint64
	for i := 2; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return uint32(v), true
}

// isNamespace tells the 5.4-era layout's third column (a namespace such as USB_STORAGE) from a
// module path (drivers/usb/storage/usb-storage) or vmlinux.
func isNamespace(s string) bool {
	if s == "" || s == "vmlinux" || strings.ContainsAny(s, "/.-") {
		return false
	}
	return strings.ToUpper(s) == s
}

// Load reads and parses a symvers file, plain or compressed (gzip, xz, zstd).
func Load(path string) (*Table, error) { return LoadWanted(path, nil) }

// LoadWanted is Load for a caller that knows which symbols it will look up: the table holds
// those (every line is still checked), which saves building a map of 30000 exports per
// kernel. A lookup of another name stays correct (see Table). wanted nil means all.
// path is a file the admin named (check --symvers): it is read as the host sees it, but only
// if it is a regular file, so a FIFO never blocks.
func LoadWanted(path string, wanted map[string]bool) (*Table, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, rootfs.ErrNotRegular, rootfs.Kind(fi.Mode()))
	}
	return parseFile(path, f, wanted)
}

// LoadIn is LoadWanted for a file below root (from Find): it is opened inside the root, every
// symlink on its path followed there, never on the host.
func LoadIn(root *rootfs.Root, path string, wanted map[string]bool) (*Table, error) {
	f, err := root.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseFile(path, f, wanted)
}

func parseFile(path string, r io.Reader, wanted map[string]bool) (*Table, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, _, err := compression.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parseTable(path, data, wanted)
}

// Candidates lists, in search order, where a kernel's symvers may live under root. RHEL puts
// it in /boot and /lib/modules/K (compressed), Debian only in the headers package.
func Candidates(root, release string) []string {
	var out []string
	for _, base := range []string{
		filepath.Join(root, "boot", "symvers-"+release),
		filepath.Join(kmod.ModulesDir(root, release), "symvers"),
	} {
		for _, ext := range []string{".xz", ".zst", ".gz", ""} {
			out = append(out, base+ext)
		}
	}
	return append(out,
		filepath.Join(kmod.ModulesDir(root, release), "build", "Module.symvers"),
		filepath.Join(root, "usr", "src", "kernels", release, "Module.symvers"),
		filepath.Join(root, "usr", "src", "linux-headers-"+release, "Module.symvers"),
	)
}

// ErrNotFound is returned by Find when no symvers exists for a kernel.
type ErrNotFound struct {
	Release string
	Tried   []string
}

func (e *ErrNotFound) Error() string {
	return fmt.Sprintf("no symvers for kernel %s (install its headers/devel package; looked for %s and %d more places)",
		e.Release, e.Tried[0], len(e.Tried)-1)
}

// Find returns the first existing symvers file of release under root, as a host path with
// every symlink on it resolved inside the root (lib/modules/K/build is an absolute symlink on
// RHEL, -> /usr/src/kernels/K: it means ROOT/usr/src/kernels/K, never the host's /usr/src).
// Only a regular file counts; read it with LoadIn.
func Find(root, release string) (string, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", err
	}
	c := Candidates(root, release)
	for _, p := range c {
		if fi, err := r.Stat(p); err == nil && fi.Mode().IsRegular() {
			if host, err := r.Resolve(p); err == nil {
				return host, nil
			}
		}
	}
	return "", &ErrNotFound{Release: release, Tried: c}
}
