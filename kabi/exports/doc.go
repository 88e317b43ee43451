// Package exports derives a kernel's exported symbols (CRC, export type, namespace, module)
// from what its image package ships, for a kernel whose symvers file is not installed:
// Debian's linux-image packages never ship one, only linux-headers does.
//
// vmlinux's exports come from the kernel image (/boot/vmlinuz-K): an x86 bzImage's payload
// is located from its boot header and decompressed (xz with the x86 BCJ filter, zstd, gzip,
// lz4), and the __ksymtab*, __kcrctab* and __ksymtab_strings sections of the ELF inside are
// read; an arm64 Image, which is not ELF, is scanned for the same tables. The in-tree
// modules' exports come from the modules themselves, through kabi/module. The result is the
// symvers.Table a Module.symvers gives, so the rest of kabi uses it unchanged, with a
// provenance string for every message that names where exports came from.
//
// Only what a question needs is decoded (vmlinux once, and only the modules that export
// wanted symbols, found through depmod's modules.symbols), and results are cached per kernel
// under the root (cache.go). ../../shared/reference/exports-from-image.md has the method and
// the figures of the prototype this follows.
package exports
