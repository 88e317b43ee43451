package main

import "errors"

// initramfsCmd groups the image commands (issue 5). Owned by the initramfs work; stub for now.
type initramfsCmd struct {
	Ls initramfsLsCmd `cmd:"" help:"List an initramfs image, like lsinitrd."`
}

type initramfsLsCmd struct {
	Image string `arg:"" help:"The image file." type:"path"`
}

func (c *initramfsLsCmd) Run(e *env) error { return errors.New("initramfs ls: not implemented yet") }
