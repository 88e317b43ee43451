package weakupdates

import (
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// sameFile reports whether the host paths a and b name the same file once every symlink on
// them is followed inside root. A link's Resolved path has every component resolved, a
// build's path does not: on a merged-/usr host (Debian 12, Fedora) /lib is a link to usr/lib,
// so /lib/modules/K/extra/x.ko and /usr/lib/modules/K/extra/x.ko are one file.
func sameFile(root, a, b string) bool {
	return a == b || canonical(root, a) == canonical(root, b)
}

func canonical(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return p
	}
	r, err := rootfs.Resolve(root, rel)
	if err != nil {
		return p
	}
	return r
}
