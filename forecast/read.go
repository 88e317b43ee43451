package forecast

import (
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/exports"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
)

// ErrNoKernel means a package holds no kernel (no lib/modules/RELEASE with modules or an image).
var ErrNoKernel = errors.New("no kernel in the package")

// Kernel is one kernel read from a package, as the planner needs it.
type Kernel struct {
	Release string
	// Symvers is the kernel's exports: the package's symvers file, or derived from its image
	// and in-tree modules. Provenance says which, naming the package. Derived for wanted
	// symbols (see Read), it holds vmlinux's exports and those of the in-tree modules that
	// export a wanted symbol; other modules' exports are not in it.
	Symvers    *symvers.Table
	Provenance string
	Reference  *module.Module    // one in-tree module: vermagic and sizeof(struct module)
	InTree     map[string]string // module name -> path in the package (kernel/...)
	Builtin    map[string]bool   // modules.builtin
	External   []*module.Module  // modules the package ships outside kernel/ (extra/, updates/)
	Unreadable map[string]error  // in-tree modules whose exports could not be read, by path
	imagePath  string            // its vmlinuz's path in the package, "" for none
	vmlinux    chan imageResult  // its exports, decoded while the rest of the archive is read
	symversAt  string            // the package's symvers file, if any
	derived    map[string]symvers.Export
	nativeOnce sync.Once         // native: packageNative, made once
	native     map[string]string // for every host judged
	refName    string            // the package path of Reference
	parsed     int               // in-tree modules parsed in full (the others were only scanned)
	// home is the package that ships the kernel itself (its image or symvers file); from,
	// every package that ships something of it, and inTreeFrom the package of each in-tree
	// module: RHEL splits a kernel into kernel-core, kernel-modules-core and kernel-modules,
	// and a kmod package may bring its build for the kernel in the same transaction.
	home       *pkgfile.Package
	from       []*pkgfile.Package
	inTreeFrom map[string]*pkgfile.Package
}

// Packages names the packages the kernel was assembled from, its own first.
func (k *Kernel) Packages() string {
	var out []string
	for _, p := range k.from {
		out = append(out, p.String())
	}
	return strings.Join(out, " + ")
}

// maxFile bounds what is read of one package file into memory (the largest Debian module,
// amdgpu, is about 20 MiB; a vmlinuz about 10 MiB).
const maxFile = 256 << 20

// kernelFile is what a package path is to a kernel.
type kernelFile struct {
	release string
	kind    fileKind
	rel     string // below lib/modules/RELEASE/ (kernel files), or the file name (boot/)
}

type fileKind int

const (
	otherFile fileKind = iota
	imageFile
	symversFile
	builtinFile
	inTreeModule
	externalModule
)

// classify says what name (a cleaned package path) is; merged-/usr packages put lib/modules
// under usr/.
func classify(name string) kernelFile {
	if b, ok := strings.CutPrefix(name, "boot/"); ok && !strings.Contains(b, "/") {
		if r, ok := strings.CutPrefix(b, "vmlinuz-"); ok {
			return kernelFile{release: r, kind: imageFile, rel: b}
		}
		if r, ok := strings.CutPrefix(b, "symvers-"); ok {
			return kernelFile{release: trimCompression(r), kind: symversFile, rel: b}
		}
		return kernelFile{}
	}
	rest, ok := strings.CutPrefix(strings.TrimPrefix(name, "usr/"), "lib/modules/")
	if !ok {
		return kernelFile{}
	}
	release, rel, ok := strings.Cut(rest, "/")
	if !ok || release == "" {
		return kernelFile{}
	}
	f := kernelFile{release: release, rel: rel}
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case rel == "vmlinuz":
		f.kind = imageFile
	case trimCompression(rel) == "symvers":
		f.kind = symversFile
	case rel == "modules.builtin":
		f.kind = builtinFile
	case !kmod.IsModule(rel):
	case top == "kernel":
		f.kind = inTreeModule
	case top != "weak-updates" && top != "build" && top != "source" && strings.Contains(rel, "/"):
		f.kind = externalModule
	}
	return f
}

