package initramfs

import "io"

// ScanAt and LoadAt are Scan and Load of an image the caller opened: callers that must choose
// how a path is opened (inside a root, regular files only, so that a FIFO never blocks) open
// it themselves. ra holds size bytes; name is used in errors. The caller closes ra, after the
// Image is no longer used.

// ScanAt is Scan of the image in ra.
func ScanAt(ra io.ReaderAt, size int64, name string, visit func(rec Record, body io.Reader) error) (*Image, error) {
	return parseAt(ra, size, name, func(im *Image) { im.visit = visit })
}

// LoadAt is Load of the image in ra.
func LoadAt(ra io.ReaderAt, size int64, name string) (*Image, error) {
	return parseAt(ra, size, name, func(im *Image) { im.keep = true })
}

func parseAt(ra io.ReaderAt, size int64, name string, set func(*Image)) (*Image, error) {
	im := &Image{Name: name, Size: size, ra: ra}
	set(im)
	if err := im.parse(); err != nil {
		return nil, err
	}
	im.merge()
	return im, nil
}
