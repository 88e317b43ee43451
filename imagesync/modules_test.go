package imagesync

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/initramfs"
)

// Modules finds an image's kernel modules by release (through usr/lib and a lib -> usr/lib
// symlink), each named and its compression told by kmod's rules, symlinks in weak-updates
// included, with the release's modules.dep parsed.
func TestModulesOfAnImage(t *testing.T) {
	const k = "6.1.0-99-test"
	mdir := "usr/lib/modules/" + k + "/"
	img := filepath.Join(t.TempDir(), "initrd.img")
	files := []initramfs.File{
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n")),
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular(mdir+"kernel/fs/a.ko", 0o644, []byte("\x7fELF a")),
		initramfs.Regular(mdir+"kernel/fs/b.ko.xz", 0o644, []byte("\xfd7zXZ\x00 b")),
		initramfs.Regular(mdir+"kernel/drivers/c-d.ko.zst", 0o644, []byte("\x28\xb5\x2f\xfd c")),
		initramfs.Symlink(mdir+"weak-updates/e.ko", "../../6.1.0-98-test/extra/e.ko"),
		initramfs.Regular(mdir+"modules.dep", 0o644, []byte("kernel/fs/a.ko:\nkernel/fs/b.ko.xz: kernel/fs/a.ko\nkernel/drivers/c-d.ko.zst: kernel/fs/b.ko.xz kernel/fs/a.ko\nweak-updates/e.ko:\n")),
	}
	if err := (initramfs.Writer{}).WriteFile(img, files); err != nil {
		t.Fatal(err)
	}
	im, err := initramfs.Open(img, initramfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	mods, err := Modules(im)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 1 || mods[0].Release != k || mods[0].Dir != "usr/lib/modules/"+k {
		t.Fatalf("Modules: %+v", mods)
	}
	var names []string
	for _, m := range mods[0].Modules {
		names = append(names, m.Name+":"+string(m.Compression))
	}
	if strings.Join(names, " ") != "c_d:zstd a:none b:xz e:none" {
		t.Errorf("modules %q", names)
	}
	if d, _ := mods[0].Dep.Lookup("c_d"); d.Path != "kernel/drivers/c-d.ko.zst" || strings.Join(d.Needs, " ") != "kernel/fs/b.ko.xz kernel/fs/a.ko" || len(mods[0].Dep.Modules) != 4 {
		t.Errorf("modules.dep: %v", mods[0].Dep)
	}
}
