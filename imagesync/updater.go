package imagesync

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kabiguard/kabiguard/config"
)

// InitramfsUpdater brings a kernel's initramfs up to date after its module set changed. It is
// the one place the hooks flow's image work goes through: RefreshUpdater refreshes in place,
// GeneratorUpdater rebuilds as RHEL's weak-modules does.
type InitramfsUpdater interface {
	Update(release string) error
}

// NoInitramfs does nothing (--no-initramfs).
type NoInitramfs struct{}

// Update does nothing.
func (NoInitramfs) Update(string) error { return nil }

// RefreshUpdater is the InitramfsUpdater that link, weak-modules and the hooks use: it
// refreshes a kernel's existing image in place and falls back to the generator (a full
// rebuild) when refreshing cannot make it right.
type RefreshUpdater struct {
	Root      string
	Config    *config.Config
	Generator GeneratorUpdater
	DryRun    bool
	Log       func(string)
	// Total is the number of kernels this run will update, for "kernel k of N" progress.
	Total int
	done  int
}

// Update refreshes release's image, or rebuilds it with the generator when needed. It logs
// only what it does: a kernel without an image, or with one up to date, is silent.
func (u *RefreshUpdater) Update(release string) error {
	log := u.Log
	if log == nil {
		log = func(string) {}
	}
	u.done++
	progress := fmt.Sprintf("%s (kernel %d of %d)", release, u.done, max(u.Total, u.done))
	img, err := LocateImage(u.Root, release)
	if err != nil {
		return fmt.Errorf("%s: %w", progress, err)
	}
	if img == "" {
		return nil // no image yet: the kernel's installation builds it
	}
	start := time.Now()
	res, err := UpdateImage(u.Root, release, img, u.Config, u.DryRun, func(why error) error {
		log(fmt.Sprintf("%s: %v; rebuilding with the generator (this takes a minute)", progress, why))
		g := u.Generator
		g.Root, g.DryRun, g.Log = u.Root, u.DryRun, u.Log
		if err := g.Update(release); err != nil {
			return err
		}
		log(fmt.Sprintf("%s: rebuilt in %v", progress, time.Since(start).Round(time.Second)))
		return nil
	})
	if err != nil || res == nil { // res nil: rebuilt instead
		return err
	}
	for _, n := range res.Unavailable {
		log(fmt.Sprintf("%s: warning: required module %s has no build for this kernel; its image cannot carry it", progress, n))
	}
	if len(res.Replaced)+len(res.Removed) == 0 {
		return nil // up to date: nothing to say
	}
	changed := append(append([]string(nil), res.Replaced...), res.Removed...)
	sort.Strings(changed)
	verb := map[bool]string{true: "would refresh", false: "refreshed"}[u.DryRun]
	log(fmt.Sprintf("%s: %s %s (%s) in %v", progress, verb, img, strings.Join(changed, ", "), time.Since(start).Round(time.Millisecond)))
	return nil
}

// UpdateImage brings image up to date with kernel's tree under root: in place (Refresh) when
// replacing files can make it right, else through rebuild, which gets the ErrNeedsRebuild
// error saying why and runs the generator (or says what it would run, or refuses). The
// result is Refresh's, nil when rebuild was called instead.
func UpdateImage(root, kernel, image string, cfg *config.Config, dryRun bool, rebuild func(why error) error) (*RefreshResult, error) {
	res, err := Refresh(root, kernel, image, cfg, dryRun)
	if errors.Is(err, ErrNeedsRebuild) {
		return nil, rebuild(err)
	}
	return res, err
}
