package manifest

import (
	"encoding/json"
	"io/fs"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kmod"
)

// A module written into a manifest and read back is, for everything the verdict reads, the
// module parsed from its file: the sample's modules, and (not under -short) every 8th module
// of a real Debian kernel, whose tables have weak symbols, namespaces and version entries
// that are not undefined symbols.
func TestModuleRoundTrip(t *testing.T) {
	var paths []string
	glob, _ := filepath.Glob(filepath.Join(testkit.RepoDir(), "testdata/sample/modules/*/*.ko.xz"))
	paths = append(paths, glob...)
	if !testing.Short() {
		k := testkit.FetchKernel(t, "6.1.0-54")
		n := 0
		filepath.WalkDir(filepath.Join(k.ModulesDir(), "kernel"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && kmod.IsModule(p) {
				if n%8 == 0 {
					paths = append(paths, p)
				}
				n++
			}
			return err
		})
	}
	var weak, defined, unversioned int
	for _, p := range paths {
		m, err := module.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(fromModule(m))
		if err != nil {
			t.Fatal(err)
		}
		var back Module
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, data)
		}
		got := back.module(p)
		want := &module.Module{Path: p, Name: m.Name, Vermagic: m.Vermagic, License: m.License, Depends: m.Depends, ImportNS: m.ImportNS,
			Versions: m.Versions, ExtVersions: m.ExtVersions, Exports: m.Exports, Undefined: m.Undefined, ThisModuleSize: m.ThisModuleSize}
		if len(want.Versions) == 0 {
			want.Versions = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read back\n%+v\nparsed\n%+v", p, got, want)
		}
		weak += len(back.Weak)
		defined += len(back.Defined)
		unversioned += len(back.Unversioned)
	}
	t.Logf("%d modules: %d weak, %d defined, %d unversioned symbols", len(paths), weak, defined, unversioned)
}
