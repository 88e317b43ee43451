// Command demo-initrd writes, for `make demo`, the initramfs a dracut run would make of a
// kernel's modules: every module file of ROOT/lib/modules/RELEASE (weak-updates links
// followed, their targets' content copied as dracut copies them), the modules.* files of
// depmod and a stand-in /init; zstd-compressed, in
// ROOT/boot/initramfs-RELEASE.img. dracut itself is not needed, so the demo stays offline on a
// machine without it. Usage: demo-initrd ROOT RELEASE
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/kmod"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: demo-initrd ROOT RELEASE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "demo-initrd:", err)
		os.Exit(1)
	}
}

func run(root, release string) error {
	dir := kmod.ModulesDir(root, release)
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n# stand-in: the demo never boots this image\n")),
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !kmod.IsModule(rel) && !strings.HasPrefix(rel, "modules.") {
			return nil // symvers and the like stay on the host
		}
		data, err := os.ReadFile(p) // follows a weak-updates link to the build it names
		if err != nil {
			return err
		}
		files = append(files, initramfs.Regular("usr/lib/modules/"+release+"/"+filepath.ToSlash(rel), 0o644, data))
		return nil
	})
	if err != nil {
		return err
	}
	img := filepath.Join(root, "boot", "initramfs-"+release+".img")
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		return err
	}
	return initramfs.Writer{Compression: compression.Zstd}.WriteFile(img, files)
}
