package kabi

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// A kernel installed without its headers is judged from its image (kabi/exports): for every
// pair of real kernels and real modules (the project's own and v4l2loopback, built for each
// kernel), every verdict equals the one against the headers' Module.symvers.
func TestDerivedExportsGiveTheSameVerdicts(t *testing.T) {
	var kernels []*testkit.Kernel
	for _, abi := range []string{"6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55", "6.12.107+deb12"} {
		kernels = append(kernels, testkit.FetchKernel(t, abi))
	}
	var mods []*module.Module
	for _, k := range kernels {
		mods = append(mods, realModules(t, k, 3)...) // kabidemo and kabipair (two modules)
		if !strings.HasPrefix(k.Release, "6.1.") {
			continue // Debian 12's v4l2loopback-dkms 0.12.7 does not build for 6.12
		}
		m, err := module.Open(testkit.V4L2Loopback(t, k))
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, m)
	}
	compatible, incompatible := 0, 0
	for _, k := range kernels {
		withHeaders, err := LoadKernel(testkit.NewRoot(t, k), k.Release)
		if err != nil {
			t.Fatal(err)
		}
		derived, err := LoadKernel(testkit.ImageRoot(t, k), k.Release)
		if err != nil {
			t.Fatal(err)
		}
		if withHeaders.Provenance == derived.Provenance {
			t.Fatalf("%s: both loads read %s", k.Release, derived.Provenance)
		}
		for _, m := range mods {
			want, got := Check(withHeaders, []*module.Module{m}, nil), Check(derived, []*module.Module{m}, nil)
			for i := range want {
				want[i].Symvers, got[i].Symvers = "", "" // they name different sources, by design
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %s: derived %+v, headers %+v", m.Path, k.Release, got, want)
			}
			if want[0].Compatible {
				compatible++
			} else {
				incompatible++
			}
		}
	}
	t.Logf("%d module x kernel pairs: %d compatible, %d incompatible, all equal", compatible+incompatible, compatible, incompatible)
	if compatible == 0 || incompatible == 0 {
		t.Errorf("%d compatible and %d incompatible verdicts: the comparison needs both", compatible, incompatible)
	}
}
