package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// exportsSource says where a kernel's exports were read from, as check, status and the hooks
// print it: "exports from PATH" (its symvers file), or "exports derived from
// ROOT/boot/vmlinuz-K and N in-tree modules" when no symvers file is installed. The reader of
// a verdict must know which, since a derived table is only as good as the image it came from.
func exportsSource(k *kabi.Kernel) string {
	if strings.HasPrefix(k.Provenance, "exports derived") {
		return k.Provenance
	}
	return "exports from " + k.SymversPath()
}

// kernelExports is exportsSource of each installed kernel of a plan, by release; a kernel
// whose exports could not be read at all says why ("undecided: ...").
func kernelExports(plan *weakupdates.Plan) map[string]string {
	out := map[string]string{}
	for _, kp := range plan.Kernels {
		switch {
		case kp.Kernel != nil && kp.Kernel.Symvers != nil:
			out[kp.Release] = exportsSource(kp.Kernel)
		case kp.Err != nil:
			out[kp.Release] = "undecided: " + kp.Err.Error()
		}
	}
	return out
}

// statusRow is a row of `kabiguard status --json`: the planner's row and where its kernel's
// exports came from.
type statusRow struct {
	weakupdates.Row
	Exports string `json:"exports,omitempty"`
}

func statusRows(rows []weakupdates.Row, exports map[string]string) []statusRow {
	out := make([]statusRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, statusRow{r, exports[r.Kernel]})
	}
	return out
}

// printExports is the EXPORTS table of `kabiguard status`: one line per installed kernel.
func printExports(w io.Writer, plan *weakupdates.Plan, exports map[string]string) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tEXPORTS")
	for _, kp := range plan.Kernels {
		if s := exports[kp.Release]; s != "" {
			fmt.Fprintf(tw, "%s\t%s\n", kp.Release, s)
		}
	}
	tw.Flush()
}
