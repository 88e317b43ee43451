package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/rpmdeps"
)

type requiresCmd struct {
	Root       string   `default:"/" placeholder:"DIR" type:"path" help:"Root holding the kernels the modules were built for: their symvers, kernel-devel's Module.symvers, or their image to derive exports from."`
	Symvers    string   `placeholder:"FILE" type:"path" help:"Read the kernel's exports from this symvers file (Module.symvers, symvers-K.gz) instead of finding them under --root."`
	Stdin      bool     `help:"Also read module file names from stdin, one a line, as rpm passes them to a dependency generator (rpm/kabiguard.attr, or %__find_requires). Other names are skipped."`
	RPMVersion string   `name:"rpm-version" placeholder:"VERSION" help:"Version of the rpm running this generator (kabiguard.attr passes %{?rpmversion}): from 4.20 on, output follows rpm's multifile protocol, each file's lines after ';FILE'."`
	Modules    []string `arg:"" optional:"" name:"module" type:"path" help:"Module files (.ko, .ko.gz, .ko.xz, .ko.zst) of one package."`
}

func (requiresCmd) Help() string {
	return `Prints the RPM dependencies a kmod package needs on kernel symbols, one a line, sorted,
in the form RHEL's find-requires.ksyms generates (kernel-srpm-macros):

  kernel(SYMBOL) = 0xCRC   the kernel the module was built for exports SYMBOL with this CRC
  ksym(SYMBOL) = 0xCRC     another module package must provide it

Each symbol version of each module (what 'kabiguard symbols' prints) is one dependency,
module_layout included (the loader checks it; kernel-core provides it), except those one of
the modules named in the same run exports with the same CRC: they are the package. The
kernel is the module's vermagic release; its exports come from --symvers, else its symvers
or Module.symvers under --root, else are derived from its image. A module without symbol
versions is an error (exit 1).

As an RPM dependency generator, 'make install' ships the file attribute kabiguard.attr
(rpm's fileattrs directory): every .ko, .ko.xz, .ko.zst and .ko.gz under /lib/modules of a
package gets these Requires. rpm 4.20 and later hand it all of a (sub)package's modules at
once; older rpm one module per run, so a symbol another module of the same package exports
is then required too, and provided by the package itself. A spec passes options with
  %global kabiguard_requires_opts --symvers %{_sourcedir}/Module.symvers
rpm's legacy interface hands each subpackage's whole file list to one run, for
find-requires.ksyms' exact result on older rpm (it turns off the spec's other generators):
  %global _use_internal_dependency_generator 0
  %global __find_requires /usr/sbin/kabiguard requires --stdin
  %global __find_provides /usr/sbin/kabiguard provides --stdin

Example:
  kabiguard requires extra/drbd.ko.xz extra/drbd_transport_tcp.ko.xz
  echo /path/to/drbd.ko | kabiguard requires --stdin`
}

func (c *requiresCmd) Run(e *env) error {
	if len(c.Modules) == 0 && !c.Stdin {
		return errors.New("requires: name the package's module files, or pass --stdin")
	}
	files := c.Modules
	if c.Stdin {
		names, err := moduleNames(os.Stdin)
		if err != nil {
			return err
		}
		files = append(files, names...)
	}
	mods, err := openModules(files)
	if err != nil {
		return err
	}
	each, err := rpmdeps.RequiresEach(mods, c.exportsOf())
	if err != nil {
		return err
	}
	if err := printGenerated(e.stdout, files, each, c.Stdin && rpmdeps.MultifileProtocol(c.RPMVersion)); err != nil {
		return err
	}
	return reportUnversioned(e, mods)
}