func trimCompression(s string) string {
	for _, ext := range []string{".gz", ".xz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	return s
}

// Read streams the package once and returns the kernels it holds, each with its exports.
// wanted names the symbols the caller will look up (kabi.SymbolsNeeded of the host's external
// modules): an in-tree module is then parsed only when its export names include one of them,
// or when it is the reference module; the others are only scanned (section headers and
// __ksymtab_strings), which is what makes a forecast cheaper than unpacking the package. nil
// reads every module's exports.
func Read(pkg *pkgfile.Package, wanted map[string]bool) ([]*Kernel, error) {
	return ReadTogether([]*pkgfile.Package{pkg}, wanted)
}

// ReadTogether is Read of packages installed together: the files of one kernel release from
// any of them make one kernel (kernel-core with kernel-modules-core and kernel-modules, or a
// kernel with a kmod package's build for it). A package holding only modules for a release
// that none of them ships the kernel of is no kernel (ErrNoKernel when nothing else is).
func ReadTogether(pkgs []*pkgfile.Package, wanted map[string]bool) ([]*Kernel, error) {
	r := &reader{wanted: wanted, kernels: map[string]*Kernel{}, jobs: make(chan moduleJob, 2*runtime.GOMAXPROCS(0))}
	r.startWorkers()
	var werr error
	for _, pkg := range pkgs {
		r.pkg = pkg // only the walk reads it; jobs carry their package
		if werr = pkg.Walk(r.visit); werr != nil {
			break
		}
	}
	close(r.jobs)
	r.workers.Wait()
	if werr != nil {
		return nil, werr
	}
	var out []*Kernel
	var names []string
	for _, pkg := range pkgs {
		names = append(names, pkg.Path)
	}
	for _, k := range r.kernels {
		if k.imagePath == "" && k.symversAt == "" {
			if len(k.InTree) > 0 && len(pkgs) == 1 {
				return nil, fmt.Errorf("%s: kernel %s has neither a symvers file nor a vmlinuz to read its exports from (its in-tree modules only: forecast it together with the package of its kernel, e.g. kernel-core)", pkgs[0].Path, k.Release)
			}
			continue // modules for a kernel none of the packages ships (a kmod, kernel-modules)
		}
		k.orderFrom()
		if err := k.finish(k.home); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w (no lib/modules/RELEASE with modules or a vmlinuz)", strings.Join(names, ", "), ErrNoKernel)
	}
	sort.Slice(out, func(i, j int) bool { return kabi.CompareReleases(out[i].Release, out[j].Release) < 0 })
	return out, nil
}

type reader struct {
	pkg     *pkgfile.Package
	wanted  map[string]bool
	buffers sync.Pool // *[]byte: module files' bytes, reused (4000 modules, 400 MB a package)
	mu      sync.Mutex
	kernels map[string]*Kernel
	jobs    chan moduleJob
	workers sync.WaitGroup
}

type moduleJob struct {
	k        *Kernel
	f        kernelFile
	name     string
	pkg      string  // the path of the package it is in
	buf      *[]byte // the file's bytes, back to buffers once parsed
	external bool
}

func (r *reader) kernel(release string) *Kernel {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kernels[release]
	if k == nil {
		k = &Kernel{Release: release, InTree: map[string]string{}, Builtin: map[string]bool{},
			Unreadable: map[string]error{}, derived: map[string]symvers.Export{}, inTreeFrom: map[string]*pkgfile.Package{}}
		r.kernels[release] = k
	}
	if !slices.Contains(k.from, r.pkg) {
		k.from = append(k.from, r.pkg)
	}
	return k
}

// orderFrom puts the kernel's own package first among the packages it came from.
func (k *Kernel) orderFrom() {
	if i := slices.Index(k.from, k.home); i > 0 {
		k.from = append(append([]*pkgfile.Package{k.home}, k.from[:i]...), k.from[i+1:]...)
	}
}

// visit takes what a kernel needs from one package entry.
func (r *reader) visit(f pkgfile.File, body io.Reader) error {
	kf := classify(f.Name)
	if kf.kind == otherFile || !f.IsRegular() {
		return nil
	}
	if kf.kind == inTreeModule || kf.kind == externalModule {
		return r.visitModule(f, kf, body)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxFile {
		return fmt.Errorf("%s: %s is larger than %d MiB", r.pkg.Path, f.Name, maxFile>>20)
	}
	k := r.kernel(kf.release)
	switch kf.kind {
	case imageFile:
		// Decoding the image takes a second or two of one core: start it now, beside the
		// archive's decompression, which takes the others.
		k.imagePath, k.vmlinux, k.home = f.Name, make(chan imageResult, 1), r.pkg
		go func() {
			es, form, err := exports.ImageExports(data)
			k.vmlinux <- imageResult{es, form, err}
		}()
	case symversFile:
		plain, _, err := compression.Decode(data)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.pkg.Path, f.Name, err)
		}
		t, err := symvers.ParseBytes(r.pkg.Path+":"+f.Name, plain)
		if err != nil {
			return err
		}
		r.mu.Lock()
		k.Symvers, k.symversAt = t, f.Name
		if k.home == nil || k.imagePath == "" {
			k.home = r.pkg
		}
		r.mu.Unlock()
	case builtinFile:
		for _, line := range strings.Fields(string(data)) {
			r.mu.Lock()
			k.Builtin[kmod.ModuleName(line)] = true
			r.mu.Unlock()
		}
	}
	return nil
}

