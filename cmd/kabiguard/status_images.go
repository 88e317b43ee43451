package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Image states of a kernel in `kabiguard status`.
const (
	imageCurrent    = "current"     // every module copy is the build the tree resolves to
	imageStale      = "stale"       // some copy is another build, or one the tree no longer has
	imageNoEarly    = "lacks-early" // a required early module is not in it
	imageNone       = "no-image"    // the kernel has no initramfs (yet)
	imageUnreadable = "unreadable"  // it cannot be read: the reason is in the detail
)

// imageState is one kernel's initramfs as `kabiguard status` shows it.
type imageState struct {
	Kernel string
	Image  string
	State  string
	Detail string
	report *imagesync.VerifyReport
}

// imageStates verifies the initramfs of each kernel against its tree, as `kabiguard
// initramfs verify` does: the admin sees stale images and missing early modules where the
// gate would find them.
func imageStates(root string, cfg *config.Config, kernels []string) []imageState {
	var out []imageState
	for _, k := range kernels {
		st := imageState{Kernel: k}
		img, err := imagesync.LocateImage(root, k)
		switch {
		case err != nil:
			st.State, st.Detail = imageUnreadable, err.Error()
		case img == "":
			st.State, st.Detail = imageNone, "none of /"+strings.Join(imagesync.ImagePaths(k), ", /")
		default:
			st.Image = img
			rep, err := imagesync.Verify(root, k, img, cfg)
			if err != nil {
				st.State, st.Detail = imageUnreadable, err.Error()
				break
			}
			st.report = rep
			st.State, st.Detail = summarize(rep)
		}
		out = append(out, st)
	}
	return out
}

func summarize(rep *imagesync.VerifyReport) (string, string) {
	var stale []string
	for _, m := range rep.Modules {
		if m.State != imagesync.ModCurrent {
			stale = append(stale, m.Name+" ("+m.State+")")
		}
	}
	switch {
	case len(rep.MissingEarly) > 0:
		return imageNoEarly, "lacks required early " + strings.Join(rep.MissingEarly, ", ") + "; rebuild it (update-initramfs -u -k " + rep.Kernel + ", or dracut --force --kver " + rep.Kernel + ")"
	case len(stale) > 0:
		return imageStale, strings.Join(stale, ", ") + "; run 'kabiguard link' (it refreshes owed images) or 'kabiguard initramfs refresh -k " + rep.Kernel + " " + rep.Image + "'"
	}
	return imageCurrent, fmt.Sprintf("%d modules, all the builds the tree resolves to", len(rep.Modules))
}

// annotate fills in each row's image and the state of its module's copy there, for the
// modules the image holds and the required early ones. It reports whether a required early
// module has no copy there: then the gate refuses the kernel, and status says so too.
func annotate(rows []weakupdates.Row, states []imageState, cfg *config.Config) bool {
	byKernel := map[string]imageState{}
	for _, s := range states {
		byKernel[s.Kernel] = s
	}
	early := map[string]bool{}
	for _, r := range cfg.Required {
		early[r.Name] = r.Early
	}
	bad := false
	for i := range rows {
		r := &rows[i]
		st, ok := byKernel[r.Kernel]
		if !ok {
			continue
		}
		r.Image = st.Image
		switch {
		case st.report != nil:
			for _, m := range st.report.Modules {
				if m.Name == r.Module {
					r.Initrd = m.State
				}
			}
			if r.Initrd == "" && early[r.Module] {
				r.Initrd = "not-in-image"
			}
		case early[r.Module] && st.State == imageNone:
			r.Initrd = imageNone
		case early[r.Module]:
			r.Initrd = imageUnreadable
		}
		// As the gate: a required early module must be in the image. A stale copy is shown,
		// and refreshed by the next link or hook, but the module is there to load.
		if r.Required && early[r.Module] && r.Initrd != imagesync.ModCurrent && r.Initrd != imagesync.ModStale {
			bad = true
		}
	}
	return bad
}

// printImages is the INITRAMFS table of `kabiguard status`.
func printImages(w io.Writer, states []imageState) {
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
