package kabi

import (
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// Real kernels (downloaded into the test cache on first use): verdicts of real modules
// against tables built for SymbolsNeeded equal those against whole tables, compatible and
// incompatible alike.
func TestWantedTablesGiveTheSameVerdicts(t *testing.T) {
	k50, k53 := testkit.FetchKernel(t, "6.1.0-50"), testkit.FetchKernel(t, "6.1.0-53")
	mods := realModules(t, k50, 40)
	need := SymbolsNeeded(mods...)
	incompatible := 0
	for _, k := range []*testkit.Kernel{k50, k53} {
		whole, err := KernelFromSymvers(k.Symvers)
		if err != nil {
			t.Fatal(err)
		}
		ks, errs := LoadAll([]Target{{Symvers: k.Symvers, Wanted: need}})
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		if len(ks[0].Symvers.Exports) >= len(whole.Symvers.Exports) {
			t.Errorf("%s: the wanted table holds %d exports, the whole one %d", k.Release, len(ks[0].Symvers.Exports), len(whole.Symvers.Exports))
		}
		got, want := Check(ks[0], mods, nil), Check(whole, mods, nil)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: verdicts differ with the wanted table", k.Release)
		}
		for _, v := range want {
			if !v.Compatible {
				incompatible++
			}
		}
	}
	if incompatible == 0 {
		t.Error("no incompatible verdict: the comparison proves nothing about refusals")
	}
}

// realModules opens n real modules built against k: the project's own (testdata/src) and, to
// make up the number, in-tree network drivers of k treated as external.
func realModules(t testing.TB, k *testkit.Kernel, n int) []*module.Module {
	t.Helper()
	var mods []*module.Module
	for _, src := range []string{"kabidemo", "kabipair"} {
		for _, p := range testkit.BuildModules(t, k, filepath.Join(testkit.RepoDir(), "testdata", "src", src)) {
			m, err := module.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			mods = append(mods, m)
		}
	}
	err := filepath.WalkDir(filepath.Join(k.ModulesDir(), "kernel", "drivers", "net"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") || len(mods) >= n {
			return err
		}
		m, err := module.Open(p)
		if err != nil {
			return err
		}
		mods = append(mods, m)
		return nil
	})
	if err != nil || len(mods) != n {
		t.Fatalf("%d real modules of %s, want %d (%v)", len(mods), k.Release, n, err)
	}
	return mods
}
