package imagesync

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// GeneratorUpdater rebuilds an existing image with the generator, or hands the kernel to a
// program of the caller's (weak-modules --check-initramfs-prog).
type GeneratorUpdater struct {
	Root      string
	Generator string // the generator; default Generator() (KERNEL_INSTALL_INITRD_GENERATOR, else dracut)
	CheckProg string // if set, run "CheckProg RELEASE" instead
	DryRun    bool
	Log       func(string)
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
	f, err := r.Open(tmp)
	if err == nil {
		err = f.Sync()
		if st, serr := r.Stat(real); err == nil && serr == nil {
			err = f.Chmod(st.Mode().Perm())
		}
		f.Close()
	}
	if err == nil {
		err = r.Rename(tmp, real)
	}
	if err != nil {
		r.Remove(tmp)
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	r.SyncDir(filepath.Dir(real))
	return nil
}
