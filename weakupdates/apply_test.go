package weakupdates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// TestRemoveLeavesAdminDirs: removing a link removes the directories that removal left empty
// below weak-updates/, and nothing of the admin's: weak-updates/ itself, a directory with
// anything left in it, an empty directory elsewhere, a symlinked directory on the link's path,
// the directories of a link that is not below weak-updates/.
func TestRemoveLeavesAdminDirs(t *testing.T) {
	const k = "lib/modules/" + k53 + "/"
	const wu = k + "weak-updates/"
	cases := []struct {
		name  string
		tree  []string // "d DIR", "f FILE", "l LINK TARGET", relative to the root
		link  string   // the link Remove removes
		gone  []string
		stays []string
	}{
		{name: "its own directory", tree: []string{"l " + wu + "foo/x.ko ../../extra/x.ko"},
			link: wu + "foo/x.ko", gone: []string{wu + "foo"}, stays: []string{wu}},
		{name: "every directory it emptied", tree: []string{"l " + wu + "a/b/x.ko ../../../extra/x.ko"},
			link: wu + "a/b/x.ko", gone: []string{wu + "a/b", wu + "a"}, stays: []string{wu}},
		{name: "weak-updates itself", tree: []string{"l " + wu + "x.ko ../extra/x.ko"},
			link: wu + "x.ko", stays: []string{wu}},
		{name: "a file left beside it", tree: []string{"l " + wu + "foo/x.ko ../../extra/x.ko", "f " + wu + "foo/README"},
			link: wu + "foo/x.ko", stays: []string{wu + "foo/README"}},
		{name: "an empty directory beside it", tree: []string{"l " + wu + "foo/x.ko ../../extra/x.ko", "d " + wu + "foo/keep"},
			link: wu + "foo/x.ko", stays: []string{wu + "foo/keep"}},
		{name: "an empty directory elsewhere", tree: []string{"l " + wu + "foo/x.ko ../../extra/x.ko", "d " + wu + "bar"},
			link: wu + "foo/x.ko", gone: []string{wu + "foo"}, stays: []string{wu + "bar"}},
		{name: "a symlinked directory on the path",
			tree: []string{"d opt/mods", "l " + wu + "foo ../../../../opt/mods", "l opt/mods/x.ko /" + k + "extra/x.ko"},
			link: wu + "foo/x.ko", gone: []string{"opt/mods/x.ko"}, stays: []string{wu + "foo", "opt/mods"}},
		{name: "a link not below weak-updates", tree: []string{"l " + k + "extra/foo/x.ko ../x.ko"},
			link: k + "extra/foo/x.ko", stays: []string{k + "extra/foo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, spec := range tc.tree {
				f := strings.Fields(spec)
				p := filepath.Join(root, f[1])
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				var err error
				switch f[0] {
				case "d":
					err = os.Mkdir(p, 0o755)
				case "f":
					err = os.WriteFile(p, []byte("admin's\n"), 0o644)
				case "l":
					err = os.Symlink(f[2], p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			r, err := rootfs.At(root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := applyOne(r, Change{Kernel: k53, Op: Remove, Link: filepath.Join(root, tc.link)}); err != nil {
				t.Fatal(err)
			}
			for _, p := range append([]string{tc.link}, tc.gone...) {
				if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("%s: still there (%v)", p, err)
				}
			}
			for _, p := range tc.stays {
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
		})
	}
}
