package exports

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// ErrNoImage is wrapped when a kernel has no vmlinuz to read.
var ErrNoImage = errors.New("no kernel image")

// imageCandidates are where a kernel's image lies under the root: /boot (Debian, RHEL's
// installed kernel) and lib/modules/K/vmlinuz (what RHEL's package ships for kernel-install).
func imageCandidates(root, release string) []string {
	return []string{
		filepath.Join(root, "boot", "vmlinuz-"+release),
		filepath.Join(root, "lib", "modules", release, "vmlinuz"),
	}
}

// ForKernel derives the exports of kernel release under root from its image and in-tree
// modules, as a symvers table the rest of kabi uses like one read from Module.symvers, and
// says where they came from ("exports derived from /boot/vmlinuz-K and N in-tree modules").
//
// wanted nil asks for every export: every in-tree module is read. Otherwise the table holds
// vmlinux's exports and those of the in-tree modules that export a wanted symbol (depmod's
// modules.symbols names them); a lookup of any other name reads its module then, so a wrong
// guess of what is needed costs time, never a wrong answer. Results are cached per kernel
// (CachePath); a cache that cannot be written costs the next call time, nothing else.
func ForKernel(root, release string, wanted map[string]bool) (*symvers.Table, string, error) {
	if release == "" || strings.ContainsAny(release, "/\x00") || release == "." || release == ".." {
		return nil, "", fmt.Errorf("invalid kernel release %q", release)
	}
	r, err := rootfs.At(root)
	if err != nil {
		return nil, "", err
	}
	k := &kernel{r: r, cache: CachePath(r.Dir(), release)}
	if k.vmlinuz, err = findImage(r, release); err != nil {
		return nil, "", err
	}
	if k.tree, err = listTree(r, filepath.Join(r.Dir(), "lib", "modules", release)); err != nil {
		return nil, "", err
	}
	if err := k.derive(wanted); err != nil {
		return nil, "", err
	}
	return k.table(), k.provenance(), nil
}

func findImage(r *rootfs.Root, release string) (string, error) {
	c := imageCandidates(r.Dir(), release)
	for _, p := range c {
		if _, err := r.Lstat(p); err == nil {
			return p, nil // not necessarily regular: reading it says what is wrong
		}
	}
	return "", fmt.Errorf("%w for kernel %s: looked for %s", ErrNoImage, release, strings.Join(c, " and "))
}

// kernel is one derivation in progress.
type kernel struct {
	r       *rootfs.Root
	vmlinuz string
	cache   string
	tree    *tree
	d       *derived
	owners  map[string][]string // modules.symbols; nil when absent

	mu sync.Mutex // guards d.modules for lookups after ForKernel returned
}

func (k *kernel) derive(wanted map[string]bool) error {
	d, err := loadCache(k.r, k.cache, k.vmlinuz, k.tree)
	if err != nil {
		d = nil // missing, stale or corrupt: derived anew below, never trusted
	}
	dirty := false
	if d == nil {
		if d, err = k.readImage(); err != nil {
			return err
		}
		dirty = true
	}
	k.d = d
	owners, haveOwners, err := symbolOwners(k.r, k.tree.dir)
	if err != nil {
		return err
	}
	k.owners = owners
	var files []string
	switch {
	case wanted == nil || !haveOwners:
		files = k.tree.files
	default:
		files = k.tree.filesFor(k.missing(wanted), owners)
	}
	n, err := k.readModules(files)
	if err != nil {
		return err
	}
	if wanted == nil || !haveOwners {
		dirty = dirty || !d.all
		d.all = true
	}
	if dirty || n > 0 {
		_ = writeCache(k.r, k.cache, d) // a read-only root still gets its answer
	}
	return nil
}

// readImage decodes vmlinuz and reads vmlinux's tables. Errors name the file.
func (k *kernel) readImage() (*derived, error) {
	// Stamped before it is read (modules too): a file replaced in between leaves a cache
	// keyed to the old file, which the next run finds stale; the other order could key the
	// new file to the old content.
	st, err := stampOf(k.r, k.vmlinuz)
	if err != nil {
		return nil, err
	}
	raw, err := k.r.ReadFile(k.vmlinuz)
	if err != nil {
		return nil, err
	}
	img, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.vmlinuz, err)
	}
	es, err := vmlinuxTables(img)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", k.vmlinuz, img.Form, err)
	}
	return &derived{
		vmlinuz: k.vmlinuz,
		sources: map[string]stamp{k.vmlinuz: st},
		modules: map[string][]entry{},
		vmlinux: es,
	}, nil
}

// missing lists the wanted names vmlinux does not export.
func (k *kernel) missing(wanted map[string]bool) []string {
	have := make(map[string]bool, len(k.d.vmlinux))
	for _, e := range k.d.vmlinux {
		have[e.name] = true
	}
	var out []string
	for n := range wanted {
		if !have[n] {
			out = append(out, n)
		}
	}
	return out
}

// readModules reads the files not read yet and returns how many it read.
func (k *kernel) readModules(files []string) (int, error) {
	var todo []string
	for _, f := range files {
		if _, ok := k.d.modules[f]; !ok {
			todo = append(todo, f)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	stamps := make(map[string]stamp, len(todo))
	for _, f := range todo {
		st, err := stampOf(k.r, f)
		if err != nil {
			return 0, err
		}
		stamps[f] = st
	}
	got, err := readModules(k.r, k.tree, todo)
	if err != nil {
		return 0, err
	}
	for f, es := range got {
		k.d.modules[f] = es
		k.d.sources[f] = stamps[f]
	}
	return len(todo), nil
}

// table makes the symvers table of what has been derived.
func (k *kernel) table() *symvers.Table {
	exports := make(map[string]symvers.Export)
	for _, e := range k.d.entries() {
		exports[e.name] = e.export()
	}
	var more func(string) (symvers.Export, bool)
	if !k.d.all {
		more = k.lookup
	}
	return symvers.NewTable(k.vmlinuz, exports, more)
}

// lookup answers a name the table was not built for: its in-tree module, by modules.symbols,
// is read now.
func (k *kernel) lookup(name string) (symvers.Export, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	files := k.tree.filesFor([]string{name}, k.owners)
	if _, err := k.readModules(files); err != nil {
		return symvers.Export{}, false
	}
	for _, f := range files {
		for _, e := range k.d.modules[f] {
			if e.name == name {
				return e.export(), true
			}
		}
	}
	return symvers.Export{}, false
}

func (e entry) export() symvers.Export {
	return symvers.Export{CRC: e.crc, Module: e.module, GPLOnly: e.gpl, Namespace: e.namespace}
}

// provenance says where the exports came from.
func (k *kernel) provenance() string {
	n := len(k.d.modules) // read so far: only those exporting a symbol asked for
	noun := "in-tree modules"
	if n == 1 {
		noun = "in-tree module"
	}
	return fmt.Sprintf("exports derived from %s and %d %s", k.vmlinuz, n, noun)
}
