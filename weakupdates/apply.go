package weakupdates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kmod"
)

// Op is what a change does to one link.
type Op string

// Link operations.
const (
	Create  Op = "create"
	Repoint Op = "repoint"
	Remove  Op = "remove"
)

// Change is one link operation.
type Change struct {
	Kernel string `json:"kernel"`
	Op     Op     `json:"op"`
	Link   string `json:"link"`             // host path of the link
	Old    string `json:"old,omitempty"`    // previous target, as stored
	Target string `json:"target,omitempty"` // new target, as stored (relative)
	Why    Why    `json:"why"`
}

// Options of Apply.
type Options struct {
	DryRun   bool
	NoDepmod map[string]bool // kernels not to run depmod for (being removed)
	Depmod   string          // depmod binary; "" means "depmod" from PATH
	Log      func(string)
}

// Apply carries out changes and runs the real depmod once for every kernel whose links
// changed. Each link is replaced atomically (a new link under a temporary name, renamed over
// the old one). It returns the kernels whose module set changed. Every access goes through
// rootfs: a kernel whose weak-updates/ (or module directory, or lib/) leads outside the root,
// or that the host's tools (depmod -b) would see elsewhere, is refused as a whole, with one
// error, and nothing is written there. A dry run writes nothing, not even the depmod marker.
func Apply(root string, changes []Change, opt Options) (changedKernels, failedKernels []string, err error) {
	log := opt.Log
	if log == nil {
		log = func(string) {}
	}
	r, err := rootfs.At(root)
	if err != nil {
		return nil, nil, err
	}
	changed, owed := map[string]bool{}, map[string]bool{}
	failed := map[string]bool{} // kernels some of whose changes or whose depmod failed
	var errs []string
	// A run killed between its link changes and depmod left a marker: index those kernels now.
	for _, k := range pendingDepmod(r, root) {
		changed[k] = true
		log(fmt.Sprintf("%s: depmod did not finish in an earlier run", k))
	}
	refused := map[string]bool{}
	for _, c := range changes {
		if refused[c.Kernel] {
			continue
		}
		if err := checkKernelDir(r, root, c.Kernel); err != nil {
			refused[c.Kernel] = true
			errs = append(errs, err.Error())
			continue
		}
		if err := checkTarget(r, c); err != nil {
			refused[c.Kernel] = true
			errs = append(errs, fmt.Sprintf("%s: %v: %v", c.Kernel, ErrRefusedKernel, err))
			continue
		}
		log(fmt.Sprintf("%s: %s %s%s (%s)", c.Kernel, c.Op, c.Link, arrow(c), c.Why))
		if opt.DryRun {
			changed[c.Kernel] = true
			continue
		}
		// Both debts (owed.go's image, depmod's index) are recorded before the kernel's first
		// change; a kernel whose markers cannot be written gets no change at all, or a kill
		// after it would leave work that no later run knows is owed.
		if !owed[c.Kernel] {
			if err := MarkImageOwed(root, c.Kernel); err != nil {
				errs = append(errs, err.Error())
				refused[c.Kernel], failed[c.Kernel] = true, true
				continue
			}
			owed[c.Kernel] = true
		}
		if !changed[c.Kernel] {
			if err := markDepmod(r, root, c.Kernel); err != nil {
				errs = append(errs, err.Error())
				refused[c.Kernel], failed[c.Kernel] = true, true
				continue
			}
			changed[c.Kernel] = true
		}
		faultPoint()
		if err := applyOne(r, c); err != nil {
			errs = append(errs, err.Error())
			failed[c.Kernel] = true
		}
	}
	var kernels []string
	for k := range changed {
		kernels = append(kernels, k)
	}
	sort.Slice(kernels, func(i, j int) bool { return kabi.CompareReleases(kernels[i], kernels[j]) < 0 })
	for _, k := range kernels {
		if _, err := r.Stat(filepath.Join(kmod.ModulesDir(root, k), "kernel")); err != nil || opt.NoDepmod[k] {
			// Not an installed kernel, or being removed: nothing to index, and no marker may
			// keep its directory from being emptied.
			if !opt.DryRun {
				r.Remove(depmodMarker(root, k))
			}
			continue
		}
		if opt.DryRun {
			log(fmt.Sprintf("%s: would run depmod", k))
			continue
		}
		faultPoint()
		if err := kmod.Depmod(root, k, opt.Depmod); err != nil {
			errs = append(errs, err.Error())
			failed[k] = true
			continue
		}
		if err := r.Remove(depmodMarker(root, k)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err.Error())
		}
	}
	for k := range failed {
		failedKernels = append(failedKernels, k)
	}
	sort.Strings(failedKernels)
	if len(errs) > 0 {
		return kernels, failedKernels, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return kernels, failedKernels, nil
}

