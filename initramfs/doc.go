// Package initramfs reads initramfs images the way the Linux kernel unpacks them and writes
// images the kernel accepts. It knows the archive and its compression, nothing of modules.
//
// An image is a sequence of segments (init/initramfs.c: unpack_to_rootfs): uncompressed newc
// cpio archives starting at 4-aligned offsets (an early microcode cpio, typically), NUL
// padding, and compressed streams (gzip, zstd, xz, lz4 legacy, bzip2), each decompressed by
// one call and holding one or more cpio archives ended by TRAILER!!!. Later entries override
// earlier ones as they would in the kernel's rootfs.
//
// Reading: Read (or Open, for a path) parses an image into an Image: its Segments with their
// records, and the rootfs they unpack to (Entries, Lookup, Stat, Resolve, ReadFile). Entry is
// the one type for what is read, a record of an archive or a file of that rootfs; its Pos
// (segment offset in the image file, header offset in the segment's cpio stream) names the
// record in every pass over the image. Listing streams every segment once and never keeps
// file bodies; Options.Visit is handed each regular file's body as that one decompression
// passes it, and reading a file later decompresses its segment again up to the file (unless
// Options.Keep kept the streams).
//
// Writing: File is the one type for what is written. Writer writes a reproducible image from
// a list of Files; Rewrite (RewriteFile) copies an image with its last segment edited record by
// record, Edit.Decide choosing for each Entry, matched by Pos with what a Visit pass saw.
package initramfs
