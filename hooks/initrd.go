// Package hooks holds the flows the host runs at kernel and module changes: weak-modules
// calls, kernel-install plugins, Debian kernel hooks.
package hooks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// InitramfsUpdater brings a kernel's initramfs up to date after its module set changed. It is
// the one place initramfs work goes through; the generator-based implementation below is
// what RHEL's weak-modules does, and the in-place refresh of the initramfs package plugs in
// here.
type InitramfsUpdater interface {
	Update(release string) error
}

// NoInitramfs does nothing (--no-initramfs).
type NoInitramfs struct{}

// Update does nothing.
func (NoInitramfs) Update(string) error { return nil }

// GeneratorUpdater rebuilds an existing image with the generator, or hands the kernel to a
// program of the caller's (weak-modules --check-initramfs-prog).
type GeneratorUpdater struct {
	Root      string
	Generator string // the generator; default Generator() (KERNEL_INSTALL_INITRD_GENERATOR, else dracut)
	CheckProg string // if set, run "CheckProg RELEASE" instead
	DryRun    bool
	Log       func(string)
}

// ImagePaths are the places distributions keep a kernel's initramfs, relative to the root.
func ImagePaths(release string) []string {
	return []string{
		"boot/initramfs-" + release + ".img", // RHEL, Fedora, SUSE (initrd-*)
		"boot/initrd.img-" + release,         // Debian, Ubuntu
		"boot/initrd-" + release,
	}
}

// FindImage returns the host path of release's initramfs under root, or "" when it has none
// (or LocateImage fails: use that to tell why).
func FindImage(root, release string) string {
	p, _ := LocateImage(root, release)
	return p
}

// LocateImage returns the host path of release's initramfs under root (the first of
// ImagePaths that exists), or "" when it has none. A symlink there is followed inside the
// root, as the boot loader reading that root would; one that leads outside the root, to
// nothing, or to something other than a regular file is an error naming it.
func LocateImage(root, release string) (string, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", err
	}
	for _, rel := range ImagePaths(release) {
		p := r.Path(rel)
		if _, err := r.Lstat(p); err != nil {
			continue
		}
		real, _, err := resolveImage(root, p)
		if err != nil {
			return "", err
		}
		fi, err := r.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("%s: the kernel's image path%s leads to %s, which does not exist: %w", p, linkNote(r, p), real, fs.ErrNotExist)
		case err != nil:
			return "", fmt.Errorf("%s: the kernel's image path%s: %w", p, linkNote(r, p), err)
		case !fi.Mode().IsRegular():
			return "", fmt.Errorf("%s: the kernel's image path%s is a %s, not an image: %w", p, linkNote(r, p), rootfs.Kind(fi.Mode()), rootfs.ErrNotRegular)
		}
		return p, nil
	}
	return "", nil
}

// linkNote says where p leads when it is a symlink, for messages.
func linkNote(r *rootfs.Root, p string) string {
	if t, err := r.Readlink(p); err == nil {
		return " (a symlink to " + t + ")"
	}
	return ""
}

// ErrEmptyImage: an image file of zero bytes holds no archive, so nothing in it can be
// judged current (a generator killed before it wrote, a full disk).
var ErrEmptyImage = errors.New("empty file (0 bytes), not an initramfs image")

// resolveImage returns the file an image path leads to and the root to read and replace it
// through: under root, symlinks are followed inside root (an absolute target means root, as
// for the boot loader reading it) and one leading outside is refused; a path outside root
// (an image given on the command line) is the host's, resolved by the host's rules.
func resolveImage(root, image string) (string, *rootfs.Root, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", nil, err
	}
	if _, err := r.Rel(image); err == nil {
		real, err := r.Resolve(image)
		if errors.Is(err, rootfs.ErrEscapes) {
			return "", nil, escapeError(fmt.Sprintf("%s: the image path%s leads outside the root %s; refusing to read or replace it", image, linkNote(r, image), r.Dir()))
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", image, err)
		}
		return real, r, nil
	}
	real, err := filepath.EvalSymlinks(image)
	if err != nil {
		return "", nil, err
	}
	dr, err := rootfs.At(filepath.Dir(real))
	return real, dr, err
}

