package forecast

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/gate"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// A forecast says what installing the package then makes true: for each case, the host holds
// one real kernel with a real out-of-tree module built for it and required; the forecast of a
// real kernel package is compared, module by module, with the plan and the gate after that
// kernel is installed into the host (its files, its headers' Module.symvers, depmod, links).
// Nothing is expected by the test itself: the installed truth is the expectation.
func TestForecastAgreesWithInstalling(t *testing.T) {
	for _, tc := range []struct {
		name, host, pkg, share string
	}{
		{"same series", "6.1.0-55", "6.1.0-56", "series"},
		{"other series", "6.1.0-54", "6.12.107+deb12", "series"},
		{"other series shared", "6.1.0-54", "6.12.107+deb12", "any"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := testkit.FetchKernel(t, tc.host)
			deb, target := imageDeb(t, tc.pkg)
			root := testkit.NewRoot(t, host)
			testkit.Install(t, root, host.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, host))
			testkit.Depmod(t, root, host.Release)
			writeConf(t, root, "etc/kabiguard/required.d/test.conf", "v4l2loopback\n")
			writeConf(t, root, "etc/kabiguard/kabiguard.conf", "share_builds = "+tc.share+"\n")
			cfg, err := config.Load(root)
			if err != nil {
				t.Fatal(err)
			}

			reports, err := Run(deb, Options{Root: root, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if len(reports) != 1 || reports[0].Kernel != target.Release {
				t.Fatalf("reports %+v, want one for %s", reports, target.Release)
			}
			fc := reports[0]

			// Now install it for real and let kabiguard do its job.
			testkit.AddKernel(t, root, target)
			if _, err := weakupdates.Sync(cfg, weakupdates.SyncOptions{Root: root}); err != nil && !weakupdates.OnlyIncomplete(err) {
				t.Fatal(err)
			}
			res, err := weakupdates.Preview(cfg, root, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rows, _ := weakupdates.Status(res, cfg)
			after := map[string]weakupdates.Row{}
			for _, r := range rows {
				if r.Kernel == target.Release {
					after[r.Module] = r
				}
			}
			for _, m := range fc.Modules {
				r, ok := after[m.Module]
				if !ok {
					t.Errorf("%s: forecast %s, but status after installing has no row", m.Module, m.State)
					continue
				}
				if m.State != r.State || m.From != r.From {
					t.Errorf("%s: forecast %s from %q (%s), installed %s from %q (%s)", m.Module, m.State, m.From, m.Reason, r.State, r.From, r.Reason)
				}
			}
			g, err := gate.Check(gate.Options{Root: root, Kernel: target.Release, Config: cfg, NoInitrd: true})
			if err != nil {
				t.Fatal(err)
			}
			if fc.Keeps() != g.OK {
				t.Errorf("forecast keeps=%v (lost %v), the gate after installing says %s", fc.Keeps(), fc.Lost, g.Action)
			}
			t.Logf("%s: v4l2loopback %s %s; gate %s", fc.Kernel, fc.Modules[0].State, fc.Modules[0].From, fc.Gate)
		})
	}
}

func writeConf(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
