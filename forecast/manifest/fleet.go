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

// Judge forecasts the kernels read once from pkg against every manifest file, on every core,
// and returns one report per file in their order. A manifest that cannot be read stops it:
// a fleet report that silently skips a host would pass for a fleet that is fine.
func Judge(pkg *pkgfile.Package, kernels []*forecast.Kernel, files []string) ([]*HostReport, error) {
	out := make([]*HostReport, len(files))
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m, err := Load(files[i])
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = &HostReport{Host: m.Host, Manifest: files[i], Reports: m.Rebuild().Forecast(pkg, kernels)}
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
