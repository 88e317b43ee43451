package exports

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// moduleSuffixes are the names an in-tree module file may have (kmod's, longest first).
var moduleSuffixes = []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"}

// tree is the in-tree modules of one kernel: the files under lib/modules/K/kernel/, the only
// directory depmod and the packages reserve for modules built with the kernel.
type tree struct {
	dir    string              // host path of lib/modules/K
	files  []string            // host paths, sorted
	byName map[string][]string // module name (as modules.symbols spells it) -> files
}

func listTree(r *rootfs.Root, dir string) (*tree, error) {
	t := &tree{dir: dir, byName: map[string][]string{}}
	err := r.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == filepath.Join(dir, "kernel") {
				return fs.SkipAll // a kernel without modules: vmlinux is all there is
			}
			return err
		}
		if d.IsDir() || moduleStem(p) == "" {
			return nil
		}
		t.files = append(t.files, p)
		name := strings.ReplaceAll(filepath.Base(moduleStem(p)), "-", "_")
		t.byName[name] = append(t.byName[name], p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(t.files)
	return t, nil
}

// moduleStem is p without its module suffix, "" when p has none.
func moduleStem(p string) string {
	for _, s := range moduleSuffixes {
		if strings.HasSuffix(p, s) && len(p) > len(s) {
			return strings.TrimSuffix(p, s)
		}
	}
	return ""
}

// column is the module column modpost writes for an in-tree module file: its path below
// kernel/ without the suffix ("drivers/gpu/drm/drm").
func (t *tree) column(file string) string {
	rel, err := filepath.Rel(filepath.Join(t.dir, "kernel"), moduleStem(file))
	if err != nil {
		return moduleStem(file)
	}
	return filepath.ToSlash(rel)
}

// symbolOwners reads depmod's modules.symbols ("alias symbol:NAME MODULE"): which module
// exports which symbol, so that only those modules are opened. ok is false when the file is
// missing (depmod has not run), and every module must then be read.
func symbolOwners(r *rootfs.Root, dir string) (owners map[string][]string, ok bool, err error) {
	p := filepath.Join(dir, "modules.symbols")
	data, err := r.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	owners = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" && strings.HasPrefix(f[1], "symbol:") {
			sym := strings.TrimPrefix(f[1], "symbol:")
			owners[sym] = append(owners[sym], f[2])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", p, err)
	}
	return owners, true, nil
}

// filesFor returns the in-tree files of the modules that export one of names.
func (t *tree) filesFor(names []string, owners map[string][]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		for _, m := range owners[n] {
			for _, f := range t.byName[m] {
				if !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// readModules returns the exports of each module file, read in parallel (one .ko.xz costs
// milliseconds of pure-Go decompression; a tree of 4000 is worth every core).
func readModules(r *rootfs.Root, t *tree, files []string) (map[string][]entry, error) {
	out := make(map[string][]entry, len(files))
	var mu sync.Mutex
	errs := map[string]error{}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(files), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				es, err := readModule(r, t, f)
				mu.Lock()
				if err != nil {
					errs[f] = err
				} else {
					out[f] = es
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	if len(errs) == 0 {
		return out, nil
	}
	first := errs[sortedKeys(errs)[0]] // the same one every run
	if len(errs) == 1 {
		return nil, first
	}
	// One line: a broken tree would otherwise print thousands.
	return nil, fmt.Errorf("%w (and %d more in-tree modules that cannot be read)", first, len(errs)-1)
}

// readModule reads one module's exports through kabi/module, which parses __ksymtab*,
// __kcrctab* and namespaces.
func readModule(r *rootfs.Root, t *tree, file string) ([]entry, error) {
	f, err := r.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := module.OpenFile(f, file)
	if err != nil {
		return nil, err
	}
	col := t.column(file)
	es := make([]entry, len(m.Exports))
	for i, e := range m.Exports {
		es[i] = entry{name: e.Name, namespace: e.Namespace, crc: e.CRC, gpl: e.GPLOnly, module: col}
	}
	return es, nil
}
