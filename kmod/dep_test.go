package kmod

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDep(t *testing.T) {
	for _, c := range []struct {
		name    string
		text    string
		paths   []string          // every line's module path, in order
		lookup  map[string]string // module name → path Lookup finds ("" for none)
		needs   map[string][]string
		errLine int // >0: a *SyntaxError on that line
	}{
		{
			name:   "relative",
			text:   "kernel/drivers/c-d.ko.zst: kernel/fs/b.ko.xz kernel/fs/a.ko\nkernel/fs/b.ko.xz:\nkernel/fs/a.ko:\n",
			paths:  []string{"kernel/drivers/c-d.ko.zst", "kernel/fs/b.ko.xz", "kernel/fs/a.ko"},
			lookup: map[string]string{"c_d": "kernel/drivers/c-d.ko.zst", "c-d": "kernel/drivers/c-d.ko.zst", "a": "kernel/fs/a.ko", "e": ""},
			needs:  map[string][]string{"c_d": {"kernel/fs/b.ko.xz", "kernel/fs/a.ko"}, "a": {}},
		},
		{
			name:   "absolute",
			text:   "/lib/modules/K/extra/drbd.ko.xz: /lib/modules/K/kernel/lib/libcrc32c.ko.xz\n/lib/modules/K/kernel/lib/libcrc32c.ko.xz:\n",
			paths:  []string{"/lib/modules/K/extra/drbd.ko.xz", "/lib/modules/K/kernel/lib/libcrc32c.ko.xz"},
			lookup: map[string]string{"drbd": "/lib/modules/K/extra/drbd.ko.xz", "libcrc32c": "/lib/modules/K/kernel/lib/libcrc32c.ko.xz"},
			needs:  map[string][]string{"drbd": {"/lib/modules/K/kernel/lib/libcrc32c.ko.xz"}},
		},
		{
			name:   "first line of a name wins, as in modprobe",
			text:   "updates/x.ko:\nweak-updates/x.ko: kernel/y.ko\n  \n# a comment\n",
			paths:  []string{"updates/x.ko", "weak-updates/x.ko"},
			lookup: map[string]string{"x": "updates/x.ko"},
			needs:  map[string][]string{"x": {}},
		},
		{
			name:  "spaces and tabs around the parts",
			text:  "  extra/a.ko :\tkernel/b.ko  kernel/c.ko \n",
			paths: []string{"extra/a.ko"},
			needs: map[string][]string{"a": {"kernel/b.ko", "kernel/c.ko"}},
		},
		{name: "empty", text: "", paths: nil},
		{name: "a line without ':'", text: "kernel/a.ko:\nkernel/b.ko kernel/c.ko\n", errLine: 2},
		{name: "a line without a path", text: "\n: kernel/a.ko\n", errLine: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseDep([]byte(c.text))
			if c.errLine > 0 {
				var se *SyntaxError
				if !errors.As(err, &se) || se.Line != c.errLine {
					t.Fatalf("err %v, want a *SyntaxError on line %d", err, c.errLine)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, m := range d.Modules {
				paths = append(paths, m.Path)
			}
			if !reflect.DeepEqual(paths, c.paths) {
				t.Errorf("paths %q, want %q", paths, c.paths)
			}
			for name, want := range c.lookup {
				m, ok := d.Lookup(name)
				if ok != (want != "") || m.Path != want {
					t.Errorf("Lookup(%q) = %q %v, want %q", name, m.Path, ok, want)
				}
			}
			for name, want := range c.needs {
				if m, _ := d.Lookup(name); !reflect.DeepEqual(m.Needs, want) {
					t.Errorf("%s needs %q, want %q", name, m.Needs, want)
				}
			}
		})
	}
}

func TestParseDepLongLine(t *testing.T) {
	_, err := ParseDep([]byte("a.ko:\nb.ko: " + strings.Repeat("x", maxLine) + "\n"))
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || se.Err == nil {
		t.Fatalf("err %v, want a *SyntaxError on line 2 with its cause", err)
	}
}

func TestDepPath(t *testing.T) {
	for _, c := range []struct{ root, p, rel, host string }{
		{"/r", "kernel/fs/a.ko", "lib/modules/K/kernel/fs/a.ko", "/r/lib/modules/K/kernel/fs/a.ko"},
		{"/r", "/lib/modules/K/extra/b.ko", "lib/modules/K/extra/b.ko", "/r/lib/modules/K/extra/b.ko"},
		{"/", "/opt/c.ko", "opt/c.ko", "/opt/c.ko"},
		{"/r", "//opt/../opt/c.ko", "opt/c.ko", "/r/opt/c.ko"},
	} {
		if got := DepRel("K", c.p); got != c.rel {
			t.Errorf("DepRel(%q) = %q, want %q", c.p, got, c.rel)
		}
		if got := DepPath(c.root, "K", c.p); got != c.host {
			t.Errorf("DepPath(%q, %q) = %q, want %q", c.root, c.p, got, c.host)
		}
	}
}

// TestReadDep reads a kernel's modules.dep inside the root: a missing one is fs.ErrNotExist,
// a malformed one names the file, a symlink to an absolute path means the root's file.
func TestReadDep(t *testing.T) {
	root := t.TempDir()
	dir := ModulesDir(root, "K")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDep(root, "K"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v, want fs.ErrNotExist", err)
	}
	dep := filepath.Join(dir, "modules.dep")
	if err := os.WriteFile(dep, []byte("kernel/a.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var se *SyntaxError
	if _, err := ReadDep(root, "K"); !errors.As(err, &se) || !strings.HasPrefix(err.Error(), dep+": line 1: ") {
		t.Errorf("malformed: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "elsewhere.dep"), []byte("extra/x.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(dep)
	if err := os.Symlink("/elsewhere.dep", dep); err != nil {
		t.Fatal(err)
	}
	d, err := ReadDep(root, "K")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := d.Lookup("x"); !ok || m.Path != "extra/x.ko" {
		t.Errorf("through a symlink inside the root: %+v %v", m, ok)
	}
}

// FuzzParseDep: whatever modules.dep says, parsing ends without a crash; every line it keeps
// has a path, Lookup finds each module name's first line, and a refusal is a *SyntaxError.
func FuzzParseDep(f *testing.F) {
	f.Add([]byte("extra/drbd.ko.xz: kernel/lib/libcrc32c.ko.xz\nkernel/lib/libcrc32c.ko.xz:\n"))
	f.Add([]byte("/lib/modules/K/a.ko: /lib/modules/K/b.ko\n# c\n\n"))
	f.Add([]byte("a.ko b.ko\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDep(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line < 1 {
				t.Fatalf("error %v is not a *SyntaxError with a line", err)
			}
			return
		}
		first := map[string]string{}
		for _, m := range d.Modules {
			if m.Path == "" || m.Needs == nil || m.Name != ModuleName(m.Path) {
				t.Fatalf("line %+v", m)
			}
			if _, ok := first[m.Name]; !ok && m.Name != "" {
				first[m.Name] = m.Path
			}
		}
		for name, p := range first {
			if m, ok := d.Lookup(name); !ok || m.Path != p {
				t.Fatalf("Lookup(%q) = %q %v, want %q", name, m.Path, ok, p)
			}
		}
	})
}
