// Package rootfs resolves paths inside an alternate root (--root DIR), where absolute
// symlinks such as lib/modules/K/build -> /usr/src/kernels/K or a RHEL weak-updates link
// -> /lib/modules/OLD/extra/x.ko must be read relative to DIR, never the host.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrEscapes is wrapped when a path or a symlink on it leads outside the root.
var ErrEscapes = errors.New("leads outside the root")

// maxLinks bounds symlink hops, as the kernel's MAXSYMLINKS does.
const maxLinks = 40

// Resolve returns the host path that rel (a path relative to root, or absolute meaning
// relative to root) names once every symlink on it is followed inside root. The final
// component need not exist; a dangling link resolves to the path it points at.
func Resolve(root, rel string) (string, error) {
	root = filepath.Clean(root)
	todo := splitPath(rel)
	var done []string // resolved components below root
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case ".", "":
			continue
		case "..":
			if len(done) == 0 {
				return "", fmt.Errorf("%s: %w", rel, ErrEscapes)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := filepath.Join(append([]string{root}, append(done, c)...)...)
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = nil
		}
		todo = append(splitPath(target), todo...)
	}
	return filepath.Join(append([]string{root}, done...)...), nil
}

func splitPath(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// Within reports whether path (a host path) lies inside root.
func Within(root, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
