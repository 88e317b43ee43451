package kabi

import (
	"runtime"
	"sync"
)

// Target names one kernel to load: an installed release under Root, or a bare symvers file.
type Target struct {
	Root, Release string // LoadKernel(Root, Release) when Release is set
	Symvers       string // KernelFromSymvers(Symvers) otherwise
	// Wanted, when set, names the symbols the caller will look up (SymbolsNeeded of the
	// modules it checks), so the symvers table is built for them alone.
	Wanted map[string]bool
}

// LoadAll loads every target, one per CPU at a time (each is a symvers file of ~30000 lines
// to decompress and parse), and returns the kernels and errors in the targets' order.
func LoadAll(targets []Target) ([]*Kernel, []error) {
	kernels := make([]*Kernel, len(targets))
	errs := make([]error, len(targets))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if t.Release != "" {
				kernels[i], errs[i] = loadKernel(t.Root, t.Release, t.Wanted)
			} else {
				kernels[i], errs[i] = kernelFromSymvers(t.Symvers, t.Wanted)
			}
		}()
	}
	wg.Wait()
	return kernels, errs
}
