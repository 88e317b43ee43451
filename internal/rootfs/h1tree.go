package rootfs

import (
	"io/fs"
	"os"
	"syscall"
)

// OpenRW opens p for reading and writing, creating it (perm) when it does not exist: a lock
// file or a marker that must stay in place. Like Open, it refuses anything but a regular file
// without blocking (O_NONBLOCK), so a FIFO planted under the name cannot hang the caller.
func (r *Root) OpenRW(p string, perm fs.FileMode) (*os.File, error) {
	n, err := r.parent(p)
	if err != nil {
		return nil, err
	}
	f, err := r.r.OpenFile(n, os.O_RDWR|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOCTTY, perm)
	if err != nil {
		return nil, hostErr(p, err)
	}
	return regularOnly(f, p)
}
