package hooks

import (
	"errors"
	"fmt"
	"io"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Options says what Run changes and how it speaks: the CLIs that call it differ only here.
type Options struct {
	Root   string
	Config *config.Config
	// Only, Removing and Gone are weakupdates.SyncOptions': the kernels whose links change,
	// the kernels being removed (their images are not refreshed and owe nothing), the builds
	// being removed.
	Only, Removing, Gone []string
	// Installing are kernels whose installation builds their image right after this run: not
	// refreshed, and owed until a later run finds their image current.
	Installing  []string
	DryRun      bool
	NoInitramfs bool // links only: the images of changed kernels stay owed (see Deferred)
	// Generator is the program a refresh falls back to ("" for imagesync.Generator());
	// CheckProg, if set, replaces the whole image step ("CheckProg KERNEL", weak-modules
	// --check-initramfs-prog).
	Generator, CheckProg string

	// Log says each link change (and CheckProg's runs); the caller decides the verbosity.
	Log func(string)
	// Progress says the image work, whatever the verbosity: it is slow and rare, as a
	// generator run is.
	Progress func(string)
	// SayUpToDate logs "weak-updates links are up to date" when Sync changed nothing.
	SayUpToDate bool
	// Losses receives, at error level whatever the verbosity, the required modules kernels
	// staying installed lose by the run, each line begun with Prefix (the command's name).
	// With MarkDryRun, a dry run's losses are said to be what would happen.
	Losses     io.Writer
	Prefix     string
	MarkDryRun bool
	// AfterSync, if set, gets Sync's result once the losses are said (not when Sync could
	// not run at all); its error ends the run.
	AfterSync func(*weakupdates.Result) error
	// Deferred, if set, gets with NoInitramfs the kernels whose images are owed a refresh
	// (imagesync.OwedImages), when there are any.
	Deferred func(owed []string)
}

// Result is what Run did.
type Result struct {
	Sync *weakupdates.Result // nil when Sync could not run
}

// Lost is the number of required modules kernels staying installed lost by the run.
func (r *Result) Lost() int {
	if r == nil || r.Sync == nil {
		return 0
	}
	return len(r.Sync.Losses)
}

// ImageError marks a failure of the image step, after the links were made: a kernel's
// removal is never failed for one (the image stays owed and a later run retries).
type ImageError struct{ Err error }

func (e ImageError) Error() string { return e.Err.Error() }
func (e ImageError) Unwrap() error { return e.Err }

// Run is the flow every command that may change links runs (kabiguard link, the kernel
// hooks, weak-modules): weakupdates.Sync makes the links (depmod included), the losses are
// said, and then, under the tree lock, the images of the kernels whose links changed and of
// those an earlier run left owed are brought up to date (see imagesync.RefreshUpdater) —
// also after a failed Sync: what did change is done now. Link errors and image errors
// (ImageError) are joined in the error. Then the Prometheus metrics are refreshed, if kept
// (refreshMetrics).
func Run(opt Options) (*Result, error) {
	res, err := run(opt)
	if !opt.DryRun && opt.Config != nil && !errors.Is(err, rootfs.ErrNoRoot) {
		refreshMetrics(opt, err)
	}
	return res, err
}

func run(opt Options) (*Result, error) {
	log := orNop(opt.Log)
	earlier, _ := weakupdates.ImagesOwed(opt.Root) // left owed by runs before this one
	sres, err := weakupdates.Sync(opt.Config, weakupdates.SyncOptions{Root: opt.Root, Only: opt.Only,
		Removing: opt.Removing, Gone: opt.Gone, DryRun: opt.DryRun, Log: log})
	res := &Result{Sync: sres}
	if sres != nil {
		reportLosses(opt, sres.Losses)
		if opt.AfterSync != nil {
			if aerr := opt.AfterSync(sres); aerr != nil {
				return res, aerr
			}
		}
	}
	if errors.Is(err, rootfs.ErrNoRoot) {
		return res, err
	}
	var changed, failed []string
	if sres != nil {
		changed, failed = sres.Changed, sres.Failed
	}
	if err == nil && opt.SayUpToDate && len(sres.Changes) == 0 {
		log("weak-updates links are up to date")
	}
	if opt.NoInitramfs {
		// Deferred, not cancelled: the markers Sync wrote keep the images owed.
		if ks := imagesync.OwedImages(opt.Root); len(ks) > 0 && opt.Deferred != nil {
			opt.Deferred(ks)
		}
		return res, err
	}
	w := imageWork{Root: opt.Root, Changed: changed, Failed: failed, Earlier: earlier,
		Removing: opt.Removing, Installing: opt.Installing, Updater: updater(opt), DryRun: opt.DryRun, Log: opt.Progress}
	if ierr := w.Run(); ierr != nil {
		err = errors.Join(err, ImageError{ierr})
	}
	return res, err
}

// updater is how Run brings an image up to date: in place, the generator only when that
// cannot do, unless the caller's program replaces the whole step.
func updater(opt Options) imagesync.InitramfsUpdater {
	gen := imagesync.GeneratorUpdater{Root: opt.Root, Generator: opt.Generator, CheckProg: opt.CheckProg, DryRun: opt.DryRun, Log: opt.Log}
	if opt.CheckProg != "" {
		return gen
	}
	return &imagesync.RefreshUpdater{Root: opt.Root, Config: opt.Config, Generator: gen, DryRun: opt.DryRun, Log: opt.Progress}
}

// reportLosses says which kernels staying installed lose a required module by the change just
// made (or, in a dry run, would).
func reportLosses(opt Options, losses []weakupdates.Loss) {
	if opt.Losses == nil {
		return
	}
	verb := "ERROR"
	if opt.DryRun && opt.MarkDryRun {
		verb = "ERROR (dry run: would happen)"
	}
	for _, l := range losses {
		fmt.Fprintf(opt.Losses, "%s%s: %s\n", opt.Prefix, verb, l)
		fmt.Fprintf(opt.Losses, "%s  before %s boots: build or install %s for it, or remove that kernel\n", opt.Prefix, weakupdates.Printable(l.Kernel), l.Module)
	}
}

// OnlyImageFailures reports whether every error joined in err is an ImageError.
func OnlyImageFailures(err error) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ie ImageError
		if !errors.As(e, &ie) {
			return false
		}
	}
	return true
}

func orNop(log func(string)) func(string) {
	if log == nil {
		return func(string) {}
	}
	return log
}
