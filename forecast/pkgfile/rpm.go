package pkgfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kabiguard/kabiguard/initramfs"
)

// The RPM file format (rpm's docs/manual/format.md): a 96-byte lead, the signature header
// padded to 8 bytes, the main header, then the payload: a cpio archive (newc) compressed as
// the header's PAYLOADCOMPRESSOR says (recognised here by magic).
const (
	rpmLeadLen       = 96
	rpmHeaderMagic   = "\x8e\xad\xe8\x01"
	rpmMaxIndex      = 1 << 16 // rpm's own limits on header index entries and data
	rpmMaxStore      = 256 << 20
	rpmTagName       = 1000
	rpmTagVersion    = 1001
	rpmTagRelease    = 1002
	rpmTagArch       = 1022
	rpmTagPayloadFmt = 1124
	rpmTypeString    = 6
	rpmTypeI18N      = 9
)

var rpmLeadMagic = []byte{0xed, 0xab, 0xee, 0xdb}

// rpmHeader is one header structure: its tags' string values, and its length in the file.
type rpmHeader struct {
	strings map[int]string
	length  int64
}

// readRPMHeader reads the header structure at off.
func readRPMHeader(ra io.ReaderAt, off, size int64) (*rpmHeader, error) {
	var intro [16]byte
	if _, err := ra.ReadAt(intro[:], off); err != nil {
		return nil, fmt.Errorf("%w: RPM header at offset %d", ErrTruncated, off)
	}
	if string(intro[:4]) != rpmHeaderMagic {
		return nil, fmt.Errorf("%w: no RPM header magic at offset %d", ErrFormat, off)
	}
	nindex := int64(binary.BigEndian.Uint32(intro[8:]))
	hsize := int64(binary.BigEndian.Uint32(intro[12:]))
	if nindex > rpmMaxIndex || hsize > rpmMaxStore {
		return nil, fmt.Errorf("%w: RPM header at offset %d claims %d entries, %d bytes", ErrFormat, off, nindex, hsize)
	}
	length := 16 + 16*nindex + hsize
	if length > size-off {
		return nil, fmt.Errorf("%w: RPM header at offset %d is %d bytes, the file ends after %d", ErrTruncated, off, length, size-off)
	}
	buf := make([]byte, length-16)
	if _, err := ra.ReadAt(buf, off+16); err != nil {
		return nil, fmt.Errorf("%w: RPM header at offset %d", ErrTruncated, off)
	}
	index, store := buf[:16*nindex], buf[16*nindex:]
	h := &rpmHeader{strings: map[int]string{}, length: length}
	for i := int64(0); i < nindex; i++ {
		e := index[16*i:]
		tag, typ := int(binary.BigEndian.Uint32(e)), binary.BigEndian.Uint32(e[4:])
		at := int64(binary.BigEndian.Uint32(e[8:]))
		if typ != rpmTypeString && typ != rpmTypeI18N || at >= hsize {
			continue
		}
		if end := bytes.IndexByte(store[at:], 0); end >= 0 {
			h.strings[tag] = string(store[at : at+int64(end)])
		}
	}
	return h, nil
}

// rpmLayout checks the lead and headers and returns the main header and the payload's offset.
func rpmLayout(ra io.ReaderAt, size int64) (*rpmHeader, int64, error) {
	var lead [rpmLeadLen]byte
	if _, err := ra.ReadAt(lead[:], 0); err != nil || !bytes.Equal(lead[:4], rpmLeadMagic) {
		return nil, 0, fmt.Errorf("%w: no RPM lead", ErrFormat)
	}
	sig, err := readRPMHeader(ra, rpmLeadLen, size)
	if err != nil {
		return nil, 0, fmt.Errorf("signature header: %w", err)
	}
	off := rpmLeadLen + sig.length
	off += (8 - off%8) % 8 // the signature header is padded to 8 bytes
	main, err := readRPMHeader(ra, off, size)
	if err != nil {
		return nil, 0, fmt.Errorf("main header: %w", err)
	}
	if f := main.strings[rpmTagPayloadFmt]; f != "" && f != "cpio" {
		return nil, 0, fmt.Errorf("%w: payload format %q (only cpio is read)", ErrFormat, f)
	}
	return main, off + main.length, nil
}

func readRPMMeta(ra io.ReaderAt, size int64) (*Package, error) {
	h, _, err := rpmLayout(ra, size)
	if err != nil {
		return nil, err
	}
	name := h.strings[rpmTagName]
	if name == "" {
		return nil, fmt.Errorf("%w: RPM header without a name", ErrFormat)
	}
	version := h.strings[rpmTagVersion]
	if r := h.strings[rpmTagRelease]; r != "" {
		version += "-" + r
	}
	return &Package{Kind: RPM, Name: name, Version: version, Arch: h.strings[rpmTagArch]}, nil
}

// walkRPM visits the payload's regular files with content in archive order, as the one
// decompression passes them, then every other entry (directories, symlinks, empty files and
// the further names of hard links, whose content cpio stores with the last name).
func walkRPM(ra io.ReaderAt, size int64, fn WalkFunc) error {
	_, off, err := rpmLayout(ra, size)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	visit := func(rec initramfs.Entry, body io.Reader) error {
		if !rec.IsRegular() {
			return nil
		}
		seen[rec.Name] = true
		return fn(File{Name: rec.Name, Mode: rec.FileMode(), Size: rec.Size}, body)
	}
	im, err := initramfs.Read(io.NewSectionReader(ra, off, size-off), size-off, "payload", initramfs.Options{Visit: visit})
	if err != nil {
		var fe *initramfs.FormatError
		if errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: payload: %v", ErrTruncated, fe.Err)
		}
		return fmt.Errorf("%w: payload: %v", ErrFormat, err)
	}
	// The records as archived: the image's merged view is the kernel's, which drops what has
	// no parent directory record, and an RPM payload lists only the directories it owns.
	var records []initramfs.Entry
	for _, seg := range im.Segments {
		records = append(records, seg.Entries...)
	}
	for _, e := range records {
		if e.Name == "." || seen[e.Name] {
			continue
		}
		f := File{Name: e.Name, Mode: e.FileMode(), Linkname: e.LinkTarget}
		if e.IsRegular() && e.NLink > 1 {
			if src := hardLinkSource(records, e, seen); src != "" {
				f.HardLink, f.Linkname = true, src
			}
		}
		if err := fn(f, bytes.NewReader(nil)); err != nil {
			return err
		}
	}
	return nil
}

// hardLinkSource is the name, among the hard-link group of e, of the record whose content
// was visited ("" if none was: every name of the group is empty).
func hardLinkSource(records []initramfs.Entry, e initramfs.Entry, seen map[string]bool) string {
	for _, o := range records {
		if seen[o.Name] && o.Ino == e.Ino && o.Devmajor == e.Devmajor && o.Devminor == e.Devminor {
			return o.Name
		}
	}
	return ""
}
