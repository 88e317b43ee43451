package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/src/kernels/K")
	mk("lib/modules/K")
	mk("lib/modules/OLD/extra")
	mk("lib/modules/NEW/weak-updates")
	link("/usr/src/kernels/K", "lib/modules/K/build")                        // RHEL: absolute
	link("/lib/modules/OLD/extra/x.ko", "lib/modules/NEW/weak-updates/x.ko") // RHEL weak link
	link("../../OLD/extra/y.ko", "lib/modules/NEW/weak-updates/y.ko")        // relative
	link("../../../../../../../../etc/passwd", "lib/modules/NEW/weak-updates/z.ko")
	link("loop", "lib/modules/NEW/loop")

	for rel, want := range map[string]string{
		"lib/modules/K/build/Module.symvers": "usr/src/kernels/K/Module.symvers",
		"lib/modules/NEW/weak-updates/x.ko":  "lib/modules/OLD/extra/x.ko",
		"lib/modules/NEW/weak-updates/y.ko":  "lib/modules/OLD/extra/y.ko",
		"/lib/modules/K":                     "lib/modules/K",
	} {
		got, err := Resolve(root, rel)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("Resolve(%s) = %s, %v; want %s", rel, got, err, want)
		}
	}
	if _, err := Resolve(root, "lib/modules/NEW/weak-updates/z.ko"); !errors.Is(err, ErrEscapes) {
		t.Errorf("escaping link: err = %v", err)
	}
	if _, err := Resolve(root, "lib/modules/NEW/loop"); err == nil {
		t.Errorf("self-referencing link resolved")
	}
	if !Within(root, filepath.Join(root, "a/b")) || Within(root, filepath.Dir(root)) || Within(root, root+"x/y") {
		t.Errorf("Within is wrong")
	}
}
