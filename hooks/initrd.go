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
	Generator string // dracut binary; default "dracut"
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
	gen := g.Generator
	if gen == "" {
		gen = os.Getenv("KERNEL_INSTALL_INITRD_GENERATOR") // kernel-install's choice, if any
	}
	if gen == "" {
		gen = "dracut"
	}
	tmp := img + ".kabiguard-new"
	args := []string{"-f", "--kver", release}
	if r, _ := filepath.Abs(g.Root); r != "/" {
		args = append(args, "--kmoddir", filepath.Join(g.Root, "lib", "modules", release))
	}
	args = append(args, tmp)
	log(fmt.Sprintf("%s: %s %s", release, gen, strings.Join(args, " ")))
	if g.DryRun {
		return nil
	}
	if err := run(gen, args...); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, img); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
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
