package imagesync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// leftoverAge: a temporary file of the older naming (no pid in it) is removed only when no
// run can still be writing it; refreshes take seconds, generator runs a minute or two.
const leftoverAge = 30 * time.Minute

// RemoveLeftovers removes what killed runs of kabiguard left, and says so: temporary images
// next to the kernels' images under root (".NAME.kabiguard-tmp-PID", whose process is gone;
// ".NAME.tmp-N" and "NAME.kabiguard-new" of older versions once old), and the depmod scratch
// trees in /dev/shm or the temporary directory; also next to the images more (host paths
// under root) lead to. Call it under the tree lock.
func RemoveLeftovers(root string, log func(string), more ...string) {
	r, err := rootfs.At(root)
	if err != nil {
		return
	}
	dirs := map[string]bool{r.Path("boot"): true}
	for _, img := range more { // images named on the command line, where they lead
		if real, _, err := resolveImage(root, img); err == nil && rootfs.Within(r.Dir(), real) {
			dirs[filepath.Dir(real)] = true
		}
	}
	if owed, err := weakupdates.ImagesOwed(root); err == nil {
		for _, k := range owed {
			if img, err := LocateImage(root, k); err == nil && img != "" {
				if real, _, err := resolveImage(root, img); err == nil {
					dirs[filepath.Dir(real)] = true
				}
			}
		}
	}
	for dir := range dirs {
		ents, err := r.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !leftoverImage(e, time.Now()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := r.Remove(p); err == nil {
				log(fmt.Sprintf("removed %s, left by an interrupted image refresh or rebuild", p))
			}
		}
	}
	for _, dir := range []string{"/dev/shm", os.TempDir()} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !e.IsDir() || !leftoverScratch(e, time.Now()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			hold, err := lockScratch(p, true)
			if err != nil {
				continue // its owner runs (maybe in another pid namespace), or it is not ours to open
			}
			if err := os.RemoveAll(p); err == nil {
				log(fmt.Sprintf("removed %s, the depmod scratch tree of an interrupted image refresh", p))
			}
			hold.Close()
		}
	}
}

// leftoverImage reports whether a file next to an image is a temporary image of a run that is
// over: one carrying rootfs.TempMarker and the pid of a process that no longer lives, or a
// temporary name of an older version (".initrd.img-K.tmp-123", "initrd.img-K.kabiguard-new")
// that nothing has written for leftoverAge.
func leftoverImage(e fs.DirEntry, now time.Time) bool {
	name := e.Name()
	if pid, ok := tempPid(name); ok {
		return strings.HasPrefix(name, ".") && isImageName(strings.TrimPrefix(name[:strings.Index(name, rootfs.TempMarker)], ".")) && !alive(pid)
	}
	base, old := "", false
	if b, n, ok := strings.Cut(strings.TrimPrefix(name, "."), ".tmp-"); ok && strings.HasPrefix(name, ".") && allDigits(n) {
		base, old = b, true
	} else if b, ok := strings.CutSuffix(name, ".kabiguard-new"); ok {
		base, old = b, true
	}
	if !old || !isImageName(base) {
		return false
	}
	fi, err := e.Info()
	return err == nil && now.Sub(fi.ModTime()) > leftoverAge
}

// leftoverScratch is leftoverImage for a depmod scratch tree.
func leftoverScratch(e fs.DirEntry, now time.Time) bool {
	name := e.Name()
	if !strings.HasPrefix(name, depmodScratchPrefix) {
		return false
	}
	if pid, ok := tempPid(name); ok {
		return !alive(pid)
	}
	// The older name: "kabiguard-depmod-" and a random number.
	if n, ok := strings.CutPrefix(name, depmodScratchPrefix+"-"); !ok || !allDigits(n) {
		return false
	}
	fi, err := e.Info()
	return err == nil && now.Sub(fi.ModTime()) > leftoverAge
}

// isImageName reports whether a file name is one of ImagePaths' names.
func isImageName(name string) bool {
	return strings.HasPrefix(name, "initramfs-") && strings.HasSuffix(name, ".img") ||
		strings.HasPrefix(name, "initrd.img-") || strings.HasPrefix(name, "initrd-")
}

// tempPid returns the pid in a name carrying rootfs.TempMarker (the digits after it).
func tempPid(name string) (int, bool) {
	i := strings.Index(name, rootfs.TempMarker)
	if i < 0 {
		return 0, false
	}
	rest := name[i+len(rootfs.TempMarker):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	pid, err := strconv.Atoi(rest[:n])
	return pid, err == nil && pid > 0
}

// alive reports whether process pid exists (ours counts: a name with our pid is being written
// by this process). A process of another user still exists: EPERM.
func alive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
