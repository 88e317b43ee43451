package pkgfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// The ar container of deb(5): a global header, then members of a 60-byte header and their
// data, each padded to an even offset.
const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
	// maxControl bounds control.tar as read into memory (Debian's largest are a few MiB).
	maxControl = 64 << 20
)

type arMember struct {
	name string
	off  int64 // of the data, in the file
	size int64
}

// arMembers lists the members of the ar archive in ra (size bytes).
func arMembers(ra io.ReaderAt, size int64) ([]arMember, error) {
	var magic [len(arMagic)]byte
	if _, err := ra.ReadAt(magic[:], 0); err != nil || string(magic[:]) != arMagic {
		return nil, fmt.Errorf("%w: no ar archive magic (a .deb starts with %q)", ErrFormat, strings.TrimSpace(arMagic))
	}
	var members []arMember
	var h [arHeaderLen]byte
	for off := int64(len(arMagic)); off < size; {
		if _, err := ra.ReadAt(h[:], off); err != nil {
			return nil, fmt.Errorf("%w: ar member header at offset %d", ErrTruncated, off)
		}
		if string(h[58:60]) != "`\n" {
			return nil, fmt.Errorf("%w: bad ar member header at offset %d", ErrFormat, off)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: bad ar member size %q at offset %d", ErrFormat, strings.TrimSpace(string(h[48:58])), off)
		}
		data := off + arHeaderLen
		if n > size-data {
			return nil, fmt.Errorf("%w: ar member at offset %d holds %d bytes, the file ends after %d", ErrTruncated, off, n, size-data)
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(h[:16])), "/") // GNU ar ends names with '/'
		members = append(members, arMember{name: name, off: data, size: n})
		off = data + n + n%2
	}
	return members, nil
}

// debMembers checks deb(5)'s layout and returns its control and data members.
func debMembers(ra io.ReaderAt, size int64) (control, data arMember, err error) {
	members, err := arMembers(ra, size)
	if err != nil {
		return control, data, err
	}
	if len(members) == 0 || members[0].name != "debian-binary" {
		return control, data, fmt.Errorf("%w: an ar archive, but its first member is not debian-binary", ErrFormat)
	}
	var ver [4]byte
	if members[0].size < 4 {
		return control, data, fmt.Errorf("%w: debian-binary is %d bytes", ErrFormat, members[0].size)
	}
	if _, err := ra.ReadAt(ver[:], members[0].off); err != nil || !bytes.HasPrefix(ver[:], []byte("2.")) {
		return control, data, fmt.Errorf("%w: format version %q is not 2.x", ErrFormat, bytes.TrimSpace(ver[:]))
	}
	var haveControl, haveData bool
	for _, m := range members[1:] {
		switch {
		case strings.HasPrefix(m.name, "control.tar") && !haveControl:
			control, haveControl = m, true
		case strings.HasPrefix(m.name, "data.tar") && !haveData:
			data, haveData = m, true
		}
	}
	if !haveControl || !haveData {
		return control, data, fmt.Errorf("%w: no control.tar or no data.tar member", ErrFormat)
	}
	return control, data, nil
}

// readDebMeta reads the package's control file: Package, Version, Architecture.
func readDebMeta(f io.ReaderAt, size int64) (*Package, error) {
	control, _, err := debMembers(f, size)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	err = walkTar(io.NewSectionReader(f, control.off, control.size), control.size, func(file File, body io.Reader) error {
		if file.Name != "control" || !file.IsRegular() {
			return nil
		}
		text, err := io.ReadAll(io.LimitReader(body, maxControl))
		if err != nil {
			return err
		}
		parseControl(text, fields)
		return SkipAll
	})
	if err != nil && !errors.Is(err, SkipAll) {
		return nil, fmt.Errorf("%s: %w", control.name, err)
	}
	if fields["Package"] == "" {
		return nil, fmt.Errorf("%w: %s holds no control file with a Package field", ErrFormat, control.name)
	}
	return &Package{Kind: Deb, Name: fields["Package"], Version: fields["Version"], Arch: fields["Architecture"]}, nil
}

// parseControl reads the first paragraph's simple fields (deb-control(5)).
func parseControl(text []byte, fields map[string]string) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), maxControl)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continuation of a multi-line field
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
}

// walkDeb visits the entries of the package's data.tar.
func walkDeb(f io.ReaderAt, size int64, fn WalkFunc) error {
	_, data, err := debMembers(f, size)
	if err != nil {
		return err
	}
	if err := walkTar(io.NewSectionReader(f, data.off, data.size), data.size, fn); err != nil {
		return fmt.Errorf("%s: %w", data.name, err)
	}
	return nil
}

// walkTar visits the entries of a tar archive, compressed or not, held in ra.
func walkTar(ra io.ReaderAt, size int64, fn WalkFunc) error {
	r, err := decompress(ra, size)
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return tarError(err)
		}
		f, ok, err := tarFile(h)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var body io.Reader = bytes.NewReader(nil)
		if f.IsRegular() {
			body = tr
		}
		if err := fn(f, body); err != nil {
			return err
		}
	}
}

// tarFile converts a tar header; ok is false for entries without a file (the root, PAX
// globals).
func tarFile(h *tar.Header) (File, bool, error) {
	name, ok, err := cleanName(h.Name)
	if err != nil || !ok {
		return File{}, false, err
	}
	f := File{Name: name, Mode: h.FileInfo().Mode(), Size: h.Size}
	switch h.Typeflag {
	case tar.TypeSymlink:
		f.Linkname = h.Linkname
	case tar.TypeLink:
		target, ok, err := cleanName(h.Linkname)
		if err != nil || !ok {
			return File{}, false, fmt.Errorf("%w: hard link %q to %q", ErrOutside, h.Name, h.Linkname)
		}
		f.Linkname, f.HardLink, f.Size = target, true, 0
	case tar.TypeXGlobalHeader:
		return File{}, false, nil
	}
	return f, true, nil
}

func tarError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the tar archive ends inside an entry", ErrTruncated)
	}
	return fmt.Errorf("%w: %v", ErrFormat, err)
}

// decompress returns the content of the member in ra, undoing its compression (recognised by
// magic). An xz stream whose blocks record their sizes (multi-threaded xz, as dpkg-deb
// writes) is decoded on every core.
func decompress(ra io.ReaderAt, size int64) (io.ReadCloser, error) {
	var head [8]byte
	n, _ := ra.ReadAt(head[:], 0)
	format, ok := compression.Detect(head[:n])
	if !ok {
		return io.NopCloser(io.NewSectionReader(ra, 0, size)), nil
	}
	if format == compression.XZ {
		if bin := compression.XZCommand(); bin != "" {
			if p, err := compression.NewXZCommandReader(bin, io.NewSectionReader(ra, 0, size), false); err == nil {
				return formatErrors{p}, nil
			}
		}
		if st, err := compression.WalkXZ(ra, 0, size); err == nil {
			return st.NewReader(ra), nil
		}
	}
	r, err := compression.NewReader(io.NewSectionReader(ra, 0, size), format)
	if err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrFormat, format, err)
	}
	return r, nil
}

// formatErrors marks a decoder's failure (corrupt data) as ErrFormat.
type formatErrors struct{ io.ReadCloser }

func (f formatErrors) Read(b []byte) (int, error) {
	n, err := f.ReadCloser.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return n, err
}
