package status

import (
	"fmt"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Image states of a kernel in `kabiguard status`.
const (
	ImageCurrent    = "current"     // every module copy is the build the tree resolves to
	ImageStale      = "stale"       // some copy is another build, or one the tree no longer has
	ImageNoEarly    = "lacks-early" // a required early module is not in it
	ImageNone       = "no-image"    // the kernel has no initramfs (yet)
	ImageUnreadable = "unreadable"  // it cannot be read: the reason is in the detail
)

// ImageStates are the image states, in the order status and metrics list them.
var ImageStates = []string{ImageCurrent, ImageStale, ImageNoEarly, ImageNone, ImageUnreadable}

// Image is one kernel's initramfs as `kabiguard status` shows it.
type Image struct {
	Kernel string
	Image  string // its path, "" when it has none or it cannot be located
	State  string
	Detail string
	report *imagesync.VerifyReport
}

// Images verifies the initramfs of each kernel against its tree, as `kabiguard initramfs
// verify` does: the admin sees stale images and missing early modules where the gate would
// find them.
func Images(root string, cfg *config.Config, kernels []string) []Image {
	var out []Image
	for _, k := range kernels {
		st := Image{Kernel: k}
		img, err := imagesync.LocateImage(root, k)
		switch {
		case err != nil:
			st.State, st.Detail = ImageUnreadable, err.Error()
		case img == "":
			st.State, st.Detail = ImageNone, "none of /"+strings.Join(imagesync.ImagePaths(k), ", /")
		default:
			st.Image = img
			rep, err := imagesync.Verify(root, k, img, cfg)
			if err != nil {
				st.State, st.Detail = ImageUnreadable, err.Error()
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
		return ImageNoEarly, "lacks required early " + strings.Join(rep.MissingEarly, ", ") + "; rebuild it (update-initramfs -u -k " + rep.Kernel + ", or dracut --force --kver " + rep.Kernel + ")"
	case len(stale) > 0:
		return ImageStale, strings.Join(stale, ", ") + "; run 'kabiguard link' (it refreshes owed images) or 'kabiguard initramfs refresh -k " + rep.Kernel + " " + rep.Image + "'"
	}
	return ImageCurrent, fmt.Sprintf("%d modules, all the builds the tree resolves to", len(rep.Modules))
}

// Annotate fills in each row's image and the state of its module's copy there, for the
// modules the image holds and the required early ones. It returns the kernels a required
// early module has no copy in the image of: the gate refuses them, and status says so too.
func Annotate(rows []weakupdates.Row, states []Image, cfg *config.Config) map[string]bool {
	byKernel := map[string]Image{}
	for _, s := range states {
		byKernel[s.Kernel] = s
	}
	early := map[string]bool{}
	for _, r := range cfg.Required {
		early[r.Name] = r.Early
	}
	lacking := map[string]bool{}
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
		case early[r.Module] && st.State == ImageNone:
			r.Initrd = ImageNone
		case early[r.Module]:
			r.Initrd = ImageUnreadable
		}
		// As the gate: a required early module must be in the image. A stale copy is shown,
		// and refreshed by the next link or hook, but the module is there to load.
		if r.Required && early[r.Module] && r.Initrd != imagesync.ModCurrent && r.Initrd != imagesync.ModStale {
			lacking[r.Kernel] = true
		}
	}
	return lacking
}