// ErrRefusedKernel is in the error of a kernel whose links are not touched: its weak-updates
// leads outside the root (for us or for the host's tools), or links made there would dangle.
var ErrRefusedKernel = errors.New("its links are not changed")

// checkKernelDir refuses a kernel whose weak-updates/ leads outside the root, by our resolution
// (a relative symlink climbing out) or by the host's (an absolute symlink on lib/, the module
// directory or weak-updates/, which depmod -b and dracut follow on the host). Links written
// through it would land, or be indexed, outside the root.
func checkKernelDir(r *rootfs.Root, root, release string) error {
	weak := filepath.Join(kmod.ModulesDir(root, release), "weak-updates")
	if _, err := r.ToolPath(weak); err != nil {
		return fmt.Errorf("%s: %w: %w", release, ErrRefusedKernel, err)
	}
	return nil
}

// ErrLinkWouldDangle is wrapped when a relative link target, planned from the link's path as
// written, would lead elsewhere from the directory the link really lands in: a symlink on the
// way (weak-updates -> ../../../srv/w) moves the link but not the build it names.
var ErrLinkWouldDangle = errors.New("a symlink on its path moves the link away from its build")

// checkTarget makes sure that a link created with c.Target leads, once on disk, where the
// plan meant: c.Target is relative to the link's directory as written (lib/modules/K/
// weak-updates/...), but the kernel, depmod and modprobe resolve it from the directory the
// link really lands in. A symlink above lib/modules (merged /usr's lib -> usr/lib) moves the
// link and the builds alike and passes; a symlinked kernel directory or weak-updates at
// another depth does not.
func checkTarget(r *rootfs.Root, c Change) error {
	// The link's own directory, too, must be where the host's depmod will look for it
	// (weak-updates/x -> /elsewhere means the root's /elsewhere to us, the host's to depmod).
	if _, err := r.ToolPath(filepath.Dir(c.Link)); err != nil {
		return err
	}
	if c.Op == Remove || c.Target == "" || filepath.IsAbs(c.Target) {
		return nil
	}
	dir := filepath.Dir(c.Link)
	meant, err := r.Resolve(filepath.Join(dir, c.Target))
	if err != nil {
		return err
	}
	real, err := r.Resolve(dir)
	if err != nil {
		return err
	}
	// real has no symlink left in it, so joining c.Target to it resolves ".." as the kernel does.
	got, err := r.Resolve(filepath.Join(real, c.Target))
	if err != nil || got != meant {
		return fmt.Errorf("%s: %w (it would land in %s, where %s leads to %s)", c.Link, ErrLinkWouldDangle,
			real, c.Target, resolvedOr(got, err))
	}
	// depmod, modprobe and dracut follow the target by the host's rules: an absolute symlink on
	// its way (extra -> /usr/lib/x) would send them to the host's file, not the root's.
	if _, err := r.ToolPath(filepath.Join(real, c.Target)); err != nil {
		return err
	}
	return nil
}

func resolvedOr(p string, err error) string {
	if err != nil {
		return err.Error()
	}
	return p
}

// depmodMarker is the file that says "K's links changed, depmod has not yet run": written
// (and synced) before the first link change, removed after depmod succeeds, so that a run
// killed in between is completed by the next one. depmod ignores files not named *.ko*.
func depmodMarker(root, release string) string {
	return filepath.Join(kmod.ModulesDir(root, release), kmod.DepmodPendingMarker)
}

