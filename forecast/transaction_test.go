package forecast

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast/apthook"
)

// A real upgrade brings the kernel metapackage (linux-image-amd64) along: it holds no
// kernel, and the gate neither fails on it nor reports it.
func TestJudgeSkipsMetapackages(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "usr/share/doc/linux-image-amd64"), 0o755))
	must(os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte("Package: linux-image-amd64\nVersion: 6.1.192-1\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDepends: linux-image-6.1.0-55-amd64\nDescription: meta\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "usr/share/doc/linux-image-amd64/README"), []byte("meta\n"), 0o644))
	deb := filepath.Join(t.TempDir(), "linux-image-amd64_6.1.192-1_amd64.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	req := &apthook.Request{Version: 3, Actions: []apthook.Action{{Package: "linux-image-amd64", NewVersion: "6.1.192-1", Direction: "<", Kind: apthook.Unpack, File: deb}}}
	tx, err := Judge(req, Options{Root: t.TempDir(), Config: config.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if len(tx.Kernels) != 0 || tx.Refused() {
		t.Errorf("a metapackage was judged: %+v", tx)
	}
}
