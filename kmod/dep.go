package kmod

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// Dep is a kernel's modules.dep: which module file modprobe loads for a name, and the files
// it loads first.
type Dep struct {
	Modules []DepModule    // one per line, in the file's order
	byName  map[string]int // module name → index in Modules of its first line
}

// DepModule is one line of modules.dep, "path: needed needed ...". Paths are as depmod wrote
// them: relative to the kernel's module directory, or absolute (from the root); see Path.
type DepModule struct {
	Path  string   // the module file
	Name  string   // its module name (ModuleName)
	Needs []string // the files it needs loaded first, in load order (the deepest last)
}

// Lookup returns the line of the module name (normalized, see ModuleName): the first one, as
// modprobe takes the first it finds.
func (d *Dep) Lookup(name string) (DepModule, bool) {
	if d == nil {
		return DepModule{}, false
	}
	i, ok := d.byName[Normalize(name)]
	if !ok {
		return DepModule{}, false
	}
	return d.Modules[i], true
}

// SyntaxError is a line of modules.dep that is not "path: needed ...", or cannot be read as
// a line (Err: longer than any real one).
type SyntaxError struct {
	Line int    // 1-based
	Text string // the line, trimmed
	Err  error
}

func (e *SyntaxError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d: %q is not \"module: deps\"", e.Line, e.Text)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// maxLine bounds one line of modules.dep: a real one is a few KB.
const maxLine = 16 << 20

// ParseDep parses the text of a modules.dep. Blank lines and "#" comments are skipped (depmod
// writes neither); any other line without a path before a ':' is a *SyntaxError, the only
// error it returns.
func ParseDep(data []byte) (*Dep, error) {
	d := &Dep{byName: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(t, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" {
			return nil, &SyntaxError{Line: line, Text: t}
		}
		m := DepModule{Path: mod, Name: ModuleName(mod), Needs: strings.Fields(rest)}
		if m.Needs == nil {
			m.Needs = []string{}
		}
		if _, dup := d.byName[m.Name]; !dup && m.Name != "" {
			d.byName[m.Name] = len(d.Modules)
		}
		d.Modules = append(d.Modules, m)
	}
	if err := sc.Err(); err != nil {
		return nil, &SyntaxError{Line: line + 1, Err: err}
	}
	return d, nil
}

// ReadDep reads and parses kernel's modules.dep under root, inside the root (rootfs: links
// followed as in a chroot, a regular file only, so a FIFO never blocks). A file that cannot
// be read is the error of rootfs (fs.ErrNotExist when there is none); a malformed one is
// "FILE: line N: ...", wrapping a *SyntaxError.
func ReadDep(root, kernel string) (*Dep, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(ModulesDir(root, kernel), "modules.dep")
	data, err := r.ReadFile(p)
	if err != nil {
		return nil, err
	}
	d, err := ParseDep(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return d, nil
}

// DepPath returns the host path of p, a path of kernel's modules.dep under root (see DepRel).
func DepPath(root, kernel, p string) string { return filepath.Join(root, DepRel(kernel, p)) }

// DepRel returns p, a path of kernel's modules.dep, relative to the root: modprobe takes an
// absolute one from the root, a relative one from the kernel's module directory.
func DepRel(kernel, p string) string {
	if filepath.IsAbs(p) {
		return strings.TrimPrefix(filepath.Clean(p), "/")
	}
	return filepath.Join(ModulesRel, kernel, p)
}
