package imagesync

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/rootfs"
)

// ImagePaths are the places distributions keep a kernel's initramfs, relative to the root.
func ImagePaths(release string) []string {
	return []string{
		"boot/initramfs-" + release + ".img", // RHEL, Fedora, SUSE (initrd-*)
		"boot/initrd.img-" + release,         // Debian, Ubuntu
		"boot/initrd-" + release,
	}
}

// FindImage returns the host path of release's initramfs under root, or "" when it has none
// (or LocateImage fails: use that to tell why).
func FindImage(root, release string) string {
	p, _ := LocateImage(root, release)
	return p
}

// LocateImage returns the host path of release's initramfs under root (the first of
// ImagePaths that exists), or "" when it has none. A symlink there is followed inside the
// root, as the boot loader reading that root would; one that leads outside the root, to
// nothing, or to something other than a regular file is an error naming it.
func LocateImage(root, release string) (string, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", err
	}
	for _, rel := range ImagePaths(release) {
		p := r.Path(rel)
		if _, err := r.Lstat(p); err != nil {
			continue
		}
		real, _, err := resolveImage(root, p)
		if err != nil {
			return "", err
		}
		fi, err := r.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("%s: the kernel's image path%s leads to %s, which does not exist: %w", p, linkNote(r, p), real, fs.ErrNotExist)
		case err != nil:
			return "", fmt.Errorf("%s: the kernel's image path%s: %w", p, linkNote(r, p), err)
		case !fi.Mode().IsRegular():
			return "", fmt.Errorf("%s: the kernel's image path%s is a %s, not an image: %w", p, linkNote(r, p), rootfs.Kind(fi.Mode()), rootfs.ErrNotRegular)
		}
		return p, nil
	}
	return "", nil
}

// linkNote says where p leads when it is a symlink, for messages.
func linkNote(r *rootfs.Root, p string) string {
	if t, err := r.Readlink(p); err == nil {
		return " (a symlink to " + t + ")"
	}
	return ""
}

// ErrEmptyImage: an image file of zero bytes holds no archive, so nothing in it can be
// judged current (a generator killed before it wrote, a full disk).
var ErrEmptyImage = errors.New("empty file (0 bytes), not an initramfs image")

// resolveImage returns the file an image path leads to and the root to read and replace it
// through: under root, symlinks are followed inside root (an absolute target means root, as
// for the boot loader reading it) and one leading outside is refused; a path outside root
// (an image given on the command line) is the host's, resolved by the host's rules.
func resolveImage(root, image string) (string, *rootfs.Root, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", nil, err
	}
	if _, err := r.Rel(image); err == nil {
		real, err := r.Resolve(image)
		if errors.Is(err, rootfs.ErrEscapes) {
			return "", nil, escapeError(fmt.Sprintf("%s: the image path%s leads outside the root %s; refusing to read or replace it", image, linkNote(r, image), r.Dir()))
		}
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", image, err)
		}
		return real, r, nil
	}
	real, err := filepath.EvalSymlinks(image)
	if err != nil {
		return "", nil, err
	}
	dr, err := rootfs.At(filepath.Dir(real))
	return real, dr, err
}

// escapeError is a message that is rootfs.ErrEscapes to errors.Is without repeating its text.
type escapeError string

func (e escapeError) Error() string { return string(e) }
func (e escapeError) Unwrap() error { return rootfs.ErrEscapes }

// imageFile is an image open for reading: path as given (used in messages), real the file it
// leads to, r the root it is read and replaced through. Only a regular file is opened: a
// FIFO or device is an error at once, never a read that blocks.
type imageFile struct {
	path, real string
	r          *rootfs.Root
	f          *os.File
	size       int64
	perm       fs.FileMode
}

// openImage opens image (see imageFile); an empty file is ErrEmptyImage.
func openImage(root, image string) (*imageFile, error) {
	real, r, err := resolveImage(root, image)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(real)
	if err != nil {
		if real != filepath.Clean(image) {
			return nil, fmt.Errorf("%s: leads to %s: %w", image, real, err)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: %w", image, ErrEmptyImage)
	}
	return &imageFile{path: image, real: real, r: r, f: f, size: st.Size(), perm: st.Mode().Perm()}, nil
}

func (img *imageFile) Close() error { return img.f.Close() }

// SameImage reports whether two image paths lead to the same file (each resolved as
// openImage resolves it).
func SameImage(root, a, b string) bool {
	ra, _, errA := resolveImage(root, a)
	rb, _, errB := resolveImage(root, b)
	if errA != nil || errB != nil {
		return false
	}
	fa, errA := os.Lstat(ra)
	fb, errB := os.Lstat(rb)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// OpenImage parses the image at image as openImage opens it (under root, symlinks followed
// inside it; a regular, non-empty file only) and returns it with the function closing it.
func OpenImage(root, image string) (*initramfs.Image, func(), error) {
	img, err := openImage(root, image)
	if err != nil {
		return nil, nil, err
	}
	im, err := initramfs.Read(img.f, img.size, image, initramfs.Options{})
	if err != nil {
		img.Close()
		return nil, nil, err
	}
	return im, func() { img.Close() }, nil
}

// replace writes the image anew through write and puts it in place of the file the image path
// leads to, atomically (a temporary file next to it, named for leftover removal: see
// initramfs.TempName): a symlink at the image path stays a symlink.
func (img *imageFile) replace(write func(io.Writer) error) error {
	return img.r.WriteAtomic(img.real, img.perm, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		testPoint("image-written")
		return nil
	})
}
