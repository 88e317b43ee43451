package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// TestDemo runs the README's first command, `make demo`, offline on the embedded sample, and
// checks the outcomes it shows: the check's verdicts, links made and removed, the image of
// 6.1.0-54 verified, refreshed by weak-modules when 6.1.0-50 goes, verified again, and no
// dangling link. Needs depmod (kmod).
func TestDemo(t *testing.T) {
	cmd := exec.Command("make", "demo", "BIN="+t.TempDir())
	cmd.Dir = testkit.RepoDir()
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, text)
	}
	for _, want := range []string{
		`kabidemo\.ko\.xz: compatible with 6\.1\.0-53-amd64`,
		`kabidemo\.ko\.xz: INCOMPATIBLE with 6\.1\.0-54-amd64: misc_deregister: module wants CRC 0x[0-9a-f]+, kernel has 0x[0-9a-f]+`,
		`6\.1\.0-53-amd64: create ROOT/lib/modules/6\.1\.0-53-amd64/weak-updates/kabidemo/kabidemo\.ko\.xz -> \.\./\.\./\.\./6\.1\.0-50-amd64/extra/kabidemo/kabidemo\.ko\.xz`,
		`ROOT/boot/initramfs-6\.1\.0-54-amd64\.img: 4 modules of 6\.1\.0-54-amd64, all current`,
		`6\.1\.0-54-amd64 \(kernel \d of \d\): refreshed ROOT/boot/initramfs-6\.1\.0-54-amd64\.img \(usr/lib/modules/6\.1\.0-54-amd64/weak-updates/kabiprov/kabiprov\.ko\.xz, usr/lib/modules/6\.1\.0-54-amd64/weak-updates/kabiuser/kabiuser\.ko\.xz\)`,
		`ROOT/boot/initramfs-6\.1\.0-54-amd64\.img: 2 modules of 6\.1\.0-54-amd64, all current`,
		`No link dangles: 0\n`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("make demo does not show %q", want)
		}
	}
	if strings.Contains(text, "/tmp/kabiguard-demo") {
		t.Error("make demo prints its temporary root instead of ROOT")
	}
	if t.Failed() {
		t.Logf("make demo:\n%s", text)
	}
}
