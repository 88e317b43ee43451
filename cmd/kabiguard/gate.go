package main

import "errors"

// gateCmd is the install-time gate (issue 4). Owned by the kernel-install work; stub for now.
type gateCmd struct {
	Kernel string `required:"" short:"k" placeholder:"RELEASE" help:"The kernel being installed."`
	Root   string `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
}

func (gateCmd) Help() string { return "Not implemented yet." }

func (c *gateCmd) Run(e *env) error { return errors.New("gate: not implemented yet") }
