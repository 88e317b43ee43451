// Command kabiguard keeps out-of-tree kernel modules usable across kernel updates: it tells
// whether a module built for one kernel loads into another (kABI), and, in later commands,
// manages weak-updates links, initramfs images and a boot gate.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/kabiguard/kabiguard/internal/completion"
	"github.com/kabiguard/kabiguard/internal/manpage"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitProblem = 1 // the command ran and found something wrong (an incompatible module, ...)
	exitError   = 2 // the command could not run: bad input, missing file, usage error
)

// cli is the command grammar.
type cli struct {
	Symbols   symbolsCmd   `cmd:"" help:"Print the symbol versions (CRCs) a module was built against, like 'modprobe --dump-modversions'."`
	Check     checkCmd     `cmd:"" help:"Tell whether modules load into a kernel: symbol CRCs, namespaces, vermagic, struct module size."`
	Status    statusCmd    `cmd:"" help:"Show, for every installed kernel, which external and required modules it can load and from where."`
	Link      linkCmd      `cmd:"" help:"Create, re-point and remove weak-updates links so every kernel has the best compatible builds."`
	Gate      gateCmd      `cmd:"" help:"Refuse a kernel that would boot without a required module (kernel-install and Debian hooks call this)."`
	Initramfs initramfsCmd `cmd:"" help:"Read, verify and refresh initramfs images."`
	Hook      hookCmd      `cmd:"" help:"What kernel-install and the Debian kernel hooks run when a kernel is added or removed."`
	Exports   exportsCmd   `cmd:"" help:"Print a kernel's exports derived from its image and in-tree modules, as a symvers file."`
	Forecast  forecastCmd  `cmd:"" help:"Read a kernel package without installing it: which modules would it keep, would the gate refuse it."`
	Metrics   metricsCmd   `cmd:"" help:"Write what status reports as Prometheus metrics for node_exporter's textfile collector (kabiguard.prom)."`
	Requires  requiresCmd  `cmd:"" help:"Print the RPM dependencies (kernel(SYMBOL) = 0xCRC) a kmod package's modules need; an rpm dependency generator."`
	Provides  providesCmd  `cmd:"" help:"Print a kernel's exports as the RPM provides kernel(SYMBOL) = 0xCRC that kmod packages require."`
	Manifest  manifestCmd  `cmd:"" help:"Print, as JSON, what 'forecast --manifest' needs to judge a kernel package for this host centrally."`
	AptHook   aptHookCmd   `cmd:"" name:"apt-hook" help:"What APT runs before dpkg (DPkg::Pre-Install-Pkgs): refuse a transaction whose kernels would boot without a required module."`

	Version kong.VersionFlag `help:"Print the version and exit."`
	Man     manpage.Flag     `hidden:"" help:"Print the manual page kabiguard(8) (roff) and exit."`
}

const description = `kabiguard decides kABI compatibility of out-of-tree kernel modules exactly as the
kernel's loader does, and keeps weak-updates links, initramfs images and boot entries right.

Exit status: 0 success, 1 a problem was found (e.g. an incompatible module), 2 error.`

var version = "dev"

// env carries what commands write to, so tests can run them in-process.
type env struct {
	stdout, stderr io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	exitCode := -1
	parser, err := kong.New(&c,
		kong.Name("kabiguard"),
		kong.Description(description),
		kong.Vars{"version": version},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, Summary: true}),
		kong.Bind(&manPage),
	)
	if err != nil {
		fmt.Fprintf(stderr, "kabiguard: %v\n", err)
		return exitError
	}
	if completion.Requested() { // the shell's completion script runs us (completion/)
		completion.Answer(parser, stdout)
		return exitOK
	}
	ctx, err := parser.Parse(args)
	if exitCode >= 0 { // --help or --version ran
		if exitCode != 0 {
			return exitError
		}
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "kabiguard: %v (see '%s --help')\n", err, helpFor(err))
		return exitError
	}
	err = ctx.Run(&env{stdout: stdout, stderr: stderr})
	var pe problemError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &pe):
		return exitProblem
	default:
		fmt.Fprintf(stderr, "kabiguard: %v\n", err)
		return exitError
	}
}

// helpFor names the command whose --help explains a parse error: the subcommand the arguments
// got as far as selecting, else the program.
func helpFor(err error) string {
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if node := pe.Context.Selected(); node != nil {
			return node.FullPath()
		}
	}
	return "kabiguard"
}

// problemError means the command worked and its answer is "no": exit 1, nothing more to print.
type problemError struct{}

func (problemError) Error() string { return "problems found" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
