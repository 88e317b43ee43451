package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/forecast/manifest"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
)

type manifestCmd struct {
	Root string `default:"/" placeholder:"DIR" help:"The host to describe: its kernels' external modules, weak-updates links and /etc/kabiguard." type:"path"`
	Host string `placeholder:"NAME" help:"The host's name in the manifest (default: the root's etc/hostname, else this machine's name)."`
}

func (manifestCmd) Help() string {
	return `Prints, as JSON, what 'kabiguard forecast --manifest' needs to judge a kernel package for
this host without touching it: every external module build of every kernel directory with
the symbol versions (__versions), undefined symbols, exports, namespaces, vermagic and
struct module size the loader checks, its dependencies, the links in weak-updates/, the
required modules (required.d, early flags) and the settings that decide (never_weak,
share_builds, on_missing_required), the releases whose headers are installed and what DKMS
builds automatically. No kernel's exports are included: the kernel judged is the package's.
Paths are as the host sees them. The format is versioned ("format": 1).

Examples:
  kabiguard manifest > /srv/fleet/$(hostname).json
  ssh node7 kabiguard manifest > fleet/node7.json && kabiguard forecast --manifest fleet/ linux-image-*.deb`
}

func (c *manifestCmd) Run(e *env) error {
	m, err := manifest.Collect(c.Root, c.Host)
	if err != nil {
		return err
	}
	// Compact: manifests are read by programs, often a thousand at a time (jq . shows one).
	return json.NewEncoder(e.stdout).Encode(m)
}

// runFleet is forecast --manifest: the manifests are read, then each package (only its
// in-tree modules that export a symbol some host needs), then it is judged for every host.
func (c *forecastCmd) runFleet(e *env) error {
	if c.Root != "/" {
		return fmt.Errorf("--root %s and --manifest exclude each other: a manifest stands for its host", c.Root)
	}
	files, err := manifest.Files(c.Manifest)
	if err != nil {
		return err
	}
	// The manifests first: their builds' needs say which of the package's in-tree modules must
	// be parsed (forecast.Read's wanted), as a forecast on one host reads only what it needs.
	manifests, err := manifest.LoadAll(files)
	if err != nil {
		return err
	}
	wanted := manifest.Wanted(manifests)
	var hosts []*manifest.HostReport
	for _, p := range c.Packages {
		if !c.JSON {
			fmt.Fprintf(e.stderr, "kabiguard: reading %s%s ...\n", p, sizeOf(p))
		}
		pkg, err := pkgfile.Open(p)
		if err != nil {
			return err
		}
		kernels, err := forecast.Read(pkg, wanted)
		if err != nil {
			return err
		}
		hosts = append(hosts, manifest.Judge(pkg, kernels, manifests)...)
	}
	if c.JSON {
		if err := writeJSON(e.stdout, hosts); err != nil {
			return err
		}
	} else {
		printFleet(e, hosts)
	}
	for _, h := range hosts {
		if !h.Keeps() {
			return problemError{}
		}
	}
	return nil
}

// printFleet prints one line per host and kernel: the gate's answer and, for a host that
// would lose required modules, each one with why.
func printFleet(e *env, hosts []*manifest.HostReport) {
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tKERNEL\tGATE\tDETAIL")
	losing := 0
	for _, h := range hosts {
		if !h.Keeps() {
			losing++
		}
		for _, r := range h.Reports {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Host, r.Kernel, r.Gate, fleetDetail(r))
		}
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%d of %d hosts would lose a required module\n", losing, len(hosts))
}

func fleetDetail(r *forecast.Report) string {
	if r.Keeps() {
		return fmt.Sprintf("keeps every required module (%d modules judged)", len(r.Modules))
	}
	var lost []string
	for _, m := range r.Modules {
		if m.Required && !m.Loads() {
			lost = append(lost, fmt.Sprintf("%s %s: %s", m.Module, m.State, m.Reason))
		}
	}
	return "loses " + strings.Join(lost, "; ")
}
