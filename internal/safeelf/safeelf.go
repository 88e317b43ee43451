// Package safeelf wraps debug/elf so that malformed input yields errors, never panics.
//
// debug/elf trusts header fields in a few places (section counts, string table offsets,
// symbol sizes) and panics on some crafted or truncated files; cilium/ebpf keeps a wrapper for
// the same reason. Every entry point here recovers and turns the panic into an error.
package safeelf

import (
	"debug/elf"
	"fmt"
	"io"
)

// File is an ELF file whose accessors cannot panic.
type File struct {
	*elf.File
}

func recoverTo(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("malformed ELF (%s): %v", what, r)
	}
}

// NewFile parses the ELF headers in r.
func NewFile(r io.ReaderAt) (f *File, err error) {
	defer recoverTo(&err, "headers")
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	return &File{ef}, nil
}

// Symbols returns the symbol table. A file without one returns (nil, nil).
func (f *File) Symbols() (syms []elf.Symbol, err error) {
	defer recoverTo(&err, "symbol table")
	syms, err = f.File.Symbols()
	if err == elf.ErrNoSymbols {
		return nil, nil
	}
	return syms, err
}

// SectionData returns the contents of s; SHT_NOBITS sections have none.
func (f *File) SectionData(s *elf.Section) (data []byte, err error) {
	defer recoverTo(&err, "section "+s.Name)
	if s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	return s.Data()
}
