package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/weakupdates"
)

type forecastCmd struct {
	Root     string   `default:"/" placeholder:"DIR" help:"The host to judge for: its installed kernels, external modules and /etc/kabiguard." type:"path"`
	JSON     bool     `help:"Print JSON: [{package, kernel, exports, gate, lost, modules: [{module, required, early, state, from, path, reason, problems}]}]; with --manifest: [{host, manifest, reports: [...]}]."`
	Manifest []string `placeholder:"FILE" sep:"none" help:"Judge the hosts these manifests describe ('kabiguard manifest' on each host; a directory means its *.json files; repeatable) instead of --root: the package is read once, no host is touched." type:"path"`
	Packages []string `arg:"" placeholder:"PACKAGE" help:"Kernel packages (.deb, .rpm) or unpacked package directories." type:"path"`
}

func (forecastCmd) Help() string {
	return `Reads a kernel package without installing it and says, for this host's external and
required modules, which would load into that kernel: a build the package ships (native),
a weak link to the build of an installed kernel (weak, FROM), or none (incompatible: the
symbol and both CRCs; missing: no build is offered to that kernel). Then whether the
install-time gate would refuse the kernel. Nothing on the host changes.

The kernel's exports come from the package's symvers file when it ships one (RHEL's
kernel-core), else from its vmlinuz and in-tree modules (Debian's linux-image packages have
no symvers); the output says which. The same planner that maintains weak-updates decides,
as if the kernel were installed.

With --manifest, a central machine judges a fleet: each host's 'kabiguard manifest' output
(its external and required modules' symbol versions, dependencies, links and configuration)
stands for the host, the package is read once, and each host gets the verdict a forecast
on that host would give.

Exit status: 0 every kernel keeps every required module (of every host), 1 some kernel
would not, 2 error.

Examples:
  kabiguard forecast /var/cache/apt/archives/linux-image-6.1.0-56-amd64_*.deb
  apt-get download linux-image-6.1.0-57-amd64-unsigned && kabiguard forecast linux-image-*.deb
  kabiguard forecast --json kernel-core-5.14.0-503.el9.x86_64.rpm | jq '.[].lost'
  kabiguard forecast --manifest fleet/ linux-image-6.1.0-57-amd64-unsigned_*.deb`
}

func (c *forecastCmd) Run(e *env) error {
	if len(c.Manifest) > 0 {
		return c.runFleet(e)
	}
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	var reports []*forecast.Report
	for _, p := range c.Packages {
		if !c.JSON {
			fmt.Fprintf(e.stderr, "kabiguard: reading %s%s ...\n", p, sizeOf(p))
		}
		rs, err := forecast.Run(p, forecast.Options{Root: c.Root, Config: cfg})
		if err != nil {
			return err
		}
		reports = append(reports, rs...)
	}
	if c.JSON {
		if err := writeJSON(e.stdout, reports); err != nil {
			return err
		}
	} else {
		for i, r := range reports {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			printForecast(e, r)
		}
	}
	for _, r := range reports {
		if !r.Keeps() {
			return problemError{}
		}
	}
	return nil
}

// sizeOf is " (N MB)" for a package file, to say why reading takes a while.
func sizeOf(p string) string {
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return fmt.Sprintf(" (%d MB)", fi.Size()>>20)
	}
	return ""
}

func printForecast(e *env, r *forecast.Report) {
	fmt.Fprintf(e.stdout, "%s\nkernel %s: %s\n", r.Package, r.Kernel, r.Exports)
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tSTATE\tDETAIL")
	for _, m := range r.Modules {
		name := m.Module
		if m.Required {
			name += "*"
		}
		detail := m.Reason
		switch {
		case m.State == weakupdates.Weak:
			detail = "<- " + m.From + " (" + m.Path + ")"
		case m.State == weakupdates.Native && detail == "":
			detail = m.Path
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, m.State, detail)
	}
	tw.Flush()
	switch r.Gate {
	case "pass":
		fmt.Fprintf(e.stdout, "gate: %s keeps every required module\n", r.Kernel)
	case "warn":
		fmt.Fprintf(e.stdout, "gate: %s would boot without %s; on_missing_required = warn lets it in\n", r.Kernel, strings.Join(r.Lost, ", "))
	default:
		fmt.Fprintf(e.stdout, "gate: %s would be refused: it would boot without %s\n", r.Kernel, strings.Join(r.Lost, ", "))
	}
}
