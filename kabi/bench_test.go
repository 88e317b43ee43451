package kabi

import (
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// sixABIs are the Debian 6.1 kernels of the benchmark.
var sixABIs = []string{"6.1.0-47", "6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55", "6.1.0-56"}

// BenchmarkCheck50x6 checks 50 real modules (the project's own builds and in-tree modules of
// 6.1.0-50 treated as external) against the exports of 6 kernels. "with-load" includes
// reading the 6 Module.symvers files, as one `kabiguard check` run pays; "verdict" is the
// check alone.
func BenchmarkCheck50x6(b *testing.B) {
	var symvers []string
	for _, abi := range sixABIs {
		symvers = append(symvers, testkit.FetchKernel(b, abi).Symvers)
	}
	mods := realModules(b, testkit.FetchKernel(b, "6.1.0-50"), 50)
	load := func() []*Kernel { // as `kabiguard check --symvers ...` loads them
		need := SymbolsNeeded(mods...)
		var targets []Target
		for _, p := range symvers {
			targets = append(targets, Target{Symvers: p, Wanted: need})
		}
		ks, errs := LoadAll(targets)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		return ks
	}
	b.Run("with-load", func(b *testing.B) {
		for range b.N {
			for _, k := range load() {
				Check(k, mods, nil)
			}
		}
	})
	kernels := load()
	b.Run("verdict", func(b *testing.B) {
		for range b.N {
			for _, k := range kernels {
				Check(k, mods, nil)
			}
		}
	})
}
