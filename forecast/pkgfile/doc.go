// Package pkgfile reads the files of a kernel package without installing it, so that a
// forecast can judge a kernel before the package manager unpacks it.
//
// A package is a Debian binary package (.deb: an ar archive holding debian-binary,
// control.tar and data.tar, the last compressed with xz, zstd, gzip or bzip2, or not at all),
// an RPM package (lead, signature and main headers, then a cpio payload compressed with xz,
// zstd or gzip, read with package initramfs's cpio reader), or a directory holding an
// unpacked package (what `dpkg -x` or `rpm2cpio | cpio -idm`
// leaves). Formats are recognised by their magic bytes, never by the file's name.
//
// Walk visits every file in archive order and hands over the contents of regular files as a
// stream: nothing is written, and a caller reads only the files it needs (decompressing the
// archive is the cost; an xz data.tar made by a multi-threaded xz, as dpkg-deb's are, is
// decoded on every core). Names are cleaned to slash-separated paths relative to the
// package root ("boot/vmlinuz-6.1.0-55-amd64"); a name that would lead outside the package
// is an error, never a file. A directory is read through internal/rootfs: its symlinks are
// reported, never followed, and only regular files are opened.
//
// Why no library: the ar container is 60-byte headers (deb(5)) and an RPM header an index of
// 16-byte entries (rpm's format.md); the Go readers of .deb files decode xz on one core, and
// go-rpmutils pulls in a cgo zstd, while internal/compression already decodes xz blocks in
// parallel and initramfs reads cpio.
package pkgfile
