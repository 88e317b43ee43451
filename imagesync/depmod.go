package imagesync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// isDepmodOutput reports whether a file of a module directory (path relative to it) is one
// depmod writes: modules.dep, modules.alias, their .bin forms, ...
func isDepmodOutput(rel string) bool {
	return strings.HasPrefix(rel, "modules.") && !strings.Contains(rel, "/") && !isDepmodInput(rel)
}

// isDepmodInput reports whether a file of a module directory is one depmod reads besides the
// modules: modules.builtin, modules.builtin.modinfo, modules.order.
func isDepmodInput(rel string) bool {
	return rel == "modules.order" || strings.HasPrefix(rel, "modules.builtin") && !strings.Contains(rel, "/") && !strings.HasSuffix(rel, ".bin")
}

// kernelRel returns name relative to kernel's module directory in an image (usr/lib/modules/K
// or lib/modules/K), and whether it is under it.
func kernelRel(name, kernel string) (string, bool) {
	for _, dir := range []string{"usr/lib/modules/" + kernel + "/", "lib/modules/" + kernel + "/"} {
		if rel, ok := strings.CutPrefix(name, dir); ok {
			return rel, true
		}
	}
	return "", false
}

// depmodInput is a module tree to give depmod, by path relative to the module directory:
// links to host files (depmod reads only symbols and .modinfo, so the tree's build stands in
// for the image's copy of it) and contents to write out.
type depmodInput struct {
	links map[string]string
	files map[string][]byte
}

// treeDepmodInput is depmod's view of the modules of km an image keeps (those not in drop):
// each the tree's build, which every kept copy is once refreshed; linked where the name's
// compression allows, else written compressed as the image names it.
func treeDepmodInput(tree *kernelTree, km *KernelModules, drop map[string]bool) (depmodInput, error) {
	in := depmodInput{links: map[string]string{}, files: map[string][]byte{}}
	prefix := km.Dir + "/"
	for _, m := range km.Modules {
		if drop[m.Path] {
			continue
		}
		tf, err := tree.file(m.Name)
		if err != nil {
			return in, err
		}
		rel := strings.TrimPrefix(m.Path, prefix)
		if sameSuffix(tf, rel) {
			in.links[rel] = tf
		} else if in.files[rel], err = moduleAs(tf, m.Path); err != nil {
			return in, err
		}
	}
	return in, nil
}

// addImageFiles adds depmod's inputs besides the modules that the image holds (km's
// modules.builtin*, modules.order: image path → content), the image's own, not the host's.
func (in depmodInput) addImageFiles(km *KernelModules, files map[string][]byte) {
	for name, body := range files {
		if rel, ok := strings.CutPrefix(name, km.Dir+"/"); ok {
			in.files[rel] = body
		}
	}
}

// depmodOutputs lays in out in a scratch root, runs the real depmod there for kernel, and
// returns the modules.* files it writes, named prefix + their name.
func depmodOutputs(kernel, prefix string, in depmodInput) ([]initramfs.File, error) {
	// The scratch tree is thousands of small entries: a memory filesystem makes it cheap.
	scratch := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		scratch = "/dev/shm"
	}
	tmp, err := os.MkdirTemp(scratch, depmodScratchName(os.Getpid()))
	if err != nil {
		return nil, err
	}
	hold, err := lockScratch(tmp, false)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	defer func() { os.RemoveAll(tmp); hold.Close() }()
	dir := kmod.ModulesDir(tmp, kernel)
	if err := os.MkdirAll(dir, 0o755); err != nil { // the image may keep no module at all
		return nil, err
	}
	place := func(rel string) (string, error) {
		if !filepath.IsLocal(rel) {
			return "", fmt.Errorf("%q: not a path inside the module directory", rel)
		}
		p := filepath.Join(dir, rel)
		return p, os.MkdirAll(filepath.Dir(p), 0o755)
	}
	for rel, host := range in.links {
		p, err := place(rel)
		if err != nil {
			return nil, err
		}
		if err := os.Symlink(host, p); err != nil {
			return nil, err
		}
	}
	for rel, data := range in.files {
		p, err := place(rel)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	// depmod reads its search order from the image's configuration, if any, else defaults.
	if err := kmod.Depmod(tmp, kernel, ""); err != nil {
		return nil, fmt.Errorf("depmod over the image's modules: %w", err)
	}
	testPoint("depmod-scratch")
	generated, err := filepath.Glob(filepath.Join(dir, "modules.*"))
	if err != nil {
		return nil, err
	}
	var out []initramfs.File
	for _, g := range generated {
		base := filepath.Base(g)
		if !isDepmodOutput(base) {
			continue
		}
		data, err := os.ReadFile(g)
		if err != nil {
			return nil, err
		}
		out = append(out, initramfs.Regular(prefix+base, 0o644, data))
	}
	return out, nil
}

// depmodScratchPrefix begins the name of every scratch tree depmodOutputs makes; the rest
// is rootfs.TempMarker, the pid of the process that made it and a random part, so that a
// later run removes a killed run's tree (see RemoveLeftovers).
const depmodScratchPrefix = "kabiguard-depmod"

func depmodScratchName(pid int) string {
	return depmodScratchPrefix + rootfs.TempMarker + strconv.Itoa(pid) + "-*"
}

// sameSuffix: a link may stand in for the image's file only when both are compressed alike
// (depmod picks the decompressor by the name it is given).
func sameSuffix(a, b string) bool {
	fa := kmod.Compression(a)
	fb := kmod.Compression(b)
	return fa == fb
}

// startDepmod runs depmod over in in the background and returns a function that waits for
// its outputs (named under prefix): the image compresses meanwhile.
func startDepmod(kernel, prefix string, in depmodInput, tr *tracer) func() ([]initramfs.File, error) {
	type result struct {
		files []initramfs.File
		err   error
	}
	done := make(chan result, 1)
	go func() {
		files, err := depmodOutputs(kernel, prefix, in)
		tr.step("depmod (beside the encoder)")
		done <- result{files, err}
	}()
	return func() ([]initramfs.File, error) {
		r := <-done
		return r.files, r.err
	}
}

// lockScratch takes an exclusive flock on scratch tree dir, held while the returned file is
// open: its owner holds it for the tree's life, and RemoveLeftovers (try set) takes it before
// removing a tree. /dev/shm is shared by every pid namespace on the host, where the pid in a
// tree's name may look dead while its process runs in a container; a flock is released only
// when the process holding it is gone, whichever namespace it runs in. With try, a tree in
// use fails with ErrScratchBusy at once.
func lockScratch(dir string, try bool) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if try {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrScratchBusy)
		}
		return nil, fmt.Errorf("%s: lock: %w", dir, err)
	}
	return f, nil
}

// ErrScratchBusy: a depmod scratch tree is locked by the run that owns it.
var ErrScratchBusy = errors.New("in use by a running kabiguard")
