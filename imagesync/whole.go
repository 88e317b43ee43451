package imagesync

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/kmod"
)

// refreshWhole applies the plan by reading every file of the image into memory and writing
// the archive anew (initramfs.Writer): for the edits Rewrite cannot make record by record.
func refreshWhole(img *imageFile, kernel string, tree *kernelTree, plan *refreshPlan, tr *tracer) error {
	im, err := initramfs.Read(img.f, img.size, img.path, initramfs.Options{Keep: true})
	if err != nil {
		return err
	}
	defer im.Close()
	km, err := imageKernel(im, kernel)
	if err != nil {
		return err
	}
	early, main, err := imageFiles(im)
	if err != nil {
		return err
	}
	drop := maps.Clone(plan.drop)
	for o := range plan.orphanTargets(im, km) {
		drop[o] = true
	}
	for i := range main {
		f := &main[i]
		if sm, ok := plan.stale[f.Name]; ok {
			data, err := moduleAs(sm.Tree, f.Name)
			if err != nil {
				return err
			}
			*f = initramfs.File{Name: f.Name, Mode: 0o100644, UID: f.UID, GID: f.GID, Data: data}
		}
	}
	main = dropFiles(main, drop)
	// depmod's input, as in Refresh: the tree's builds, the image's builtin lists.
	prefix := km.Dir + "/"
	in, err := treeDepmodInput(tree, km, drop)
	if err != nil {
		return err
	}
	for _, f := range main {
		if rel, ok := strings.CutPrefix(f.Name, prefix); ok && f.Data != nil && isDepmodInput(rel) {
			in.files[rel] = f.Data
		}
	}
	// depmod runs while the image compresses: the modules.* files it writes end the archive.
	main = slices.DeleteFunc(main, func(f initramfs.File) bool {
		base, ok := strings.CutPrefix(f.Name, prefix)
		return ok && isDepmodOutput(base)
	})
	w := initramfs.Writer{Compression: mainCompression(im), Early: early, MTime: newestMTime(im),
		Late: startDepmod(kernel, prefix, in, tr)}
	if err := img.replace(func(out io.Writer) error { return w.Encode(out, main) }); err != nil {
		return err
	}
	tr.step("encode and write (whole archive)")
	return nil
}

// imageFiles returns the image's files as writer input: those of the uncompressed segments
// before last (the early cpio), and those of the last segment, each as the kernel would
// leave it (later records win).
func imageFiles(im *initramfs.Image) (early, main []initramfs.File, err error) {
	last := im.Segments[len(im.Segments)-1].Offset
	final := map[string]initramfs.Entry{}
	for _, e := range im.Entries() {
		final[e.Name] = e
	}
	err = im.WalkBodies(func(e initramfs.Entry, body []byte) error {
		if f, ok := final[e.Name]; !ok || f.Pos != e.Pos || e.Name == "." {
			return nil
		}
		f := initramfs.File{Name: e.Name, Mode: e.Mode, UID: e.UID, GID: e.GID, LinkTarget: e.LinkTarget,
			Rmajor: e.Rmajor, Rminor: e.Rminor, HardlinkTo: e.HardlinkTo}
		if e.IsRegular() && e.HardlinkTo == "" {
			f.Data = body
		}
		if e.Pos.SegmentOffset == last {
			main = append(main, f)
		} else {
			early = append(early, f)
		}
		return nil
	})
	return early, main, err
}

// dropFiles removes the named files, and the directories that held only them.
func dropFiles(files []initramfs.File, drop map[string]bool) []initramfs.File {
	if len(drop) == 0 {
		return files
	}
	emptied := map[string]bool{}
	for name := range drop {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			emptied[d] = true
		}
	}
	for _, f := range files {
		if drop[f.Name] {
			continue
		}
		for d := path.Dir(f.Name); d != "." && d != "/"; d = path.Dir(d) {
			delete(emptied, d) // still holds something
		}
	}
	kept := files[:0]
	for _, f := range files {
		if !drop[f.Name] && !emptied[f.Name] {
			kept = append(kept, f)
		}
	}
	return kept
}

// moduleAs returns the tree's build at hostPath compressed the way the image's copy is named.
func moduleAs(hostPath, imageName string) ([]byte, error) {
	f, err := openRegular(hostPath)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hostPath, err)
	}
	plain, _, err := compression.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hostPath, err)
	}
	format := kmod.Compression(imageName)
	if format == compression.None {
		return plain, nil
	}
	var buf bytes.Buffer
	w, err := compression.NewWriter(&buf, format)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newestMTime is the latest mtime in the image: the rewritten image carries it on every entry.
func newestMTime(im *initramfs.Image) uint32 {
	var t int64
	for _, e := range im.Entries() {
		t = max(t, e.MTime)
	}
	return uint32(t)
}