// moduleNames reads rpm's generator input: file names one a line, only modules kept (rpm's
// legacy %__find_requires passes the package's whole file list). All of it is read, as the
// protocol asks. A name is kept as rpm wrote it: the multifile protocol echoes it.
func moduleNames(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if name := sc.Text(); name != "" && kmod.IsModule(name) {
			out = append(out, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading file names on stdin: %w", err)
	}
	return out, nil
}

// printGenerated writes each file's dependencies: in rpm's multifile protocol each file's
// after a line ";FILE" (a file without any is left out, as the protocol allows); else
// merged, sorted and unique, as the singlefile protocol and a reader want them.
func printGenerated(w io.Writer, files []string, each [][]rpmdeps.Dep, multifile bool) error {
	if !multifile {
		return printDeps(w, rpmdeps.Merge(each))
	}
	bw := bufio.NewWriter(w)
	for i, deps := range each {
		if len(deps) > 0 {
			fmt.Fprintf(bw, ";%s\n", files[i])
		}
		for _, d := range deps {
			fmt.Fprintln(bw, d)
		}
	}
	return bw.Flush()
}

// exportsOf finds a kernel's exports: the --symvers file, else the release's symvers file
// under the root (RHEL's kernel-devel is enough: no lib/modules/K needed), else exports
// derived from an installed kernel's image.
func (c *requiresCmd) exportsOf() rpmdeps.ExportsOf {
	return func(release string) (*symvers.Table, error) {
		if c.Symvers != "" {
			return symvers.Load(c.Symvers)
		}
		path, err := symvers.Find(c.Root, release)
		if err == nil {
			r, err := rootfs.At(c.Root)
			if err != nil {
				return nil, err
			}
			return symvers.LoadIn(r, path, nil)
		}
		k, kerr := kabi.LoadKernel(c.Root, release)
		if kerr != nil {
			if errors.Is(kerr, kabi.ErrNoKernel) {
				return nil, fmt.Errorf("%w; pass --symvers FILE", err)
			}
			return nil, kerr
		}
		return k.Symvers, nil
	}
}

func printDeps(w io.Writer, deps []rpmdeps.Dep) error {
	bw := bufio.NewWriter(w)
	for _, d := range deps {
		fmt.Fprintln(bw, d)
	}
	return bw.Flush()
}

type providesCmd struct {
	Kernel     string `placeholder:"RELEASE" help:"Kernel release (uname -r form) whose exports to print." xor:"source" required:""`
	Symvers    string `placeholder:"FILE" type:"path" help:"Print the exports of this symvers file instead." xor:"source" required:""`
	Stdin      bool   `help:"Print instead ksym(SYMBOL) = 0xCRC for what the modules named on stdin export (rpm's dependency generator protocol, rpm/kabiguard.attr, or %__find_provides)." xor:"source" required:""`
	Root       string `default:"/" placeholder:"DIR" type:"path" help:"Root directory holding boot and lib/modules."`
	RPMVersion string `name:"rpm-version" placeholder:"VERSION" help:"With --stdin: version of the rpm running this generator (kabiguard.attr passes %{?rpmversion}); from 4.20 on, output follows rpm's multifile protocol."`
}

func (providesCmd) Help() string {
	return `Prints kernel(SYMBOL) = 0xCRC for every symbol the kernel exports, sorted: what RHEL's
kernel packages provide (rpm's kabi.sh for vmlinux, find-provides.ksyms for in-tree modules),
and what 'kabiguard requires' asks of them. The exports come from the kernel's symvers file
or, when none is installed, are derived from its image and in-tree modules; stderr says which.
With --stdin, as rpm's generator for a kmod package (kabiguard.attr), it prints instead
ksym(SYMBOL) = 0xCRC for each symbol the named modules export: what another package's
ksym() requirements ask for.

Example:
  kabiguard provides --kernel 6.1.0-55-amd64 | grep -c .
  comm -13 <(kabiguard provides --kernel "$(uname -r)") <(kabiguard requires drbd.ko | grep ^kernel)`
}

func (c *providesCmd) Run(e *env) error {
	if c.Stdin {
		names, err := moduleNames(os.Stdin)
		if err != nil {
			return err
		}
		mods, err := openModules(names)
		if err != nil {
			return err
		}
		each := make([][]rpmdeps.Dep, len(mods))
		for i, m := range mods {
			each[i] = rpmdeps.ModuleProvides([]*module.Module{m})
		}
		return printGenerated(e.stdout, names, each, rpmdeps.MultifileProtocol(c.RPMVersion))
	}
	var t *symvers.Table
	if c.Symvers != "" {
		var err error
		if t, err = symvers.Load(c.Symvers); err != nil {
			return err
		}
	} else {
		k, err := kabi.LoadKernel(c.Root, c.Kernel)
		if err != nil {
			return err
		}
		t = k.Symvers
		fmt.Fprintf(e.stderr, "kabiguard: kernel %s: %s\n", c.Kernel, k.Provenance)
	}
	return printDeps(e.stdout, rpmdeps.Provides(t))
}
