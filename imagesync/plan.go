package imagesync

import (
	"fmt"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// refreshPlan is what Refresh changes in an image, by image path: the stale copies it
// replaces by the tree's builds, the copies of modules the tree no longer has it drops.
type refreshPlan struct {
	res   *RefreshResult
	stale map[string]ImageModule
	drop  map[string]bool
}

// empty reports whether the plan changes nothing.
func (p *refreshPlan) empty() bool { return len(p.stale)+len(p.drop) == 0 }

// planRefresh decides from a verify report what Refresh does, or returns ErrNeedsRebuild when
// replacing files cannot make the image right.
func planRefresh(image string, tree *kernelTree, rep *VerifyReport, cfg *config.Config) (*refreshPlan, error) {
	res := &RefreshResult{}
	for _, name := range rep.MissingEarly {
		if tree.has(name) { // the tree has it: only the generator can add it and its deps
			return nil, fmt.Errorf("%s: required early module %s is not in the image: %w", image, name, ErrNeedsRebuild)
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
					return nil, fmt.Errorf("%s: the current build of %s needs %s, which the image lacks: %w", image, m.Name, d, ErrNeedsRebuild)
				}
			}
			stale[m.InImage] = m
			res.Replaced = append(res.Replaced, m.InImage)
		case ModNotInTree:
			if m.Unlisted != "" {
				// Never drop what may only be waiting for depmod.
				return nil, fmt.Errorf("%s: %s is in the kernel's tree but not in its modules.dep; run '%s' first", image, m.Unlisted, kmod.DepmodAdvice(tree.root, rep.Kernel))
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
	return &refreshPlan{res: res, stale: stale, drop: drop}, nil
}

// byRecord reports whether Rewrite can apply the plan record by record: it replaces a stale
// copy through the record the copy's path leads to, judged under the record's own module
// name, so a path whose file bears another name needs the whole archive written anew. Both
// edit only the last segment: a stale copy in an earlier one needs the generator.
func (p *refreshPlan) byRecord(im *initramfs.Image, c *kernelCopies) (bool, error) {
	byRecord := true
	for path := range p.stale {
		if _, ok := c.decided[path]; !ok {
			byRecord = false
		}
		if t, err := im.Resolve(path); err == nil {
			if e, _ := im.Lookup(t); e.Pos.SegmentOffset != im.Segments[len(im.Segments)-1].Offset {
				return false, fmt.Errorf("%s: %s is in segment %d, not the last: %w", im.Name, t, segmentNumber(im, e), ErrNeedsRebuild)
			}
		}
	}
	return byRecord, nil
}

// orphanTargets: a replaced or dropped copy reached through a symlink (dracut keeps
// weak-updates links as links) leaves its old target behind; it goes too unless something
// else still leads to it or it is in kernel's own directory.
func (p *refreshPlan) orphanTargets(im *initramfs.Image, km *KernelModules) map[string]bool {
	orphans := map[string]bool{}
	for _, m := range km.Modules {
		_, isStale := p.stale[m.Path]
		if !isStale && !p.drop[m.Path] {
			continue
		}
		if t, err := im.Resolve(m.Path); err == nil && t != m.Path {
			orphans[t] = true
		}
	}
	for _, e := range im.Entries() {
		if _, isStale := p.stale[e.Name]; !e.IsSymlink() || p.drop[e.Name] || isStale {
			continue
		}
		if t, err := im.Resolve(e.Name); err == nil {
			delete(orphans, t)
		}
	}
	for o := range orphans {
		if !kmod.IsModule(o) || strings.HasPrefix(o, km.Dir+"/") || !strings.Contains(o, "lib/modules/") {
			delete(orphans, o)
		}
	}
	return orphans
}

// segmentNumber is the 1-based number of the segment holding e, as messages count them; 0
// for none.
func segmentNumber(im *initramfs.Image, e initramfs.Entry) int {
	for i, s := range im.Segments {
		if s.Offset == e.Pos.SegmentOffset {
			return i + 1
		}
	}
	return 0
}
