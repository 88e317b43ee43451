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

// RHEL 9.2 and later split a kernel: kernel-core (vmlinuz, symvers), kernel-modules-core and
// kernel-modules (the in-tree modules); a kmod package may bring a build for the new kernel in
// the same transaction. Read together they are one kernel: a required in-tree module shipped
// in the modules package is native, and so is the kmod's build. Alone, the core package lacks
// both, and the modules package is no kernel at all (an error that says what to do). The
// packages are the sample's 6.1.0-54 kernel split that way, for a host that has only the
// older kernels.
func TestSplitKernelReadTogether(t *testing.T) {
	k := testkit.SampleK54
	sample := filepath.Join(testkit.RepoDir(), "testdata/sample")
	dir := t.TempDir()
	put := func(pkg, rel, src string) string {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, pkg, "lib/modules", k, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, pkg)
	}
	core := put("kernel-core", "symvers.xz", filepath.Join(sample, "kernels", k, "symvers.xz"))
	mods := put("kernel-modules", "kernel/lib/crc-itu-t.ko.xz", filepath.Join(sample, "kernels", k, "kernel/lib/crc-itu-t.ko.xz"))
	kmodPkg := put("kmod-kabidemo", "extra/kabidemo/kabidemo.ko.xz", filepath.Join(sample, "modules", k, "kabidemo.ko.xz"))

	root := testkit.SampleDemoRoot(t)
	if err := os.RemoveAll(filepath.Join(root, "lib/modules", k)); err != nil { // the kernel is new
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, config.RequiredDir, "intree.conf"), []byte("crc_itu_t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Root: root, Config: cfg}
	state := func(r *Report, name string) Module {
		for _, m := range r.Modules {
			if m.Module == name {
				return m
			}
		}
		t.Fatalf("%s is not in the forecast: %+v", name, r.Modules)
		return Module{}
	}

	alone, err := Run(core, opt)
	if err != nil || len(alone) != 1 {
		t.Fatalf("forecast of kernel-core alone: %v", err)
	}
	if m := state(alone[0], "crc_itu_t"); m.State == weakupdates.Native {
		t.Errorf("kernel-core alone: crc_itu_t is %s (%s), but only kernel-modules ships it", m.State, m.Reason)
	}
	if alone[0].Keeps() {
		t.Errorf("kernel-core alone keeps every required module; crc_itu_t is not in it")
	}

	both, err := RunTogether([]string{core, mods, kmodPkg}, opt)
	if err != nil || len(both) != 1 {
		t.Fatalf("forecast of the three packages together: %v, %d reports", err, len(both))
	}
	r := both[0]
	for _, name := range []string{"crc_itu_t", "kabidemo"} {
		if m := state(r, name); m.State != weakupdates.Native {
			t.Errorf("together: %s is %s (%s), want native", name, m.State, m.Reason)
		}
	}
	if m := state(r, "crc_itu_t"); !strings.Contains(m.Reason, "kernel-modules") {
		t.Errorf("crc_itu_t's reason does not name its package: %q", m.Reason)
	}
	if !r.Keeps() || !strings.Contains(r.Package, "kernel-core") || !strings.Contains(r.Package, "kernel-modules") {
		t.Errorf("together: keeps %v, packages %q", r.Keeps(), r.Package)
	}

	if _, err := Run(mods, opt); err == nil || !strings.Contains(err.Error(), "together with the package of its kernel") {
		t.Errorf("kernel-modules alone: err = %v, want one saying to forecast it with its kernel's package", err)
	}
}
