package forecast

import (
	"os"
	"path/filepath"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Host is what a forecast judges a package's kernels against without reading any file: one
// host's module inventory, configuration and DKMS registrations, as forecast/manifest rebuilds
// them from the JSON a host printed. Run reads the same facts from a root instead.
type Host struct {
	Inventory *inventory.Inventory
	Config    *config.Config
	// Admin holds, by release, the modules behind the admin's own links in that kernel's
	// weak-updates/ (weakupdates.KernelPlan.Admin): they stay through an upgrade of that
	// release and serve the builds that use them.
	Admin map[string]map[string]*weakupdates.AdminLink
	// Headers lists the releases whose headers are installed: DKMS builds its modules for
	// those kernels when they are installed (DKMS).
	Headers map[string]bool
	DKMS    map[string]string // DKMSBuilds of the host
}

// Forecast judges each kernel read from pkg (Read's result, shared by every host) against h.
// It touches no file: the planner decides from h alone.
func (h *Host) Forecast(pkg *pkgfile.Package, kernels []*Kernel) []*Report {
	pol := weakupdates.PolicyFrom(h.Config, nil, nil)
	dkms := func(release string) map[string]string {
		if !h.Headers[release] {
			return nil
		}
		if h.DKMS == nil {
			return map[string]string{}
		}
		return h.DKMS
	}
	var out []*Report
	for _, k := range kernels {
		// Only the package's own release is planned: its plan is all a forecast reads, and
		// an installed kernel of that release lends it the admin's links.
		installed := map[string]*weakupdates.KernelPlan{}
		if a := h.Admin[k.Release]; a != nil {
			installed[k.Release] = &weakupdates.KernelPlan{Release: k.Release, Admin: a}
		}
		out = append(out, judge(pkg, k, h.Inventory, pol, installed, h.Config, dkms))
	}
	return out
}

// hostDKMS answers judge's question from the files under root: DKMSBuilds when the
// release's headers are installed there.
func hostDKMS(root string) func(release string) map[string]string {
	return func(release string) map[string]string {
		if fi, err := os.Stat(filepath.Join(root, "usr", "src", "linux-headers-"+release)); err == nil && fi.IsDir() {
			return DKMSBuilds(root)
		}
		return nil
	}
}
