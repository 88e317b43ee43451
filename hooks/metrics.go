package hooks

import (
	"fmt"
	"time"

	"github.com/kabiguard/kabiguard/metrics"
)

// refreshMetrics rewrites the node_exporter textfile metrics after a run, when metrics.Target
// names a file (metrics_dir set, or the file exists already), with the run's outcome as the
// last run. Monitoring must not fail a kernel's installation: a failure is said as a warning.
func refreshMetrics(opt Options, runErr error) {
	path := metrics.Target(opt.Root, opt.Config)
	if path == "" {
		return
	}
	run := &metrics.LastRun{End: time.Now(), OK: runErr == nil}
	err := metrics.Update(metrics.Options{Root: opt.Root, Config: opt.Config, Path: path, Run: run, Removing: opt.Removing, Gone: opt.Gone})
	if err != nil && opt.Losses != nil {
		fmt.Fprintf(opt.Losses, "%swarning: metrics not refreshed: %v\n", opt.Prefix, err)
	}
}
