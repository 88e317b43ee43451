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
