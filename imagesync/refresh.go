package imagesync

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/kmod"
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
	tree, img, err := openTreeAndImage(root, kernel, image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if err := tree.danglingLink(); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kernel, err)
	}
	// The image is rewritten while it is being read and compared (see rewriteAhead); the
	// plan made once the reading pass ends lets that rewrite finish or abandons it.
	sc := newImageScan()
	ahead := startRewrite(img, sc, tree, kernel, dryRun)
	if err := sc.run(img, kernel, tree); err != nil {
		ahead.abandon(err)
		return nil, err
	}
	defer sc.im.Close()
	rep, copies, err := sc.verify(tree, kernel, cfg)
	if err != nil {
		ahead.abandon(err)
		return nil, err
	}
	tr.step("read and compare")
	plan, err := planRefresh(image, tree, rep, cfg)
	if err != nil {
		ahead.abandon(errNoChange)
		return nil, err
	}
	if plan.empty() || dryRun {
		ahead.abandon(errNoChange)
		return plan.res, nil
	}
	if err := editableSegments(sc.im); err != nil {
		ahead.abandon(errNoChange)
		return nil, err
	}
	in, err := treeDepmodInput(tree, copies.km, plan.drop)
	if err != nil {
		ahead.abandon(err)
		return nil, err
	}
	in.addImageFiles(copies.km, sc.depmodIn)
	byRecord, err := plan.byRecord(sc.im, copies)
	if err != nil {
		ahead.abandon(errNoChange)
		return nil, err
	}
	if byRecord {
		err = ahead.finish(nil, startDepmod(kernel, copies.km.Dir+"/", in, tr))
	} else {
		err = ahead.finish(initramfs.ErrCannotEdit, nil)
	}
	if errors.Is(err, initramfs.ErrCannotEdit) {
		// A hard-linked or renamed module copy: rebuild the archive from its files instead.
		err = refreshWhole(img, copies.km.Release, tree, plan, tr)
	}
	if err != nil {
		return nil, err
	}
	tr.step("encode and write")
	return plan.res, nil
}

// editableSegments: both rewrites edit only the image's last segment, the only one that may
// be compressed; an earlier compressed one needs the generator.
func editableSegments(im *initramfs.Image) error {
	for i := 0; i < len(im.Segments)-1; i++ {
		if im.Segments[i].Compression != compression.None {
			return fmt.Errorf("%s: segment %d is compressed and not the last: %w", im.Name, i+1, ErrNeedsRebuild)
		}
	}
	return nil
}

// rewriteAhead is the rewrite Refresh starts before it knows what to change: it follows the
// reading pass record by record, copying each module copy the pass found current and putting
// the tree's build in place of each stale one (decideRecord waits for each verdict), and at
// the end of the segment waits for the plan, which lets it finish (finish) or abandons it.
// Reading and writing in one pass is what makes a refresh take a second.
type rewriteAhead struct {
	planned chan struct{} // closed once the plan is made
	// Set before planned is closed: the error the rewrite ends with (nil: it finishes), and
	// the depmod run whose outputs end the archive.
	planErr error
	depmod  func() ([]initramfs.File, error)
	done    chan error // the rewrite's outcome
}

// startRewrite starts rewriting img beside the scan sc; a dry run writes nothing.
func startRewrite(img *imageFile, sc *imageScan, tree *kernelTree, kernel string, dryRun bool) *rewriteAhead {
	r := &rewriteAhead{planned: make(chan struct{}), done: make(chan error, 1)}
	if dryRun {
		r.done <- errNoChange
		return r
	}
	ed := initramfs.Edit{
		Decide: func(rec initramfs.Entry) ([]byte, bool, bool, error) {
			select {
			case <-r.planned:
				if r.planErr != nil {
					return nil, false, false, r.planErr
				}
			default:
			}
			e, err := decideRecord(sc, tree, kernel, rec)
			return e.data, e.op == replaceRecord, e.op == dropRecord, err
		},
		Await: func() error { <-r.planned; return r.planErr },
		Late:  func() ([]initramfs.File, error) { return r.depmod() },
	}
	go func() {
		r.done <- img.replace(func(out io.Writer) error { return initramfs.Rewrite(img.f, img.size, img.path, out, ed) })
	}()
	return r
}

// finish hands the rewrite the plan's verdict (see rewriteAhead) and returns its outcome.
func (r *rewriteAhead) finish(planErr error, depmod func() ([]initramfs.File, error)) error {
	r.planErr, r.depmod = planErr, depmod
	close(r.planned)
	return <-r.done
}

// abandon ends the rewrite with why, leaving the image as it was.
func (r *rewriteAhead) abandon(why error) { r.finish(why, nil) }

// editOp is what the rewrite does with one record of the image.
type editOp int

const (
	keepRecord    editOp = iota
	replaceRecord        // its content becomes data
	dropRecord
)

// recordEdit is decideRecord's answer for one record.
type recordEdit struct {
	op   editOp
	data []byte // the new content, for replaceRecord
}

// decideRecord is what Refresh's rewrite does with one record of the image: the modules.*
// files depmod writes go (the new ones end the archive); a module copy of kernel whose name
// the tree no longer has goes; a module copy the reading pass found to differ from the tree's
// build of its name (waiting for that verdict) gets the tree's build, compressed as named;
// everything else stays as it is. The same rules make the plan's stale and dropped paths.
func decideRecord(sc *imageScan, tree *kernelTree, kernel string, rec initramfs.Entry) (recordEdit, error) {
	rel, inKernel := kernelRel(rec.Name, kernel)
	if inKernel && isDepmodOutput(rel) {
		return recordEdit{op: dropRecord}, nil
	}
	mod, isMod := kmod.ModuleName(rec.Name), kmod.IsModule(rec.Name)
	if !isMod || !strings.Contains(rec.Name, "lib/modules/") || !rec.IsRegular() && !rec.IsSymlink() {
		return recordEdit{}, nil
	}
	tf, err := tree.file(mod)
	switch {
	case err != nil:
		return recordEdit{}, err
	case tf == "" && inKernel:
		return recordEdit{op: dropRecord}, nil
	case tf == "" || !rec.IsRegular():
		return recordEdit{}, nil
	}
	same, ok := false, false
	if rec.Size > 0 {
		same, ok = sc.result(rec.Pos)
	}
	if ok && same {
		return recordEdit{}, nil
	}
	data, err := moduleAs(tf, rec.Name)
	if err != nil {
		return recordEdit{}, err
	}
	return recordEdit{op: replaceRecord, data: data}, nil
}

// errNoChange abandons a rewrite started before the plan said there is nothing to write.
var errNoChange = errors.New("no change")
