package main

import (
	"fmt"

	"github.com/kabiguard/kabiguard/kabi/exports"
)

type exportsCmd struct {
	Kernel string `required:"" placeholder:"RELEASE" help:"Kernel release (uname -r form) whose exports to derive."`
	Root   string `default:"/" placeholder:"DIR" help:"Root directory holding boot and lib/modules." type:"path"`
}

func (exportsCmd) Help() string {
	return `Derives every symbol the kernel exports from its image package alone (/boot/vmlinuz-K
and the in-tree modules under lib/modules/K/kernel), as needed when no symvers file is
installed (Debian ships Module.symvers only in linux-headers), and prints it as a symvers
file: modpost's five tab-separated columns (crc, symbol, module path or vmlinux, export
type, namespace), sorted by symbol. stderr says where the exports came from. The result is
cached under ROOT/var/cache/kabiguard/exports.

Example:
  kabiguard exports --kernel 6.1.0-55-amd64 >derived.symvers
  diff <(sort derived.symvers) <(sort /usr/src/linux-headers-6.1.0-55-amd64/Module.symvers)`
}

func (c *exportsCmd) Run(e *env) error {
	t, prov, err := exports.ForKernel(c.Root, c.Kernel, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "kabiguard: %s\n", prov)
	return exports.Write(e.stdout, t)
}
