package imagesync

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
)

// ErrNeedsRebuild is returned by Refresh when replacing files cannot make the image right: a
// required early module or a dependency is absent from it, or its layout is unusual. The
// generator must build it anew.
var ErrNeedsRebuild = errors.New("needs a full rebuild")

// RefreshResult says what Refresh changed.
type RefreshResult struct {
	Replaced    []string // image paths whose content was replaced
	Removed     []string // image paths of modules the kernel's tree no longer has, dropped
	Unavailable []string // required early modules no build of exists for the kernel
}

// Refresh brings image up to date with kernel's tree under root: stale module copies are
// replaced by the tree's builds (compressed as the copy was; where the image holds a copy
// through a symlink, as dracut keeps weak-updates links, the link stays and the file it leads
// to is replaced, as on the host), copies of modules the tree no longer has are dropped, the
// real depmod regenerates the image's modules.* files, and the image is rewritten in its own
// compression with its uncompressed early segment kept, atomically. Every other record stays
// as it was (see initramfs.Rewrite); only a hard-linked or renamed copy makes the whole
// archive be written anew. A required early module the tree has
// but the image lacks, or a dependency a new build needs that the image lacks, needs the
// generator (ErrNeedsRebuild); a required early module the tree lacks too is listed in
// Unavailable. With dryRun it only reports.
func Refresh(root, kernel, image string, cfg *config.Config, dryRun bool) (*RefreshResult, error) {
	tr := newTracer("refresh " + image)
	tree, err := loadTree(root, kernel)
	if err != nil {
		return nil, err
	}
	img, err := openImage(root, image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	// The image is rewritten while it is being read and compared: the rewrite follows the
	// reading pass record by record, copying each module copy the pass found current and
	// putting the tree's build in place of each stale one, and the plan made once the pass
	// ends either lets it finish or abandons it (nothing to change, or a rebuild needed).
	sc := newImageScan()
	planned := make(chan struct{})
	var planErr error
	var depmodDone func() ([]initramfs.File, error)
	ed := initramfs.Edit{
		Decide: func(rec initramfs.Record) ([]byte, bool, bool, error) {
			select {
			case <-planned:
				if planErr != nil {
					return nil, false, false, planErr
				}
			default:
			}
			return decideRecord(sc, tree, kernel, rec)
		},
		Await: func() error { <-planned; return planErr },
		Late:  func() ([]initramfs.File, error) { return depmodDone() },
	}
	rewritten := make(chan error, 1)
	if dryRun {
		rewritten <- errNoChange
	} else {
		go func() {
			rewritten <- img.replace(func(out io.Writer) error { return initramfs.Rewrite(img.f, img.size, image, out, ed) })
		}()
	}
	abandon := func(why error) {
		planErr = why
		close(planned)
		<-rewritten
	}

	if err := sc.run(img, kernel, tree); err != nil {
		abandon(err)
		return nil, err
	}
	defer sc.im.Close()
	rep, km, decided, err := sc.verify(tree, kernel, cfg)
	if err != nil {
		abandon(err)
		return nil, err
	}
	tr.step("read and compare")
	res, stale, drop, err := planRefresh(image, tree, rep, cfg)
	if err != nil || len(stale)+len(drop) == 0 || dryRun {
		abandon(errNoChange)
		return res, err
	}
	im := sc.im
	for i := 0; i < len(im.Segments)-1; i++ {
		if im.Segments[i].Compression != compression.None {
			abandon(errNoChange)
			return nil, fmt.Errorf("%s: segment %d is compressed and not the last: %w", image, i+1, ErrNeedsRebuild)
		}
	}
	in, err := treeDepmodInput(tree, km, drop)
	if err != nil {
		abandon(err)
		return nil, err
	}
	for name, body := range sc.depmodIn {
		if rel, ok := strings.CutPrefix(name, km.Dir+"/"); ok {
			in.files[rel] = body
		}
	}
	// The rewrite replaces a stale copy through the record the module's path leads to, judged
	// under the record's own module name: a path whose file bears another name needs the whole
	// archive rewritten. Both rewrites edit only the last segment: a stale copy in an earlier
	// one needs the generator.
	for p := range stale {
		if _, ok := decided[p]; !ok {
			planErr = initramfs.ErrCannotEdit
		}
		if t, err := im.Resolve(p); err == nil {
			if e, _ := im.Lookup(t); e.Segment != len(im.Segments)-1 {
				abandon(errNoChange)
				return nil, fmt.Errorf("%s: %s is in segment %d, not the last: %w", image, t, e.Segment+1, ErrNeedsRebuild)
			}
		}
	}
	if planErr == nil {
		depmodDone = startDepmod(kernel, km.Dir+"/", in, tr)
	}
	close(planned)
	err = <-rewritten
	if errors.Is(err, initramfs.ErrCannotEdit) {
		// A hard-linked or renamed module copy: rebuild the archive from its files instead.
		err = refreshWhole(img, km.Release, tree, stale, drop, tr)
	}
	if err != nil {
		return nil, err
	}
	tr.step("encode and write")
	return res, nil
}

// decideRecord is what Refresh's rewrite does with one record of the image: the modules.*
// files depmod writes go (the new ones end the archive); a module copy of kernel whose name
// the tree no longer has goes; a module copy the reading pass found to differ from the tree's
// build of its name (waiting for that verdict) gets the tree's build, compressed as named;
// everything else stays as it is. The same rules make the plan's stale and dropped paths.
func decideRecord(sc *imageScan, tree *kernelTree, kernel string, rec initramfs.Record) ([]byte, bool, bool, error) {
	rel, inKernel := kernelRel(rec.Name, kernel)
	if inKernel && isDepmodOutput(rel) {
		return nil, false, true, nil
	}
	mod, _, isMod := initramfs.ModuleName(rec.Name)
	if !isMod || !strings.Contains(rec.Name, "lib/modules/") || !rec.IsRegular() && !rec.IsSymlink() {
		return nil, false, false, nil
	}
	tf, err := tree.file(mod)
	switch {
	case err != nil:
		return nil, false, false, err
	case tf == "":
		return nil, false, inKernel, nil
	case !rec.IsRegular():
		return nil, false, false, nil
	}
	same, ok := false, false
	if rec.Size > 0 {
		same, ok = sc.result(rec.Segment, rec.Offset)
	}
	if ok && same {
		return nil, false, false, nil
	}
	data, err := moduleAs(tf, rec.Name)
	return data, err == nil, false, err
}

// errNoChange abandons a rewrite started before the plan said there is nothing to write.
var errNoChange = errors.New("no change")

// planRefresh decides from a verify report what Refresh does: the stale copies to replace
// (by image path), the copies to drop, or ErrNeedsRebuild when replacing files cannot make
// the image right.
func planRefresh(image string, tree *kernelTree, rep *VerifyReport, cfg *config.Config) (*RefreshResult, map[string]ImageModule, map[string]bool, error) {
	res := &RefreshResult{}
	for _, name := range rep.MissingEarly {
		if tree.has(name) { // the tree has it: only the generator can add it and its deps
			return nil, nil, nil, fmt.Errorf("%s: required early module %s is not in the image: %w", image, name, ErrNeedsRebuild)
		}
		// No build for this kernel at all: no image can carry it (the gate reports it).
		res.Unavailable = append(res.Unavailable, name)
	}
	have := map[string]bool{}
	for _, m := range rep.Modules {
		have[m.Name] = true
	}
	stale := map[string]ImageModule{}
	drop := map[string]bool{}
	for _, m := range rep.Modules {
		switch m.State {
		case ModStale:
			// The build the tree has now may need modules the old one did not.
			for _, d := range tree.deps[m.Name] {
				if !have[d] {
					return nil, nil, nil, fmt.Errorf("%s: the current build of %s needs %s, which the image lacks: %w", image, m.Name, d, ErrNeedsRebuild)
				}
			}
			stale[m.InImage] = m
			res.Replaced = append(res.Replaced, m.InImage)
		case ModNotInTree:
			if m.Unlisted != "" {
				// Never drop what may only be waiting for depmod.
				return nil, nil, nil, fmt.Errorf("%s: %s is in the kernel's tree but not in its modules.dep; run '%s' first", image, m.Unlisted, DepmodCommand(tree.root, rep.Kernel))
			}
			// The tree no longer has it (its build went with a removed kernel): neither may the
			// image, or the kernel would boot with a build nothing vouches for.
			drop[m.InImage] = true
			res.Removed = append(res.Removed, m.InImage)
			if cfg != nil && cfg.RequiredNames()[m.Name].Early {
				res.Unavailable = append(res.Unavailable, m.Name)
			}
		}
	}
	return res, stale, drop, nil
}

// startDepmod runs depmod over in in the background and returns a function that waits for
// its outputs (named under prefix): the image compresses meanwhile.
func startDepmod(kernel, prefix string, in depmodInput, tr *tracer) func() ([]initramfs.File, error) {
	type result struct {
		files []initramfs.File
		err   error
	}
	done := make(chan result, 1)
	go func() {
		files, err := depmodOutputs(kernel, prefix, in)
		tr.step("depmod (beside the encoder)")
		done <- result{files, err}
	}()
	return func() ([]initramfs.File, error) {
		r := <-done
		return r.files, r.err
	}
}

// orphanTargets: a replaced or dropped copy reached through a symlink (dracut keeps
// weak-updates links as links) leaves its old target behind; it goes too unless something
// else still leads to it or it is in kernel's own directory.
func orphanTargets(im *initramfs.Image, km *initramfs.KernelModules, stale map[string]ImageModule, drop map[string]bool) map[string]bool {
	orphans := map[string]bool{}
	for _, m := range km.Modules {
		_, isStale := stale[m.Path]
		if !isStale && !drop[m.Path] {
			continue
		}
		if t, err := im.Resolve(m.Path); err == nil && t != m.Path {
			orphans[t] = true
		}
	}
	for _, e := range im.Entries() {
		if _, isStale := stale[e.Name]; !e.IsSymlink() || drop[e.Name] || isStale {
			continue
		}
		if t, err := im.Resolve(e.Name); err == nil {
			delete(orphans, t)
		}
	}
	for o := range orphans {
		if _, _, isMod := initramfs.ModuleName(o); !isMod || strings.HasPrefix(o, km.Dir+"/") || !strings.Contains(o, "lib/modules/") {
			delete(orphans, o)
		}
	}
	return orphans
}
