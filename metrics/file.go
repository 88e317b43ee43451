package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/status"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// DefaultDir is Debian's node_exporter textfile directory (prometheus-node-exporter's
// --collector.textfile.directory default), below the root.
const DefaultDir = "/var/lib/prometheus/node-exporter"

// FileName is the file kabiguard writes there; node_exporter reads every *.prom file.
const FileName = "kabiguard.prom"

// Off is metrics_dir's value that keeps link runs from writing metrics.
const Off = "off"

// ErrNoDir is wrapped when the textfile directory does not exist: kabiguard does not make it
// (node_exporter's package does, owned by its user).
var ErrNoDir = errors.New("no such directory (is prometheus-node-exporter installed? its --collector.textfile.directory is the one to write)")

// Target is the file runs that keep links and images refresh (host path below root), or ""
// for none: metrics_dir's directory when set, else DefaultDir's file only when it exists
// already (written by `kabiguard metrics` or its timer), never with metrics_dir = off.
func Target(root string, cfg *config.Config) string {
	switch cfg.MetricsDir {
	case Off:
		return ""
	case "":
		p := filepath.Join(root, DefaultDir, FileName)
		r, err := rootfs.At(root)
		if err != nil {
			return ""
		}
		if fi, err := r.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			return ""
		}
		return p
	}
	return filepath.Join(root, cfg.MetricsDir, FileName)
}

// Options say what Collect and Update look at.
type Options struct {
	Root   string
	Config *config.Config
	Path   string   // the file (host path below Root); "" for none (Render to stdout only)
	Run    *LastRun // the run that just ended; nil: the last run Path records is carried over
	// Removing and Gone are the run's (weakupdates.Preview): a kernel being removed is not
	// reported.
	Removing, Gone []string
}

// Collect takes the snapshot of o.Root to write to o.Path: status now, the default boot
// kernel, and the last run.
func Collect(o Options) (Snapshot, error) {
	rep, err := status.Collect(o.Root, o.Config, o.Removing, o.Gone)
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Root: o.Root, Report: rep, Boot: DefaultBoot(o.Root, rep.Kernels)}
	if o.Run != nil {
		s.LastRun = *o.Run
	} else if o.Path != "" {
		s.LastRun = recorded(o.Root, o.Path)
	}
	return s, nil
}

// Write renders s into path (host path below root) atomically, readable by node_exporter's
// user.
func Write(root, path string, s Snapshot) error {
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	if fi, err := r.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: %w", filepath.Dir(path), ErrNoDir)
	}
	return r.WriteAtomic(path, 0o644, func(w io.Writer) error { return Render(w, s) })
}

// Update refreshes o.Path from o.Root as it is now, under the tree lock: the timer's run
// carries the last run over from the file it replaces, and a hook run finishing between its
// read and its write would otherwise have its record overwritten by the older one.
func Update(o Options) error {
	unlock, err := weakupdates.Lock(o.Root)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := Collect(o)
	if err != nil {
		return err
	}
	return Write(o.Root, o.Path, s)
}

// recorded reads the last run an earlier write of path recorded; zero when there is none.
func recorded(root, path string) LastRun {
	r, err := rootfs.At(root)
	if err != nil {
		return LastRun{}
	}
	data, err := r.ReadFile(path)
	if err != nil {
		return LastRun{}
	}
	var end, ok float64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), " ")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "kabiguard_last_run_timestamp_seconds":
			end = f
		case "kabiguard_last_run_success":
			ok = f
		}
	}
	if end <= 0 {
		return LastRun{}
	}
	return LastRun{End: time.Unix(int64(end), 0), OK: ok == 1}
}
