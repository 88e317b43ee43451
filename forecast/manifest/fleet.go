package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// HostReport is the forecast of a package's kernels for one host of a fleet.
type HostReport struct {
	Host     string             `json:"host"`
	Manifest string             `json:"manifest"` // the file it was read from
	Reports  []*forecast.Report `json:"reports"`
}

// Keeps reports whether every kernel keeps every required module of the host.
func (h *HostReport) Keeps() bool {
	for _, r := range h.Reports {
		if !r.Keeps() {
			return false
		}
	}
	return true
}

// Files expands manifest arguments: a directory stands for the *.json files in it, sorted.
func Files(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if a == "-" || err == nil && !fi.IsDir() {
			out = append(out, a)
			continue
		}
		if err != nil {
			return nil, err
		}
		files, err := filepath.Glob(filepath.Join(a, "*.json"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no *.json manifest in this directory", a)
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out, nil
}

// LoadAll reads every manifest file, on every core, in order. A manifest that cannot be read
// stops it: a fleet report that silently skipped a host would pass for a fleet that is fine.
func LoadAll(files []string) ([]*Manifest, error) {
	out := make([]*Manifest, len(files))
	errs := make([]error, len(files))
	each(len(files), func(i int) { out[i], errs[i] = Load(files[i]) })
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Judge forecasts the kernels read once from pkg against every manifest, on every core, and
// returns one report per manifest in their order.
func Judge(pkg *pkgfile.Package, kernels []*forecast.Kernel, manifests []*Manifest) []*HostReport {
	out := make([]*HostReport, len(manifests))
	each(len(manifests), func(i int) {
		m := manifests[i]
		out[i] = &HostReport{Host: m.Host, Manifest: m.File, Reports: m.Rebuild().Forecast(pkg, kernels)}
	})
	return out
}

// each runs fn(0..n-1) on every core.
func each(n int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Wanted is the union of the symbols the manifests' external builds need: what a package's
// in-tree modules are read for (forecast.Read), as forecast.Run reads them for one host.
func Wanted(manifests []*Manifest) map[string]bool {
	var builds []*module.Module
	seen := map[*Module]bool{} // a thousand hosts share most entries (UnmarshalJSON)
	for _, m := range manifests {
		for _, k := range m.Kernels {
			for _, b := range k.Builds {
				if b.Module != nil && !seen[b.Module] {
					seen[b.Module] = true
					builds = append(builds, b.Module.module(b.Path))
				}
			}
			for _, l := range k.Links {
				if l.Module != nil && !seen[l.Module] {
					seen[l.Module] = true
					builds = append(builds, l.Module.module(l.Path))
				}
			}
		}
	}
	return kabi.SymbolsNeeded(builds...)
}
