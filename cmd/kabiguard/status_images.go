package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/status"
)

// printImages is the INITRAMFS table of `kabiguard status`.
func printImages(w io.Writer, states []status.Image) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tINITRAMFS\tSTATE\tDETAIL")
	for _, s := range states {
		img := s.Image
		if img == "" {
			img = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Kernel, img, s.State, s.Detail)
	}
	tw.Flush()
}