// visitModule reads a module file into a reused buffer and hands it to the workers.
func (r *reader) visitModule(f pkgfile.File, kf kernelFile, body io.Reader) error {
	if f.Size < 0 || f.Size > maxFile {
		return fmt.Errorf("%s: %s is larger than %d MiB", r.pkg.Path, f.Name, maxFile>>20)
	}
	buf := r.buffer(int(f.Size))
	if _, err := io.ReadFull(body, *buf); err != nil {
		return fmt.Errorf("%s: %s: %w", r.pkg.Path, f.Name, err)
	}
	var one [1]byte
	if n, _ := body.Read(one[:]); n > 0 { // only an unpacked directory's file can do this
		return fmt.Errorf("%s: %s grew while it was read", r.pkg.Path, f.Name)
	}
	k := r.kernel(kf.release)
	r.mu.Lock()
	if kf.kind == inTreeModule {
		k.InTree[kmod.ModuleName(kf.rel)] = f.Name
		k.inTreeFrom[kmod.ModuleName(kf.rel)] = r.pkg
	}
	r.mu.Unlock()
	r.jobs <- moduleJob{k: k, f: kf, name: f.Name, pkg: r.pkg.Path, buf: buf, external: kf.kind == externalModule}
	return nil
}

// buffer returns a reused byte slice of length n.
func (r *reader) buffer(n int) *[]byte {
	b, _ := r.buffers.Get().(*[]byte)
	if b == nil || cap(*b) < n {
		s := make([]byte, n, max(n, 1<<20))
		return &s
	}
	*b = (*b)[:n]
	return b
}

// startWorkers parses modules on every core while the archive is read.
func (r *reader) startWorkers() {
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		r.workers.Add(1)
		go func() {
			defer r.workers.Done()
			for j := range r.jobs {
				r.parse(j)
			}
		}()
	}
}

func (r *reader) parse(j moduleJob) {
	defer r.buffers.Put(j.buf)
	raw, full, err := r.worthParsing(j)
	var m *module.Module
	if err == nil && full {
		m, err = module.Parse(j.pkg+":"+j.name, raw)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := j.k
	switch {
	case err != nil:
		k.Unreadable[j.name] = err
	case m == nil:
	case j.external:
		k.External = append(k.External, m)
	default:
		k.parsed++
		// The first module in archive order would do as the reference; the smallest path
		// keeps it the same whatever the workers' order.
		if k.refName == "" || j.name < k.refName {
			k.Reference, k.refName = m, j.name
		}
		for name, e := range exports.ModuleExports(m, strings.TrimPrefix(j.f.rel, "kernel/")) {
			k.derived[name] = e
		}
	}
}

// worthParsing says whether a module must be parsed in full: an external one always (it is
// judged), an in-tree one when every export is read, when it may export a wanted symbol, or
// when it may become the reference. raw is the module's ELF, decompressed.
func (r *reader) worthParsing(j moduleJob) (raw []byte, full bool, err error) {
	raw = *j.buf
	if j.external || r.wanted == nil {
		return raw, true, nil
	}
	if f, ok := compression.Detect(raw); ok {
		if raw, _, err = compression.Decode(raw); err != nil {
			return nil, false, fmt.Errorf("%s:%s: corrupt %s data: %w", j.pkg, j.name, f, err)
		}
	}
	may, err := exports.MayExport(raw, r.wanted)
	if err != nil {
		return nil, false, fmt.Errorf("%s:%s: %w", j.pkg, j.name, err)
	}
	r.mu.Lock()
	ref := j.k.refName == "" || j.name < j.k.refName
	r.mu.Unlock()
	return raw, may || ref, nil
}

// finish settles a kernel's exports once the whole package was read: its own symvers file
// when it ships one, else vmlinux's exports and its in-tree modules'.
func (k *Kernel) finish(pkg *pkgfile.Package) error {
	if k.Reference != nil {
		k.Reference.Path = k.refName // its path in its package, whichever package that is
	}
	sort.Slice(k.External, func(i, j int) bool { return k.External[i].Path < k.External[j].Path })
	var img imageResult
	if k.vmlinux != nil {
		img = <-k.vmlinux
	}
	if k.Symvers != nil {
		k.Provenance = fmt.Sprintf("symvers %s from %s", k.symversAt, pkg)
		k.derived = nil
		return nil
	}
	if k.imagePath == "" {
		return fmt.Errorf("%s: kernel %s has neither a symvers file nor a vmlinuz to read its exports from", pkg.Path, k.Release)
	}
	if img.err != nil {
		return fmt.Errorf("%s: %s: %w", pkg.Path, k.imagePath, img.err)
	}
	form := img.form
	for name, e := range img.exports {
		k.derived[name] = e
	}
	if len(k.Unreadable) > 0 {
		var first string
		for p := range k.Unreadable {
			if first == "" || p < first {
				first = p
			}
		}
		return fmt.Errorf("%s: the exports of %d in-tree module(s) cannot be read, so the kernel's cannot be known: %v", pkg.Path, len(k.Unreadable), k.Unreadable[first])
	}
	k.Symvers = symvers.NewTable(pkg.Path+":"+k.imagePath, k.derived, nil)
	k.Provenance = fmt.Sprintf("exports derived from %s (%s) and %d in-tree modules of %s", path.Base(k.imagePath), form, len(k.InTree), pkg)
	k.derived = nil
	return nil
}

// imageResult is vmlinux's exports decoded from a package's vmlinuz.
type imageResult struct {
	exports map[string]symvers.Export
	form    string
	err     error
}
