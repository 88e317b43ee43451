// Package rootfs confines every file access under an alternate root (--root DIR) to that root.
//
// A root holds absolute symlinks meant relative to itself (lib/modules/K/build ->
// /usr/src/kernels/K, a RHEL weak-updates link -> /lib/modules/OLD/extra/x.ko), and it may
// hold hostile ones (weak-updates -> /etc, x.ko -> /etc/passwd, a FIFO named x.ko). Root
// resolves each path with chroot semantics, then performs the operation through os.Root, whose
// openat-based resolution refuses anything that leads outside even if the tree changes in
// between. Contents are read only from regular files (Open refuses FIFOs and devices without
// blocking); files are replaced atomically (WriteAtomic); paths handed to external tools that
// resolve by the host's rules (depmod -b, dracut) are checked to land in the same place
// (ToolPath).
package rootfs