// escapeError is a message that is rootfs.ErrEscapes to errors.Is without repeating its text.
type escapeError string

func (e escapeError) Error() string { return string(e) }
func (e escapeError) Unwrap() error { return rootfs.ErrEscapes }

// imageFile is an image open for reading: path as given (used in messages), real the file it
// leads to, r the root it is read and replaced through. Only a regular file is opened: a
// FIFO or device is an error at once, never a read that blocks.
type imageFile struct {
	path, real string
	r          *rootfs.Root
	f          *os.File
	size       int64
	perm       fs.FileMode
}

// openImage opens image (see imageFile); an empty file is ErrEmptyImage.
func openImage(root, image string) (*imageFile, error) {
	real, r, err := resolveImage(root, image)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(real)
	if err != nil {
		if real != filepath.Clean(image) {
			return nil, fmt.Errorf("%s: leads to %s: %w", image, real, err)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: %w", image, ErrEmptyImage)
	}
	return &imageFile{path: image, real: real, r: r, f: f, size: st.Size(), perm: st.Mode().Perm()}, nil
}

func (img *imageFile) Close() error { return img.f.Close() }

// SameImage reports whether two image paths lead to the same file (each resolved as
// openImage resolves it).
func SameImage(root, a, b string) bool {
	ra, _, errA := resolveImage(root, a)
	rb, _, errB := resolveImage(root, b)
	if errA != nil || errB != nil {
		return false
	}
	fa, errA := os.Lstat(ra)
	fb, errB := os.Lstat(rb)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// OpenImage parses the image at image as openImage opens it (under root, symlinks followed
// inside it; a regular, non-empty file only) and returns it with the function closing it.
func OpenImage(root, image string) (*initramfs.Image, func(), error) {
	img, err := openImage(root, image)
	if err != nil {
		return nil, nil, err
	}
	im, err := initramfs.Parse(img.f, img.size, image)
	if err != nil {
		img.Close()
		return nil, nil, err
	}
	return im, func() { img.Close() }, nil
}

// replace writes the image anew through write and puts it in place of the file the image path
// leads to, atomically (a temporary file next to it, named for leftover removal: see
// rootfs.TempName): a symlink at the image path stays a symlink.
func (img *imageFile) replace(write func(io.Writer) error) error {
	return img.r.WriteAtomic(img.real, img.perm, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		testPoint("image-written")
		return nil
	})
}

// Update rebuilds release's image if it has one. The generator writes a new file next to the
// image, which then replaces it by rename: the old image stays whole until the new one is.
func (g GeneratorUpdater) Update(release string) error {
	log := g.Log
	if log == nil {
		log = func(string) {}
	}
	if g.CheckProg != "" {
		log(fmt.Sprintf("%s: %s %s", release, g.CheckProg, release))
		if g.DryRun {
			return nil
		}
		return run(g.CheckProg, release)
	}
	img, err := LocateImage(g.Root, release)
	if err != nil {
		return err
	}
	if img == "" {
		log(fmt.Sprintf("%s: no initramfs image; the kernel's installation will build it", release))
		return nil
	}
	argv := rebuildCommand(g.Generator, g.Root, release, img)
	log(fmt.Sprintf("%s: %s", release, strings.Join(argv, " ")))
	if g.DryRun {
		return nil
	}
	return rebuild(g.Generator, g.Root, release, img)
}

func run(bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, lastLine(string(out)))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Generator is the program that builds initramfs images anew: KERNEL_INSTALL_INITRD_GENERATOR
// (kernel-install's choice) when set, else dracut. "none" means the host builds no images.
func Generator() string {
	if g := os.Getenv("KERNEL_INSTALL_INITRD_GENERATOR"); g != "" {
		return g
	}
	return "dracut"
}

// RebuildCommand is the command line Rebuild runs for kernel's image under root: dracut's
// conventions (--force --kver K [--kmoddir DIR] OUTPUT), writing out.
func RebuildCommand(root, kernel, out string) []string {
	return rebuildCommand("", root, kernel, out)
}

// rebuildCommand is RebuildCommand with the generator gen ("" for Generator()).
func rebuildCommand(gen, root, kernel, out string) []string {
	if gen == "" {
		gen = Generator()
	}
	args := []string{gen, "--force", "--kver", kernel}
	if r, _ := filepath.Abs(root); r != "/" {
		args = append(args, "--kmoddir", kmod.ModulesDir(root, kernel))
	}
	return append(args, out)
}

// Rebuild builds kernel's image at image anew with the generator (see Generator), into a
// temporary file next to it that is synced and renamed over it: the old image stays whole
// until the new one is complete, and a failed build leaves it untouched.
func Rebuild(root, kernel, image string) error { return rebuild("", root, kernel, image) }

// rebuild is Rebuild with the generator gen ("" for Generator()). The generator writes
// where the image path leads (a symlink there stays), into a temporary file named as every
// kabiguard temporary file is, so a killed run's leftover is found and removed later.
func rebuild(gen, root, kernel, image string) error {
	real, r, err := resolveImage(root, image)
	if err != nil {
		return err
	}
	tmp := rootfs.TempName(real, os.Getpid())
	argv := rebuildCommand(gen, root, kernel, tmp)
	if argv[0] == "none" {
		return fmt.Errorf("%s needs a full rebuild, but the initrd generator is \"none\" (KERNEL_INSTALL_INITRD_GENERATOR)", image)
	}
	// The generator resolves its paths by the host's rules: they must land where ours do.
	if _, err := r.ToolPath(tmp); err != nil {
		return err
	}
	if len(argv) > 5 { // --kmoddir DIR, under root
		if mr, err := rootfs.At(root); err != nil {
			return err
		} else if _, err := mr.ToolPath(argv[len(argv)-2]); err != nil {
			return err
		}
	}
	r.Remove(tmp)
	if err := run(argv[0], argv[1:]...); err != nil {
		r.Remove(tmp)
		return err
	}
	if err := r.Commit(tmp, real, 0); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// ImageWork is the initramfs step of every command that may change links (link, the kernel
// hooks, weak-modules): under the tree lock, so that no refresh computed from an older tree
// replaces an image written from a newer one, it removes what killed runs left, then
// refreshes the image of every kernel this run changed and of every kernel an earlier run
// left owed (weakupdates.MarkImageOwed), and settles each debt only once the image is current.
type ImageWork struct {
	Root    string
	Changed []string          // kernels whose links this run changed
	Earlier []string          // kernels owed by earlier runs (weakupdates.ImagesOwed before this run's Sync)
	Skip    map[string]string // kernel → why its image is not this run's to refresh; its debt goes
	Failed  []string          // kernels whose link changes failed this run: they stay owed
	Updater InitramfsUpdater  // how an image is brought up to date
	DryRun  bool              // say what would be done; take no lock, change nothing
	Log     func(string)      // progress and the owed work, one line each
}

// Run does the work (see ImageWork). Every kernel whose image could not be made current
// stays owed and is named in the error.
func (w ImageWork) Run() error {
	log := w.Log
	if log == nil {
		log = func(string) {}
	}
	if !w.DryRun {
		unlock, err := weakupdates.Lock(w.Root)
		if err != nil {
			return err
		}
		defer unlock()
		RemoveLeftovers(w.Root, log)
	}
	owed, err := weakupdates.ImagesOwed(w.Root)
	if err != nil {
		return err
	}
	kernels := owedKernels(w.Changed, owed)
	earlier := map[string]bool{}
	for _, k := range w.Earlier {
		earlier[k] = true
	}
	if u, ok := w.Updater.(*RefreshUpdater); ok {
		u.Total = 0
		for _, k := range kernels {
			if _, skip := w.Skip[k]; !skip {
				u.Total++
			}
		}
	}
	var errs []error
	for _, k := range kernels {
		if earlier[k] {
			log(fmt.Sprintf("%s: its initramfs is owed a refresh since an earlier run changed its links (failed, killed or --no-initramfs)", k))
		}
		if err := w.settle(k, log); err != nil {
			errs = append(errs, err)
		} else if earlier[k] && !w.DryRun {
			log(fmt.Sprintf("%s: owed initramfs work done", k))
		}
	}
	return errors.Join(errs...)
}

// owedKernels is changed and owed together, oldest release first.
func owedKernels(changed, owed []string) []string {
	all := map[string]bool{}
	for _, k := range append(append([]string(nil), changed...), owed...) {
		all[k] = true
	}
	out := make([]string, 0, len(all))
	for k := range all {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return kabi.CompareReleases(out[i], out[j]) < 0 })
	return out
}

// settle brings k's image up to date and then drops its debt; a kernel skipped or no longer
// installed owes nothing. A kernel whose depmod is still pending keeps its debt: its
// modules.dep, which the refresh reads, does not list its links yet.
func (w ImageWork) settle(k string, log func(string)) error {
	clear := func() error {
		if w.DryRun {
			return nil
		}
		return weakupdates.ClearImageOwed(w.Root, k)
	}
	if why, skip := w.Skip[k]; skip {
		// A kernel being removed owes nothing. One whose installation builds its image next
		// keeps its debt until a later run finds that image current: the generator may fail,
		// be killed, or never run.
		if strings.HasPrefix(why, "being removed") || !installed(w.Root, k) {
			return clear()
		}
		return nil
	}
	if !installed(w.Root, k) {
		return clear()
	}
	if _, refresh := w.Updater.(*RefreshUpdater); w.DryRun && refresh {
		// A dry run changed no link: a refresh computed from the tree on disk would describe
		// the state before the run. Name the image the real run would refresh instead.
		img, err := LocateImage(w.Root, k)
		if img != "" {
			log(fmt.Sprintf("%s: would refresh %s", k, img))
		}
		return err
	}
	if slices.Contains(w.Failed, k) {
		return fmt.Errorf("%s: initramfs not refreshed: its links could not all be changed; it stays owed until a run makes them", k)
	}
	if !w.DryRun && weakupdates.DepmodPending(w.Root, k) {
		return fmt.Errorf("%s: initramfs not refreshed: depmod has not indexed its changed links yet; it stays owed until the next run", k)
	}
	if err := w.Updater.Update(k); err != nil {
		if w.DryRun {
			return err
		}
		return fmt.Errorf("%w (its initramfs stays owed; every later 'kabiguard link' or kernel hook tries again)", err)
	}
	return clear()
}

// installed reports whether root has kernel k's modules (its kernel/ directory), as depmod
// runs only for such kernels.
func installed(root, k string) bool {
	r, err := rootfs.At(root)
	if err != nil {
		return false
	}
	fi, err := r.Stat(filepath.Join(kmod.ModulesDir(root, k), "kernel"))
	return err == nil && fi.IsDir()
}

// OwedImages lists the kernels under root that have an image owed a refresh, for status.
// Kernels with no image (or no longer installed) owe nothing a boot would see.
func OwedImages(root string) []string {
	owed, err := weakupdates.ImagesOwed(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, k := range owed {
		if img, err := LocateImage(root, k); installed(root, k) && (img != "" || err != nil) {
			out = append(out, k)
		}
	}
	return out
}

// leftoverAge: a temporary file of the older naming (no pid in it) is removed only when no
// run can still be writing it; refreshes take seconds, generator runs a minute or two.
const leftoverAge = 30 * time.Minute

// RemoveLeftovers removes what killed runs of kabiguard left, and says so: temporary images
// next to the kernels' images under root (".NAME.kabiguard-tmp-PID", whose process is gone;
// ".NAME.tmp-N" and "NAME.kabiguard-new" of older versions once old), and the depmod scratch
// trees in /dev/shm or the temporary directory; also next to the images more (host paths
// under root) lead to. Call it under the tree lock.
func RemoveLeftovers(root string, log func(string), more ...string) {
	r, err := rootfs.At(root)
	if err != nil {
		return
	}
	dirs := map[string]bool{r.Path("boot"): true}
	for _, img := range more { // images named on the command line, where they lead
		if real, _, err := resolveImage(root, img); err == nil && rootfs.Within(r.Dir(), real) {
			dirs[filepath.Dir(real)] = true
		}
	}
	if owed, err := weakupdates.ImagesOwed(root); err == nil {
		for _, k := range owed {
			if img, err := LocateImage(root, k); err == nil && img != "" {
				if real, _, err := resolveImage(root, img); err == nil {
					dirs[filepath.Dir(real)] = true
				}
			}
		}
	}
	for dir := range dirs {
		ents, err := r.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !leftoverImage(e, time.Now()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := r.Remove(p); err == nil {
				log(fmt.Sprintf("removed %s, left by an interrupted image refresh or rebuild", p))
			}
		}
	}
	for _, dir := range []string{"/dev/shm", os.TempDir()} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !e.IsDir() || !leftoverScratch(e, time.Now()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := os.RemoveAll(p); err == nil {
				log(fmt.Sprintf("removed %s, the depmod scratch tree of an interrupted image refresh", p))
			}
		}
	}
}

// leftoverImage reports whether a file next to an image is a temporary image of a run that is
// over: one carrying rootfs.TempMarker and the pid of a process that no longer lives, or a
// temporary name of an older version (".initrd.img-K.tmp-123", "initrd.img-K.kabiguard-new")
// that nothing has written for leftoverAge.
func leftoverImage(e fs.DirEntry, now time.Time) bool {
	name := e.Name()
	if pid, ok := tempPid(name); ok {
		return strings.HasPrefix(name, ".") && isImageName(strings.TrimPrefix(name[:strings.Index(name, rootfs.TempMarker)], ".")) && !alive(pid)
	}
	base, old := "", false
	if b, n, ok := strings.Cut(strings.TrimPrefix(name, "."), ".tmp-"); ok && strings.HasPrefix(name, ".") && allDigits(n) {
		base, old = b, true
	} else if b, ok := strings.CutSuffix(name, ".kabiguard-new"); ok {
		base, old = b, true
	}
	if !old || !isImageName(base) {
		return false
	}
	fi, err := e.Info()
	return err == nil && now.Sub(fi.ModTime()) > leftoverAge
}

// leftoverScratch is leftoverImage for a depmod scratch tree.
func leftoverScratch(e fs.DirEntry, now time.Time) bool {
	name := e.Name()
	if !strings.HasPrefix(name, depmodScratchPrefix) {
		return false
	}
	if pid, ok := tempPid(name); ok {
		return !alive(pid)
	}
	// The older name: "kabiguard-depmod-" and a random number.
	if n, ok := strings.CutPrefix(name, depmodScratchPrefix+"-"); !ok || !allDigits(n) {
		return false
	}
	fi, err := e.Info()
	return err == nil && now.Sub(fi.ModTime()) > leftoverAge
}

// isImageName reports whether a file name is one of ImagePaths' names.
func isImageName(name string) bool {
	return strings.HasPrefix(name, "initramfs-") && strings.HasSuffix(name, ".img") ||
		strings.HasPrefix(name, "initrd.img-") || strings.HasPrefix(name, "initrd-")
}

// tempPid returns the pid in a name carrying rootfs.TempMarker (the digits after it).
func tempPid(name string) (int, bool) {
	i := strings.Index(name, rootfs.TempMarker)
	if i < 0 {
		return 0, false
	}
	rest := name[i+len(rootfs.TempMarker):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	pid, err := strconv.Atoi(rest[:n])
	return pid, err == nil && pid > 0
}

// alive reports whether process pid exists (ours counts: a name with our pid is being written
// by this process). A process of another user still exists: EPERM.
func alive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
