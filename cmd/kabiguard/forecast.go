package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

type forecastCmd struct {
	Root     string   `default:"/" placeholder:"DIR" help:"The host to judge for: its installed kernels, external modules and /etc/kabiguard." type:"path"`
	JSON     bool     `help:"Print JSON: [{package, kernel, exports, gate, lost, modules: [{module, required, early, state, from, path, reason, problems}]}]; with --manifest: [{host, manifest, reports: [...]}]."`
	Manifest []string `placeholder:"FILE" sep:"none" help:"Judge the hosts these manifests describe ('kabiguard manifest' on each host; a directory means its *.json files; repeatable) instead of --root: the package is read once, no host is touched." type:"path"`
	Removing []string `placeholder:"RELEASE" sep:"none" help:"An installed kernel the same transaction removes (repeatable): its DKMS builds are not counted (a kmod package's builds stay), and the required modules kernels staying installed would lose are listed (--json: {kernels, removing, losses}). The dnf plugin asks this for removals."`
	Packages []string `arg:"" optional:"" placeholder:"PACKAGE" help:"Kernel packages (.deb, .rpm) or unpacked package directories, read as installed together: the packages of one kernel release make one kernel (RHEL's kernel-core, kernel-modules-core, kernel-modules), and a kmod package's build for it counts as its own (none: judge only --removing)." type:"path"`
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

With --removing, the kernels a transaction removes are left out as it would leave them: their
links go, their DKMS builds go (DKMS removes them with the kernel), a kmod package's builds
in them stay; and the required modules the kernels staying installed would lose are listed.

Exit status: 0 every kernel keeps every required module (of every host), 1 some kernel
would not (or one staying installed would lose one by --removing), 2 error.

Examples:
  kabiguard forecast /var/cache/apt/archives/linux-image-6.1.0-56-amd64_*.deb
  apt-get download linux-image-6.1.0-57-amd64-unsigned && kabiguard forecast linux-image-*.deb
  kabiguard forecast --json kernel-core-5.14.0-503.el9.x86_64.rpm | jq '.[].lost'
  kabiguard forecast --manifest fleet/ linux-image-6.1.0-57-amd64-unsigned_*.deb
  kabiguard forecast --removing 5.14.0-427.el9.x86_64 kernel-core-5.14.0-503.el9.x86_64.rpm`
}

func (c *forecastCmd) Run(e *env) error {
	if len(c.Manifest) > 0 {
		if len(c.Removing) > 0 || len(c.Packages) == 0 {
			return fmt.Errorf("--manifest needs a kernel package, and takes no --removing (a fleet's kernels are each host's own)")
		}
		return c.runFleet(e)
	}
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	if len(c.Packages) == 0 && len(c.Removing) == 0 {
		return fmt.Errorf("name a kernel package to forecast, or --removing RELEASE")
	}
	for _, k := range c.Removing {
		if fi, err := os.Stat(kmod.ModulesDir(c.Root, k)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--removing %s: no such installed kernel (%s)", k, kmod.ModulesDir(c.Root, k))
		}
	}
	reports := []*forecast.Report{}
	if len(c.Packages) > 0 {
		if !c.JSON {
			for _, p := range c.Packages {
				fmt.Fprintf(e.stderr, "kabiguard: reading %s%s ...\n", p, sizeOf(p))
			}
		}
		// Read together: a kernel split into packages (kernel-core, kernel-modules-core,
		// kernel-modules) is one kernel, and a kmod package for it counts as its build.
		rs, err := forecast.RunTogether(c.Packages, forecast.Options{Root: c.Root, Config: cfg, Removing: c.Removing})
		if err != nil {
			return err
		}
		reports = rs
	}
	losses := []weakupdates.Loss{}
	if len(c.Removing) > 0 {
		var err error
		if losses, err = forecast.RemovalLosses(c.Root, cfg, c.Removing); err != nil {
			return err
		}
	}
	switch {
	case c.JSON && len(c.Removing) > 0:
		err = writeJSON(e.stdout, struct {
			Kernels  []*forecast.Report `json:"kernels"`
			Removing []string           `json:"removing"`
			Losses   []weakupdates.Loss `json:"losses"`
		}{reports, c.Removing, losses})
	case c.JSON:
		err = writeJSON(e.stdout, reports)
	default:
		for i, r := range reports {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			printForecast(e, r)
		}
		printRemoval(e, c.Removing, losses)
	}
	if err != nil {
		return err
	}
	for _, r := range reports {
		if !r.Keeps() {
			return problemError{}
		}
	}
	if len(losses) > 0 {
		return problemError{}
	}
	return nil
}

// printRemoval says what removing the kernels does to the kernels staying installed.
func printRemoval(e *env, removing []string, losses []weakupdates.Loss) {
	if len(removing) == 0 {
		return
	}
	what := "removing " + strings.Join(removing, ", ")
	if len(losses) == 0 {
		fmt.Fprintf(e.stdout, "%s: every kernel staying installed keeps its required modules\n", what)
		return
	}
	for _, l := range losses {
		fmt.Fprintf(e.stdout, "%s: %s\n", what, l)
	}
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
