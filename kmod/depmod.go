package kmod

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// depmodConfDirs are depmod's configuration directories, relative to a root, in its order.
var depmodConfDirs = [...]string{"etc/depmod.d", "run/depmod.d", "usr/local/lib/depmod.d", "lib/depmod.d", "usr/lib/depmod.d"}

// Depmod runs the real depmod (bin; "" means "depmod" from PATH) for kernel under root. Under
// an alternate root it passes -b and that root's depmod.d directories, so the host's
// configuration never decides. depmod resolves paths by the host's rules: the kernel's
// directory and each depmod.d directory must resolve there as they do inside the root
// (rootfs.ToolPath), or depmod is not run.
func Depmod(root, kernel, bin string) error {
	if bin == "" {
		bin = "depmod"
	}
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	if _, err := r.ToolPath(ModulesDir(root, kernel)); err != nil {
		return fmt.Errorf("depmod %s not run: %w", kernel, err)
	}
	args := []string{"-a"}
	if r.Dir() != "/" {
		args = append(args, "-b", root)
		for _, d := range depmodConfDirs {
			p := filepath.Join(root, d)
			if fi, err := r.Stat(p); err != nil || !fi.IsDir() {
				continue
			}
			if _, err := r.ToolPath(p); err != nil {
				return fmt.Errorf("depmod %s not run: %w", kernel, err)
			}
			args = append(args, "-C", p)
		}
	}
	args = append(args, kernel)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// DepmodAdvice is the depmod command an admin runs to index kernel's modules under root.
func DepmodAdvice(root, kernel string) string {
	if filepath.Clean(root) == "/" {
		return "depmod -a " + kernel
	}
	return "depmod -b " + root + " -a " + kernel
}
