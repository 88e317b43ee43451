package imagesync

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// imageScan is what one pass over an image learns: its entries, and for each module file
// record whose module name the tree has, whether the record holds the build the tree resolves
// that name to. A full image is a hundred megabytes of modules: reading it once, comparing on
// the other cores as it streams by and keeping nothing of it is what makes verify and refresh
// take a fraction of a second where a generator takes a minute.
type imageScan struct {
	im *initramfs.Image
	// same: record name → the record's content is the tree's build of the module its file
	// name names. Later records of a name override earlier ones, as in the kernel.
	same map[string]bool
	// depmodIn: the bodies of kernel's modules.builtin*, modules.order records by name:
	// depmod's inputs besides the modules.
	depmodIn map[string][]byte

	// The verdict per record, for a rewrite running beside the scan (see result).
	mu       sync.Mutex
	posted   *sync.Cond
	byRecord map[initramfs.Pos]bool
	finished bool
}

func newImageScan() *imageScan {
	sc := &imageScan{same: map[string]bool{}, depmodIn: map[string][]byte{}, byRecord: map[initramfs.Pos]bool{}}
	sc.posted = sync.NewCond(&sc.mu)
	return sc
}

// result waits until the scan compared the record at pos with the tree, or ended; ok is
// false when it did not compare it (a scan that failed, a record it could not read as a
// module of the tree).
func (sc *imageScan) result(pos initramfs.Pos) (same, ok bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		if same, ok := sc.byRecord[pos]; ok {
			return same, true
		}
		if sc.finished {
			return false, false
		}
		sc.posted.Wait()
	}
}

func scanImage(img *imageFile, kernel string, tree *kernelTree) (*imageScan, error) {
	sc := newImageScan()
	return sc, sc.run(img, kernel, tree)
}

// run reads the image (see imageScan); results are posted as the comparisons end.
func (sc *imageScan) run(img *imageFile, kernel string, tree *kernelTree) error {
	image := img.path
	defer func() {
		sc.mu.Lock()
		sc.finished = true
		sc.posted.Broadcast()
		sc.mu.Unlock()
	}()
	type job struct {
		rec  initramfs.Entry
		body []byte
		tree string
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	jobs := make(chan job)
	free := make(chan []byte, workers+1) // bodies in flight: memory stays bounded
	for range workers + 1 {
		free <- nil
	}
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var treeBuf []byte
			for j := range jobs {
				same, err := sameModule(j.body, j.tree, &treeBuf)
				sc.mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", image, j.rec.Name, err))
				} else {
					sc.byRecord[j.rec.Pos] = same
				}
				sc.same[j.rec.Name] = same
				sc.posted.Broadcast()
				sc.mu.Unlock()
				free <- j.body
			}
		}()
	}
	visit := func(rec initramfs.Entry, body io.Reader) error {
		name, size := rec.Name, rec.Size
		if rel, ok := kernelRel(name, kernel); ok && isDepmodInput(rel) {
			b, err := io.ReadAll(body)
			sc.depmodIn[name] = b
			return err
		}
		mod, ok := kmod.ModuleName(name), kmod.IsModule(name)
		if !ok || !strings.Contains(name, "lib/modules/") {
			return nil
		}
		tf, err := tree.file(mod)
		if err != nil || tf == "" {
			return err
		}
		buf := <-free
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(body, buf); err != nil {
			free <- buf
			return err
		}
		jobs <- job{rec, buf, tf}
		return nil
	}
	im, err := initramfs.Read(img.f, img.size, image, initramfs.Options{Visit: visit})
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	if len(im.Segments) == 0 { // nothing but zero padding
		return fmt.Errorf("%s: no cpio archive in it, not an initramfs image", image)
	}
	if err := errors.Join(errs...); err != nil {
		im.Close()
		return err
	}
	sc.im = im
	return nil
}

// decided returns, for each module path of km, whether the scan settled that it is the
// tree's build: the path's file (symlinks followed) was compared under the path's own module
// name. Paths left out need their content compared (e.g. a link whose target has another name).
func (sc *imageScan) decided(km *KernelModules) (map[string]bool, error) {
	out := map[string]bool{}
	for _, m := range km.Modules {
		t, err := sc.im.Resolve(m.Path)
		if err != nil {
			return nil, err
		}
		same, ok := sc.same[t]
		if n := kmod.ModuleName(t); ok && kmod.IsModule(t) && n == m.Name {
			out[m.Path] = same
		}
	}
	return out, nil
}
