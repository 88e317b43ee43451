package weakupdates

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/kabi"
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
	Why    string `json:"why"`
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
// the old one). It returns the kernels whose module set changed.
func Apply(root string, changes []Change, opt Options) ([]string, error) {
	log := opt.Log
	if log == nil {
		log = func(string) {}
	}
	changed, owed := map[string]bool{}, map[string]bool{}
	var errs []string
	// A run killed between its link changes and depmod left a marker: index those kernels now.
	for _, k := range pendingDepmod(root) {
		changed[k] = true
		log(fmt.Sprintf("%s: depmod did not finish in an earlier run", k))
	}
	for _, c := range changes {
		log(fmt.Sprintf("%s: %s %s%s (%s)", c.Kernel, c.Op, c.Link, arrow(c), c.Why))
		if opt.DryRun {
			changed[c.Kernel] = true
			continue
		}
		if !owed[c.Kernel] { // owed.go: the image debt is recorded before the first change
			if err := MarkImageOwed(root, c.Kernel); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			owed[c.Kernel] = true
		}
		if !changed[c.Kernel] {
			if err := markDepmod(root, c.Kernel); err != nil {
				errs = append(errs, err.Error())
			}
			changed[c.Kernel] = true
		}
		faultPoint()
		if err := applyOne(c); err != nil {
			errs = append(errs, err.Error())
		}
	}
	var kernels []string
	for k := range changed {
		kernels = append(kernels, k)
	}
	sort.Slice(kernels, func(i, j int) bool { return kabi.CompareReleases(kernels[i], kernels[j]) < 0 })
	for _, k := range kernels {
		if _, err := os.Stat(filepath.Join(kabi.ModulesDir(root, k), "kernel")); err != nil || opt.NoDepmod[k] {
			// Not an installed kernel, or being removed: nothing to index, and no marker may
			// keep its directory from being emptied.
			if !opt.DryRun {
				os.Remove(depmodMarker(root, k))
			}
			continue
		}
		if opt.DryRun {
			log(fmt.Sprintf("%s: would run depmod", k))
			continue
		}
		faultPoint()
		if err := Depmod(root, k, opt.Depmod); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := os.Remove(depmodMarker(root, k)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return kernels, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return kernels, nil
}

// depmodMarker is the file that says "K's links changed, depmod has not yet run": written
// (and synced) before the first link change, removed after depmod succeeds, so that a run
// killed in between is completed by the next one. depmod ignores files not named *.ko*.
func depmodMarker(root, release string) string {
	return filepath.Join(kabi.ModulesDir(root, release), ".kabiguard-depmod-pending")
}

func markDepmod(root, release string) error {
	dir := kabi.ModulesDir(root, release)
	if _, err := os.Stat(dir); err != nil {
		return nil // the kernel's tree is gone: nothing to index later
	}
	f, err := os.OpenFile(depmodMarker(root, release), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(dir)
}

// pendingDepmod lists the kernels with a depmod marker left by an interrupted run.
func pendingDepmod(root string) []string {
	marks, _ := filepath.Glob(depmodMarker(root, "*"))
	var out []string
	for _, m := range marks {
		out = append(out, filepath.Base(filepath.Dir(m)))
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

func applyOne(c Change) error {
	switch c.Op {
	case Remove:
		fi, err := os.Lstat(c.Link)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s: not a symlink, left alone", c.Link)
		}
		if err := os.Remove(c.Link); err != nil {
			return err
		}
		removeEmptyDirs(filepath.Dir(c.Link))
		return nil
	case Create, Repoint:
		if err := os.MkdirAll(filepath.Dir(c.Link), 0o755); err != nil {
			return err
		}
		if fi, err := os.Lstat(c.Link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s: a regular file is in the way, left alone", c.Link)
		}
		tmp := fmt.Sprintf("%s%s%d", c.Link, tempMarker, os.Getpid())
		os.Remove(tmp)
		if err := os.Symlink(c.Target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, c.Link); err != nil {
			os.Remove(tmp)
			return err
		}
		return syncDir(filepath.Dir(c.Link))
	}
	return fmt.Errorf("unknown op %q", c.Op)
}

// removeEmptyDirs removes empty directories from dir up to, not including, weak-updates/.
func removeEmptyDirs(dir string) {
	for filepath.Base(dir) != "weak-updates" && filepath.Base(dir) != "/" {
		if err := os.Remove(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Depmod runs the real depmod for one kernel of root. Under an alternate root it passes -b and
// that root's depmod.d directories, so the host's configuration never decides.
func Depmod(root, release, bin string) error {
	if bin == "" {
		bin = "depmod"
	}
	args := []string{"-a"}
	if r, _ := filepath.Abs(root); r != "/" {
		args = append(args, "-b", root)
		for _, d := range []string{"etc/depmod.d", "run/depmod.d", "usr/local/lib/depmod.d", "lib/depmod.d", "usr/lib/depmod.d"} {
			if fi, err := os.Stat(filepath.Join(root, d)); err == nil && fi.IsDir() {
				args = append(args, "-C", filepath.Join(root, d))
			}
		}
	}
	args = append(args, release)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Lock takes the exclusive lock that serializes every command changing root's module trees.
// It blocks until the lock is free; the returned function releases it.
func Lock(root string) (func(), error) {
	dir := filepath.Join(root, "lib", "modules")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".kabiguard.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
