// Package hooks holds the flows the host runs at kernel and module changes: weak-modules
// calls, kernel-install plugins, Debian kernel hooks.
package hooks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// FindImage returns the host path of release's initramfs under root, or "".
func FindImage(root, release string) string {
	for _, p := range ImagePaths(release) {
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			return filepath.Join(root, p)
		}
	}
	return ""
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
	img := FindImage(g.Root, release)
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
		args = append(args, "--kmoddir", filepath.Join(root, "lib", "modules", kernel))
	}
	return append(args, out)
}

// Rebuild builds kernel's image at image anew with the generator (see Generator), into a
// temporary file next to it that is synced and renamed over it: the old image stays whole
// until the new one is complete, and a failed build leaves it untouched.
func Rebuild(root, kernel, image string) error { return rebuild("", root, kernel, image) }

// rebuild is Rebuild with the generator gen ("" for Generator()).
func rebuild(gen, root, kernel, image string) error {
	tmp := image + ".kabiguard-new"
	argv := rebuildCommand(gen, root, kernel, tmp)
	if argv[0] == "none" {
		return fmt.Errorf("%s needs a full rebuild, but the initrd generator is \"none\" (KERNEL_INSTALL_INITRD_GENERATOR)", image)
	}
	os.Remove(tmp)
	if err := run(argv[0], argv[1:]...); err != nil {
		os.Remove(tmp)
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		if st, serr := os.Stat(image); serr == nil {
			err = os.Chmod(tmp, st.Mode().Perm())
		}
	}
	if err == nil {
		err = os.Rename(tmp, image)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if d, err := os.Open(filepath.Dir(image)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
