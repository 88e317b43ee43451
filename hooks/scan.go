package hooks

import (
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/kabiguard/kabiguard/initramfs"
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
}

func scanImage(image, kernel string, tree *kernelTree) (*imageScan, error) {
	sc := &imageScan{same: map[string]bool{}, depmodIn: map[string][]byte{}}
	type job struct {
		name string
		body []byte
		tree string
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	jobs := make(chan job)
	free := make(chan []byte, workers+1) // bodies in flight: memory stays bounded
	for range workers + 1 {
		free <- nil
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var treeBuf []byte
			for j := range jobs {
				same, err := sameModule(j.body, j.tree, &treeBuf)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", image, j.name, err))
				}
				sc.same[j.name] = same
				mu.Unlock()
				free <- j.body
			}
		}()
	}
	kernelDirs := []string{"usr/lib/modules/" + kernel, "lib/modules/" + kernel}
	visit := func(name string, size int64, body io.Reader) error {
		if dir, base := path.Split(name); (strings.TrimSuffix(dir, "/") == kernelDirs[0] || strings.TrimSuffix(dir, "/") == kernelDirs[1]) &&
			(base == "modules.order" || strings.HasPrefix(base, "modules.builtin") && !strings.HasSuffix(base, ".bin")) {
			b, err := io.ReadAll(body)
			sc.depmodIn[name] = b
			return err
		}
		mod, _, ok := initramfs.ModuleName(name)
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
		jobs <- job{name, buf, tf}
		return nil
	}
	im, err := initramfs.Scan(image, visit)
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		im.Close()
		return nil, err
	}
	sc.im = im
	return sc, nil
}

// decided returns, for each module path of km, whether the scan settled that it is the
// tree's build: the path's file (symlinks followed) was compared under the path's own module
// name. Paths left out need their content compared (e.g. a link whose target has another name).
func (sc *imageScan) decided(km *initramfs.KernelModules) (map[string]bool, error) {
	out := map[string]bool{}
	for _, m := range km.Modules {
		t, err := sc.im.Resolve(m.Path)
		if err != nil {
			return nil, err
		}
		same, ok := sc.same[t]
		if n, _, _ := initramfs.ModuleName(t); ok && n == m.Name {
			out[m.Path] = same
		}
	}
	return out, nil
}
