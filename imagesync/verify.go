package imagesync

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/safeelf"
)

// ImageModule is one module file of an image checked against the kernel's tree.
type ImageModule struct {
	Name    string `json:"name"`
	InImage string `json:"in_image"`       // path in the image
	Tree    string `json:"tree,omitempty"` // the file the tree resolves the module to (host path)
	State   string `json:"state"`          // current, stale, not-in-tree
	// Unlisted is set for a not-in-tree module whose file the host's tree has at the image's
	// path although modules.dep does not list it: depmod has not run since it came.
	Unlisted string `json:"unlisted,omitempty"`
}

// Module states in an image.
const (
	ModCurrent   = "current"     // same content as the tree's resolved file
	ModStale     = "stale"       // another build than the tree resolves to
	ModNotInTree = "not-in-tree" // the kernel's modules.dep does not list it any more
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Image        string        `json:"image"`
	Kernel       string        `json:"kernel"`
	Compression  string        `json:"compression"`
	Modules      []ImageModule `json:"modules"`
	MissingEarly []string      `json:"missing_early"` // required early modules not in the image
}

// OK reports whether the image matches the tree and carries every early required module.
func (r *VerifyReport) OK() bool {
	if len(r.MissingEarly) > 0 {
		return false
	}
	for _, m := range r.Modules {
		if m.State != ModCurrent {
			return false
		}
	}
	return true
}

// plainContent returns a module file's content decompressed.
func plainContent(data []byte) ([]byte, error) {
	out, _, err := compression.Decode(data)
	return out, err
}

// imageKernel returns the image's module set of kernel: empty when the image holds no
// kernel modules at all (dracut --no-kernel), an error naming the kernels it holds when they
// are others.
func imageKernel(im *initramfs.Image, kernel string) (*KernelModules, error) {
	all, err := Modules(im)
	if err != nil {
		return nil, err
	}
	var others []string
	for i := range all {
		if all[i].Release == kernel {
			return &all[i], nil
		}
		others = append(others, all[i].Release)
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("%s: holds no modules of kernel %s, only of %s", im.Name, kernel, strings.Join(others, ", "))
	}
	return &KernelModules{Release: kernel, Dir: "usr/lib/modules/" + kernel}, nil
}

// Verify compares every module file of kernel in the image with the file kernel's tree under
// root resolves it to now, by decompressed content, and lists required early modules that
// the image lacks.
func Verify(root, kernel, image string, cfg *config.Config) (*VerifyReport, error) {
	tree, img, err := openTreeAndImage(root, kernel, image)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	sc, err := scanImage(img, kernel, tree)
	if err != nil {
		return nil, err
	}
	defer sc.im.Close()
	rep, _, err := sc.verify(tree, kernel, cfg)
	return rep, err
}

// openTreeAndImage loads kernel's tree under root and opens its image (see openImage).
func openTreeAndImage(root, kernel, image string) (*kernelTree, *imageFile, error) {
	tree, err := loadTree(root, kernel)
	if err != nil {
		return nil, nil, err
	}
	img, err := openImage(root, image)
	if err != nil {
		return nil, nil, err
	}
	return tree, img, nil
}

// kernelCopies is an image's module copies of one kernel as the reading pass left them.
type kernelCopies struct {
	image string             // the image, for messages
	comp  compression.Format // its main compression
	km    *KernelModules
	// decided: image path → whether the copy is the tree's build, for the paths the scan
	// settled (see imageScan.decided).
	decided map[string]bool
	// contents: image path → the bytes of a copy the scan did not settle (symlinks followed).
	contents map[string][]byte
}

// verify is Verify on a scanned image; it also returns the image's copies of kernel's modules.
func (sc *imageScan) verify(tree *kernelTree, kernel string, cfg *config.Config) (*VerifyReport, *kernelCopies, error) {
	km, err := imageKernel(sc.im, kernel)
	if err != nil {
		return nil, nil, err
	}
	decided, err := sc.decided(km)
	if err != nil {
		return nil, nil, err
	}
	c := &kernelCopies{image: sc.im.Name, comp: mainCompression(sc.im), km: km, decided: decided, contents: map[string][]byte{}}
	// The few the scan could not settle are read again (one more pass over the image).
	var rest []string
	for _, m := range km.Modules {
		if _, ok := decided[m.Path]; !ok && tree.has(m.Name) {
			rest = append(rest, m.Path)
		}
	}
	if len(rest) > 0 {
		if c.contents, err = sc.im.ReadFiles(rest...); err != nil {
			return nil, nil, err
		}
	}
	rep, err := verifyImage(tree, c, cfg)
	return rep, c, err
}

