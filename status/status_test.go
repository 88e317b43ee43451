package status_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/gate"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/internal/testkit/sample"
	"github.com/kabiguard/kabiguard/status"
)

// Ready agrees with the real gate (gate.Check) for every kernel of the sandbox root, as it
// goes from nothing linked, to linked without images, to 53 with an image holding the
// required early kabidemo; OK is every kernel ready.
func TestReadyAgreesWithTheGate(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	compare := func(step string) map[string]bool {
		t.Helper()
		rep, err := status.Collect(root, cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ready, all := map[string]bool{}, true
		for _, k := range rep.Kernels {
			res, err := gate.Check(gate.Options{Root: root, Kernel: k, Config: cfg})
			if err != nil {
				t.Fatalf("%s: gate %s: %v", step, k, err)
			}
			ready[k] = rep.Ready(k)
			all = all && ready[k]
			if ready[k] != res.OK {
				t.Errorf("%s: %s ready %v, the gate says %v (%+v)", step, k, ready[k], res.OK, res.Failed())
			}
		}
		if len(rep.Kernels) != 3 || rep.OK() != all {
			t.Errorf("%s: kernels %v, OK %v, every kernel ready %v", step, rep.Kernels, rep.OK(), all)
		}
		return ready
	}
	compare("nothing linked")
	if _, err := hooks.Run(hooks.Options{Root: root, Config: cfg, NoInitramfs: true}); err != nil {
		t.Fatal(err)
	}
	compare("linked, no image")
	sample.Image(t, root, sample.K53, filepath.Join(root, "boot", "initramfs-"+sample.K53+".img"))
	if ready := compare("53 with its image"); !ready[sample.K53] {
		t.Errorf("53 (kabidemo weak and in its image) not ready: the test's premise failed")
	}
	if err := os.Remove(filepath.Join(root, "boot", "initramfs-"+sample.K53+".img")); err != nil {
		t.Fatal(err)
	}
	compare("53's image gone")
}
