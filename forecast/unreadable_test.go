package forecast

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// A build that cannot be read is named with its cause in the forecast, never a bare
// "unreadable": the admin must know which file to fix. The sample's kabiuser build is cut
// short; the package is the sample's 6.1.0-53 kernel, unpacked.
func TestUnreadableBuildIsNamed(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	build := filepath.Join(root, "lib/modules", testkit.SampleK50, "extra/kabiuser/kabiuser.ko.xz")
	data, err := os.ReadFile(build)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(build, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(t.TempDir(), "kernel")
	src := filepath.Join(testkit.RepoDir(), "testdata/sample/kernels", testkit.SampleK53)
	dst := filepath.Join(pkg, "lib/modules", testkit.SampleK53)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	sym, err := os.ReadFile(filepath.Join(src, "symvers.xz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "symvers.xz"), sym, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "lib/modules", testkit.SampleK53)); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := Run(pkg, Options{Root: root, Config: cfg})
	if err != nil || len(reps) != 1 {
		t.Fatalf("forecast: %v, %d reports", err, len(reps))
	}
	for _, m := range reps[0].Modules {
		if m.Module != "kabiuser" {
			continue
		}
		if m.State != weakupdates.Unreadable || !strings.Contains(m.Reason, build) || !strings.Contains(m.Reason, "cannot be read") {
			t.Errorf("kabiuser: state %s, reason %q; want unreadable, naming %s and the cause", m.State, m.Reason, build)
		}
		return
	}
	t.Errorf("no kabiuser in the forecast: %+v", reps[0].Modules)
}
