package exports

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// imageRoot makes a root holding only what kernel release's image package installs (its
// /boot/vmlinuz and module tree, hard-linked from the extraction at pkg): no headers.
func imageRoot(t testing.TB, pkg, release string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"boot", "lib/modules"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(pkg, "boot", "vmlinuz-"+release), filepath.Join(root, "boot", "vmlinuz-"+release)); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(pkg, "lib", "modules", release)
	if out, err := exec.Command("cp", "-al", src, filepath.Join(root, "lib", "modules", release)).CombinedOutput(); err != nil {
		t.Fatalf("cp -al %s: %v\n%s", src, err, out)
	}
	return root
}