// verifyImage is Verify on an image already read. A copy that cannot be read as a module is
// stale.
func verifyImage(tree *kernelTree, c *kernelCopies, cfg *config.Config) (*VerifyReport, error) {
	kernel := c.km.Release
	rep := &VerifyReport{Image: c.image, Kernel: kernel, Compression: string(c.comp), Modules: make([]ImageModule, len(c.km.Modules)), MissingEarly: []string{}}
	have := map[string]bool{}
	for i, m := range c.km.Modules {
		have[m.Name] = true
		tf, err := tree.file(m.Name)
		if err != nil {
			return nil, err
		}
		rep.Modules[i] = ImageModule{Name: m.Name, InImage: m.Path, Tree: tf, State: ModNotInTree}
		if tf == "" {
			rep.Modules[i].Unlisted = tree.unlisted(m.Path, kernel)
		}
	}
	// The scan compared nearly every copy as it streamed by; the few it could not settle (a
	// link whose target bears another name) are compared here.
	var buf []byte // the tree file, read into memory reused from one module to the next
	for i := range rep.Modules {
		r := &rep.Modules[i]
		if r.Tree == "" {
			continue
		}
		same, ok := c.decided[r.InImage]
		if !ok {
			var err error
			if same, err = sameModule(c.contents[r.InImage], r.Tree, &buf); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", c.image, r.InImage, err)
			}
		}
		r.State = ModStale
		if same {
			r.State = ModCurrent
		}
	}
	if cfg != nil {
		for _, req := range cfg.Required {
			if req.Early && !have[req.Name] {
				rep.MissingEarly = append(rep.MissingEarly, req.Name)
			}
		}
	}
	return rep, nil
}

// sameModule reports whether an image's copy and a host file hold the same module. A copy
// that does not decompress is not the same (refresh replaces it); a tree file that cannot be
// read is an error. buf holds the host file's bytes; it is grown as needed and may be reused.
func sameModule(inImage []byte, hostPath string, buf *[]byte) (bool, error) {
	raw, err := readInto(hostPath, buf)
	if err != nil {
		return false, err
	}
	if bytes.Equal(inImage, raw) { // the usual case, compressed or not: the copy dracut made
		return true, nil
	}
	b, _, err := compression.Decode(raw)
	if err != nil {
		return false, fmt.Errorf("%s: %w", hostPath, err)
	}
	a, err := plainContent(inImage)
	if err != nil {
		return false, nil
	}
	if bytes.Equal(a, b) {
		return true, nil
	}
	// dracut strips unsigned modules (strip -g) when it copies them: the same build then
	// differs only in debug sections and symbols.
	return sameLoadedContent(a, b), nil
}

// readInto reads the file at path into *buf, growing it when too small, and returns the bytes
// read. Reusing one buffer spares the page faults of fresh memory for every module.
func readInto(path string, buf *[]byte) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > compression.MaxDecoded {
		return nil, fmt.Errorf("%s: not a regular file of a module's size", path)
	}
	if int64(cap(*buf)) < st.Size()+1 {
		*buf = make([]byte, st.Size()+1)
	}
	b := (*buf)[:cap(*buf)]
	n, err := io.ReadFull(f, b)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return b[:n], nil
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The file grew since Stat: read the rest the slow way.
	rest, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	*buf = append(b, rest...)
	return *buf, nil
}

// openRegular opens path for reading only if it is a regular file: a FIFO or device in a
// module tree is an error at once, never an open or read that blocks. path is a file a tree
// resolved inside its root (kernelTree.file).
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w (%s)", path, rootfs.ErrNotRegular, rootfs.Kind(st.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sameLoadedContent reports whether two module files give the kernel the same module: equal
// contents of every section loaded into memory (SHF_ALLOC) and of .modinfo (whose srcversion
// hashes the sources) and __versions, whatever debug information either carries. Relocation
// sections are left out: stripping renumbers the symbols they refer to. An unparsable file
// is never the same.
func sameLoadedContent(a, b []byte) bool {
	sa, errA := loadedSections(a)
	sb, errB := loadedSections(b)
	if errA != nil || errB != nil || len(sa) != len(sb) {
		return false
	}
	for name, data := range sa {
		if other, ok := sb[name]; !ok || !bytes.Equal(data, other) {
			return false
		}
	}
	return true
}

func loadedSections(raw []byte) (map[string][]byte, error) {
	f, err := safeelf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 && s.Name != ".modinfo" && s.Name != "__versions" {
			continue
		}
		data, err := f.SectionData(s)
		if err != nil {
			return nil, err
		}
		out[s.Name] = data
	}
	return out, nil
}

// mainCompression is the compression of the image's last segment, the one holding the rootfs.
func mainCompression(im *initramfs.Image) compression.Format {
	if len(im.Segments) == 0 {
		return compression.None
	}
	return im.Segments[len(im.Segments)-1].Compression
}
