package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/forecast/apthook"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// aptHookCmd is APT's DPkg::Pre-Install-Pkgs hook (apt/60kabiguard, installed in
// /etc/apt/apt.conf.d): it runs once APT has downloaded a transaction's packages and before
// dpkg touches anything, so a refusal leaves nothing unpacked or half-configured.
type aptHookCmd struct {
	Root string `default:"/" placeholder:"DIR" help:"Root directory the transaction installs into." type:"path"`
}

func (aptHookCmd) Help() string {
	return `APT runs this before dpkg, with the transaction on standard input (the Pre-Install-Pkgs
protocol, version 3, which /etc/apt/apt.conf.d/60kabiguard asks for). Every kernel image
package being unpacked is forecast ('kabiguard forecast'); every kernel image package being
removed is checked for the kernels staying installed that would lose a required module whose
build lives in its tree. If a kernel would boot without a required module, or a removal would
strip one, it says which and why and exits 1, and APT aborts the whole transaction before
anything changes. With on_missing_required = warn in /etc/kabiguard/kabiguard.conf it says the
same and lets the transaction go on.

Example (what APT does):
  kabiguard apt-hook <transaction.txt`
}

func (c *aptHookCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	in, err := hookInput()
	if err != nil {
		return err
	}
	req, err := apthook.Parse(in)
	if err != nil {
		return err
	}
	tx, err := forecast.Judge(req, forecast.Options{Root: c.Root, Config: cfg})
	if err != nil {
		return err
	}
	w := e.stderr
	for _, r := range tx.Kernels {
		fmt.Fprintf(w, "kabiguard: %s: kernel %s %s\n", r.Package, r.Kernel, keepsText(r))
	}
	if !tx.Refused() {
		return nil
	}
	verb := "refusing the transaction"
	if cfg.OnMissingRequired == "warn" {
		verb = "WARNING (on_missing_required = warn lets the transaction go on)"
	}
	fmt.Fprintf(w, "kabiguard: %s:\n", verb)
	for _, r := range tx.Kernels {
		for _, m := range r.Modules {
			if m.Required && !m.Loads() {
				fmt.Fprintf(w, "kabiguard:   %s would boot without %s (%s): %s\n", r.Kernel, m.Module, m.State, m.Reason)
			}
		}
	}
	for _, l := range tx.Losses {
		fmt.Fprintf(w, "kabiguard:   removing %s strips %s, which stays installed: %s\n", removedBy(tx, l), l.Kernel, l)
	}
	for _, line := range aptAdvice(c.Root, req, tx, cfg.OnMissingRequired == "warn") {
		fmt.Fprintf(w, "kabiguard:   %s\n", line)
	}
	if cfg.OnMissingRequired == "warn" {
		return nil
	}
	return problemError{}
}

// hookInput is where APT writes the transaction: the descriptor APT_HOOK_INFO_FD names, else
// standard input.
func hookInput() (io.Reader, error) {
	if s := os.Getenv("APT_HOOK_INFO_FD"); s != "" && s != "0" {
		fd, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("APT_HOOK_INFO_FD=%q is not a file descriptor", s)
		}
		return os.NewFile(uintptr(fd), "APT_HOOK_INFO_FD"), nil
	}
	return os.Stdin, nil
}

func keepsText(r *forecast.Report) string {
	if r.Keeps() {
		return "keeps every required module"
	}
	return "would boot without " + strings.Join(r.Lost, ", ")
}

// removedBy names the kernel packages whose removal the loss comes from.
func removedBy(tx *forecast.Transaction, l weakupdates.Loss) string {
	var pkgs []string
	for pkg, release := range tx.Removed {
		if strings.Contains(l.Had, "/lib/modules/"+release+"/") {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		for pkg := range tx.Removed {
			pkgs = append(pkgs, pkg)
		}
	}
	sort.Strings(pkgs)
	return strings.Join(pkgs, ", ")
}

// versioned matches the part of a kernel image package's name after linux-image- when it names
// one ABI ("6.1.0-55-amd64-unsigned"); a metapackage's ("amd64", "rt-amd64", "686-pae") does not.
var versioned = regexp.MustCompile(`^[0-9]+\.[0-9]+`)

// aptAdvice is the ways out that work with APT: keep the new kernel's metapackage back so
// everything else upgrades, or keep the old kernel; and, unless the policy is warn already,
// accepting the risk.
func aptAdvice(root string, req *apthook.Request, tx *forecast.Transaction, warn bool) []string {
	var out []string
	// A metapackage (linux-image-amd64, linux-image-rt-amd64: no version in its name) pulls
	// the new ABI's package in: holding it lets every other upgrade through.
	var metas []string
	for _, a := range req.Actions {
		flavour, ok := strings.CutPrefix(a.Package, "linux-image-")
		if a.Kind == apthook.Unpack && ok && !versioned.MatchString(flavour) {
			metas = append(metas, a.Package)
		}
	}
	dkms := forecast.DKMSBuilds(root)
	for _, r := range tx.Kernels {
		if r.Keeps() {
			continue
		}
		if len(metas) > 0 {
			out = append(out, fmt.Sprintf("to upgrade everything else and keep %s out: apt-mark hold %s, then run the upgrade again;", r.Kernel, strings.Join(metas, " ")))
			out = append(out, fmt.Sprintf("  'apt-mark unhold %s' once 'kabiguard forecast' of the new kernel's package passes", strings.Join(metas, " ")))
		} else {
			out = append(out, fmt.Sprintf("to keep %s out, leave its package out of this transaction", r.Kernel))
		}
		var viaDKMS, other []string
		for _, name := range r.Lost {
			if dkms[name] != "" {
				viaDKMS = append(viaDKMS, name)
			} else {
				other = append(other, name)
			}
		}
		if len(viaDKMS) > 0 {
			out = append(out, fmt.Sprintf("or let DKMS build %s: install linux-headers-%s in the same transaction as the kernel", strings.Join(viaDKMS, ", "), r.Kernel))
		}
		if len(other) > 0 {
			out = append(out, fmt.Sprintf("or install a build of %s for %s (a kmod package) first", strings.Join(other, ", "), r.Kernel))
		}
	}
	if len(tx.Losses) > 0 {
		out = append(out, "to go on: keep the kernel package being removed until the kernels staying have their own build (e.g. 'dkms autoinstall -k RELEASE' for each)")
	}
	if !warn {
		out = append(out, "or accept the risk: on_missing_required = warn in /"+config.MainFile)
	}
	return out
}
