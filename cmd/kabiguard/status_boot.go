package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/bls"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// bootState is one kernel's BLS entries as `kabiguard status` shows them.
type bootState struct {
	Kernel  string
	Entries []string // paths, root-relative
	Refused bool     // a required module does not load: the gate refuses this kernel
}

// bootStates finds each kernel's boot entries and fills them into its rows. A kernel the
// gate refuses is marked, so the table can say which entry still boots it, or that
// kernel-install writes none. Nothing on a host without BLS entries (nil).
func bootStates(root string, kernels []string, rows []weakupdates.Row, ready func(kernel string) bool) ([]bootState, error) {
	bootRoot := bls.ConfiguredBootRoot(root)
	if !bls.Used(root) && bootRoot == "" {
		return nil, nil
	}
	var out []bootState
	byKernel := map[string][]string{}
	for _, k := range kernels {
		entries, err := bls.ForKernel(root, k, bootRoot)
		if err != nil {
			return nil, err
		}
		st := bootState{Kernel: k, Refused: !ready(k)}
		for _, e := range entries {
			st.Entries = append(st.Entries, e.Path)
		}
		byKernel[k] = st.Entries
		out = append(out, st)
	}
	for i := range rows {
		rows[i].BootEntries = byKernel[rows[i].Kernel]
	}
	return out, nil
}

// printBoot is the BOOT ENTRY table of `kabiguard status`.
func printBoot(w io.Writer, states []bootState) {
	if states == nil {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tBOOT ENTRY\tDETAIL")
	for _, s := range states {
		entry, detail := strings.Join(s.Entries, ", "), ""
		switch {
		case entry == "" && s.Refused:
			entry, detail = "-", "the gate refuses this kernel: kernel-install writes no entry for it"
		case entry == "":
			entry, detail = "-", "none (kernel-install writes one when it adds the kernel)"
		case s.Refused:
			detail = "the gate refuses this kernel, but this entry still boots it"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Kernel, entry, detail)
	}
	tw.Flush()
}
