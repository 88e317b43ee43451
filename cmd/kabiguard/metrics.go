package main

import (
	"path/filepath"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/metrics"
)

type metricsCmd struct {
	Root        string `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
	TextfileDir string `name:"textfile-dir" placeholder:"DIR" help:"node_exporter's --collector.textfile.directory, below the root (default: metrics_dir in kabiguard.conf, else /var/lib/prometheus/node-exporter)."`
	Stdout      bool   `help:"Print the metrics instead of writing the file."`
}

func (metricsCmd) Help() string {
	return `Writes what 'kabiguard status' reports as Prometheus metrics into DIR/kabiguard.prom for
node_exporter's textfile collector, atomically (a temporary file renamed over it): per
kernel and module its state (kabiguard_module_state, one sample per state: 1 for the current
one, 0 for the others), whether it is required, each kernel's and the default boot kernel's
readiness as the gate sees it, dangling weak-updates links, each initramfs's state (stale
ones too), and the last link run's time and success. Nothing wrong still gives every
series, with value 0.
Once the file exists, 'kabiguard link', the kernel hooks and weak-modules refresh it after
each run (metrics_dir in /etc/kabiguard/kabiguard.conf: always write there, or 'off');
kabiguard-metrics.timer (shipped disabled) runs this command every 15 minutes.
Exit status: 0 written (whatever the metrics say), 2 error (e.g. the directory does not
exist: kabiguard does not create node_exporter's directory).

Examples:
  kabiguard metrics
  systemctl enable --now kabiguard-metrics.timer
  kabiguard metrics --stdout | promtool check metrics
  kabiguard metrics --root /srv/image --textfile-dir /var/lib/node_exporter/textfile_collector`
}

func (c *metricsCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	dir := c.TextfileDir
	if dir == "" {
		dir = cfg.MetricsDir
	}
	if dir == "" || dir == metrics.Off {
		dir = metrics.DefaultDir
	}
	path := filepath.Join(c.Root, dir, metrics.FileName)
	s, err := metrics.Collect(metrics.Options{Root: c.Root, Config: cfg, Path: path})
	if err != nil {
		return err
	}
	if c.Stdout {
		return metrics.Render(e.stdout, s)
	}
	return metrics.Write(c.Root, path, s)
}