func markDepmod(r *rootfs.Root, root, release string) error {
	dir := kmod.ModulesDir(root, release)
	if _, err := r.Stat(dir); err != nil {
		return nil // the kernel's tree is gone: nothing to index later
	}
	f, err := r.OpenRW(depmodMarker(root, release), 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return r.SyncDir(dir)
}

// pendingDepmod lists the kernels with a depmod marker left by an interrupted run.
func pendingDepmod(r *rootfs.Root, root string) []string {
	ents, _ := r.ReadDir(kmod.ModulesDir(root, ""))
	var out []string
	for _, e := range ents {
		if fi, err := r.Lstat(depmodMarker(root, e.Name())); err == nil && fi.Mode().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

// faultPoint serves the crash-consistency test only: with KABIGUARD_TEST_KILL_AT=N in the
// environment the process kills itself with SIGKILL at its Nth step (a link change or the
// start of a depmod), as a power cut or `kill -9` would stop it.
func faultPoint() {
	if killAt <= 0 {
		return
	}
	if steps++; steps == killAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

var (
	killAt, _ = strconv.Atoi(os.Getenv("KABIGUARD_TEST_KILL_AT"))
	steps     int
)

func arrow(c Change) string {
	if c.Target != "" {
		return " -> " + c.Target
	}
	return ""
}

func applyOne(r *rootfs.Root, c Change) error {
	switch c.Op {
	case Remove:
		fi, err := r.Lstat(c.Link)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s: a %s, not a symlink: left alone", c.Link, rootfs.Kind(fi.Mode()))
		}
		if err := r.Remove(c.Link); err != nil {
			return err
		}
		removeEmptyDirs(r, c.Link)
		return nil
	case Create, Repoint:
		if err := r.MkdirAll(filepath.Dir(c.Link), 0o755); err != nil {
			return err
		}
		if fi, err := r.Lstat(c.Link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s: a %s is in the way: left alone", c.Link, rootfs.Kind(fi.Mode()))
		}
		tmp := fmt.Sprintf("%s%s%d", c.Link, tempMarker, os.Getpid())
		r.Remove(tmp)
		if err := r.Symlink(c.Target, tmp); err != nil {
			return err
		}
		if err := r.Rename(tmp, c.Link); err != nil {
			r.Remove(tmp)
			return err
		}
		return r.SyncDir(filepath.Dir(c.Link))
	}
	return fmt.Errorf("unknown op %q", c.Op)
}

// removeEmptyDirs removes the directories that removing the link at link left empty: its
// own, then each parent the removal of a child emptied, up to and not including the nearest
// weak-updates/ above it. Those are the directories making the link's path needed (kabiguard
// makes them with the link); everything else is the admin's and stays: weak-updates/ itself
// and anything above it, any directory with something left in it (an empty one beside the
// link included), a symlink on the path (removing it would not remove a directory), and every
// directory of a link that is not below a weak-updates/.
func removeEmptyDirs(r *rootfs.Root, link string) {
	wu := filepath.Dir(link)
	for filepath.Base(wu) != "weak-updates" {
		if wu = filepath.Dir(wu); wu == filepath.Dir(wu) {
			return
		}
	}
	for dir := filepath.Dir(link); dir != wu; dir = filepath.Dir(dir) {
		if fi, err := r.Lstat(dir); err != nil || !fi.IsDir() {
			return
		}
		if err := r.Remove(dir); err != nil {
			return
		}
	}
}

// Lock takes the exclusive lock that serializes every command changing root's module trees.
// It blocks until the lock is free; the returned function releases it. A root that does not
// exist is an error (rootfs.ErrNoRoot), never created; lib/modules is made inside the root.
func Lock(root string) (func(), error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	dir := kmod.ModulesDir(root, "")
	if err := r.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".kabiguard.lock")
	f, err := r.OpenRW(path, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// lockUnlessDry is Lock for a real run; a dry run changes nothing, so it takes no lock and
// creates no file (not even the lock file, nor lib/modules).
func lockUnlessDry(root string, dryRun bool) (func(), error) {
	if dryRun {
		if _, err := rootfs.At(root); err != nil {
			return nil, err
		}
		return func() {}, nil
	}
	return Lock(root)
}
