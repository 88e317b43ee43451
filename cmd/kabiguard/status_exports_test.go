package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
)

// TestStatusAndHookSayWhereExportsCameFrom: on a root with one real kernel that has its
// headers' Module.symvers and one that has none, `status` (table and --json) and `hook add
// --verbose` name, for each kernel, the symvers file or the image and the number of in-tree
// modules its exports were derived from.
func TestStatusAndHookSayWhereExportsCameFrom(t *testing.T) {
	old, cur := testkit.FetchKernel(t, "6.1.0-54"), testkit.FetchKernel(t, "6.1.0-55")
	root := testkit.NewRoot(t, old, cur)
	if err := os.RemoveAll(filepath.Join(root, "usr", "src", "linux-headers-"+cur.Release)); err != nil {
		t.Fatal(err)
	}
	ext := firstModule(t, filepath.Join(old.ModulesDir(), "kernel", "drivers", "net", "ethernet"))
	testkit.Install(t, root, old.Release, "extra/"+filepath.Base(ext), ext)
	testkit.Depmod(t, root, old.Release)

	oldSymvers, err := symvers.Find(root, old.Release)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := symvers.Find(root, cur.Release); err == nil {
		t.Fatalf("%s still has a symvers file", cur.Release)
	}
	// A derivation reads vmlinux and the in-tree modules that export a symbol it is asked
	// for (modules.symbols names them): at least one here, at most the whole tree.
	derived := regexp.MustCompile("^exports derived from " + regexp.QuoteMeta(filepath.Join(root, "boot", "vmlinuz-"+cur.Release)) + " and ([0-9]+) in-tree modules?$")
	total := countModules(t, filepath.Join(kmod.ModulesDir(root, cur.Release), "kernel"))
	want := map[string]func(string) bool{
		old.Release: func(s string) bool { return s == "exports from "+oldSymvers },
		cur.Release: func(s string) bool {
			m := derived.FindStringSubmatch(s)
			if m == nil {
				return false
			}
			n, _ := strconv.Atoi(m[1])
			return n >= 1 && n <= total
		},
	}

	text := kabiguard(t, "status", "--root", root)
	if text.code != exitOK {
		t.Fatalf("status: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}
	printed := map[string]string{} // release -> its line of the EXPORTS table
	for _, l := range strings.Split(text.stdout, "\n") {
		if rel, rest, ok := strings.Cut(l, " "); ok && want[rel] != nil && strings.HasPrefix(strings.TrimSpace(rest), "exports ") {
			printed[rel] = strings.TrimSpace(rest)
		}
	}
	for rel, ok := range want {
		if !ok(printed[rel]) {
			t.Errorf("status prints %q for %s:\n%s", printed[rel], rel, text.stdout)
		}
	}

	js := kabiguard(t, "status", "--root", root, "--json")
	var rows []struct{ Kernel, Module, Exports string }
	if err := json.Unmarshal([]byte(js.stdout), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js.stdout)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Kernel] = true
		if r.Exports != printed[r.Kernel] {
			t.Errorf("status --json: %s %s: exports %q, the table says %q", r.Kernel, r.Module, r.Exports, printed[r.Kernel])
		}
	}
	if len(seen) != 2 {
		t.Errorf("status --json has rows of %v, want both kernels", seen)
	}

	hook := kabiguard(t, "hook", "add", cur.Release, "--root", root, "--verbose", "--no-initramfs")
	if hook.code != exitOK {
		t.Fatalf("hook add: exit %d\n%s%s", hook.code, hook.stdout, hook.stderr)
	}
	for rel, ok := range want {
		var line string
		for _, l := range strings.Split(hook.stdout, "\n") {
			if s, found := strings.CutPrefix(l, "kabiguard: "+rel+": "); found {
				line = s
			}
		}
		if !ok(line) {
			t.Errorf("hook add --verbose prints %q for %s:\n%s", line, rel, hook.stdout)
		}
	}
}

func firstModule(t *testing.T, dir string) string {
	t.Helper()
	var first string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && first == "" && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			first = p
		}
		return err
	})
	if first == "" {
		t.Fatalf("no module under %s", dir)
	}
	return first
}

func countModules(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && kmod.IsModule(p) {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
