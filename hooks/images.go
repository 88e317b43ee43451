package hooks

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// imageWork is the initramfs step of Run: under the tree lock, so that no refresh computed from an older tree
// replaces an image written from a newer one, it removes what killed runs left, then
// refreshes the image of every kernel this run changed and of every kernel an earlier run
// left owed (weakupdates.MarkImageOwed), and settles each debt only once the image is current.
type imageWork struct {
	Root       string
	Changed    []string                   // kernels whose links this run changed
	Earlier    []string                   // kernels owed by earlier runs (weakupdates.ImagesOwed before this run's Sync)
	Removing   []string                   // kernels being removed: their images are not this run's to refresh, and their debt goes
	Installing []string                   // kernels whose installation builds their image next: not refreshed, their debt stays
	Failed     []string                   // kernels whose link changes failed this run: they stay owed
	Updater    imagesync.InitramfsUpdater // how an image is brought up to date
	DryRun     bool                       // say what would be done; take no lock, change nothing
	Log        func(string)               // progress and the owed work, one line each
}

// Run does the work (see imageWork). Every kernel whose image could not be made current
// stays owed and is named in the error.
func (w imageWork) Run() error {
	log := w.Log
	if log == nil {
		log = func(string) {}
	}
	if !w.DryRun {
		unlock, err := weakupdates.Lock(w.Root)
		if err != nil {
			return err
		}
		defer unlock()
		imagesync.RemoveLeftovers(w.Root, log)
	}
	owed, err := weakupdates.ImagesOwed(w.Root)
	if err != nil {
		return err
	}
	kernels := owedKernels(w.Changed, owed)
	earlier := map[string]bool{}
	for _, k := range w.Earlier {
		earlier[k] = true
	}
	if u, ok := w.Updater.(*imagesync.RefreshUpdater); ok {
		u.Total = 0
		for _, k := range kernels {
			if !w.skipped(k) {
				u.Total++
			}
		}
	}
	var errs []error
	for _, k := range kernels {
		if earlier[k] {
			log(fmt.Sprintf("%s: its initramfs is owed a refresh since an earlier run changed its links (failed, killed or --no-initramfs)", k))
		}
		if err := w.settle(k, log); err != nil {
			errs = append(errs, err)
		} else if earlier[k] && !w.DryRun {
			log(fmt.Sprintf("%s: owed initramfs work done", k))
		}
	}
	return errors.Join(errs...)
}

// skipped reports whether k's image is not this run's to refresh: k is being removed or
// installed.
func (w imageWork) skipped(k string) bool {
	return slices.Contains(w.Removing, k) || slices.Contains(w.Installing, k)
}

// owedKernels is changed and owed together, oldest release first.
func owedKernels(changed, owed []string) []string {
	all := map[string]bool{}
	for _, k := range append(append([]string(nil), changed...), owed...) {
		all[k] = true
	}
	out := make([]string, 0, len(all))
	for k := range all {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return kabi.CompareReleases(out[i], out[j]) < 0 })
	return out
}

// settle brings k's image up to date and then drops its debt; a kernel skipped or no longer
// installed owes nothing. A kernel whose depmod is still pending keeps its debt: its
// modules.dep, which the refresh reads, does not list its links yet.
func (w imageWork) settle(k string, log func(string)) error {
	clear := func() error {
		if w.DryRun {
			return nil
		}
		return weakupdates.ClearImageOwed(w.Root, k)
	}
	if w.skipped(k) {
		// A kernel being removed owes nothing. One whose installation builds its image next
		// keeps its debt until a later run finds that image current: the generator may fail,
		// be killed, or never run.
		if slices.Contains(w.Removing, k) || !imagesync.Installed(w.Root, k) {
			return clear()
		}
		return nil
	}
	if !imagesync.Installed(w.Root, k) {
		return clear()
	}
	if _, refresh := w.Updater.(*imagesync.RefreshUpdater); w.DryRun && refresh {
		// A dry run changed no link: a refresh computed from the tree on disk would describe
		// the state before the run. Name the image the real run would refresh instead.
		img, err := imagesync.LocateImage(w.Root, k)
		if img != "" {
			log(fmt.Sprintf("%s: would refresh %s", k, img))
		}
		return err
	}
	if slices.Contains(w.Failed, k) {
		return fmt.Errorf("%s: initramfs not refreshed: its links could not all be changed; it stays owed until a run makes them", k)
	}
	if !w.DryRun && weakupdates.DepmodPending(w.Root, k) {
		return fmt.Errorf("%s: initramfs not refreshed: depmod has not indexed its changed links yet; it stays owed until the next run", k)
	}
	if err := w.Updater.Update(k); err != nil {
		if w.DryRun {
			return err
		}
		return fmt.Errorf("%w (its initramfs stays owed; every later 'kabiguard link' or kernel hook tries again)", err)
	}
	return clear()
}
