package initramfs

// The rootfs an image leaves once the kernel unpacked every segment in order: later entries
// override earlier ones, hard links share content, symlinks resolve inside it; lookups and
// reads of file bodies (decompressing a segment again up to the file, or from what Options.Keep kept).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// merge builds the view of the rootfs after the kernel unpacked every segment in order.
func (im *Image) merge() {
	im.files = map[string]*Entry{".": {Name: ".", Mode: modeDir | 0o755, Pos: Pos{SegmentOffset: -1}, node: &inode{seg: -1}}}
	children := map[string]int{}
	for si := range im.Segments {
		for _, e := range im.Segments[si].Entries {
			name := e.Name
			if name != "." {
				// The kernel creates the entry through symlinks in its parent path.
				dir, ok := im.resolve(path.Dir(name), 0)
				if !ok {
					im.Skipped = append(im.Skipped, Skipped{e, "parent directory missing"})
					continue
				}
				if d := im.files[dir]; d == nil || !d.IsDir() {
					im.Skipped = append(im.Skipped, Skipped{e, "parent is not a directory"})
					continue
				}
				if dir == "." {
					name = path.Base(name)
				} else {
					name = dir + "/" + path.Base(name)
				}
			}
			prev := im.files[name]
			ne := e
			ne.Name = name
			switch {
			case prev == nil:
				children[path.Dir(name)]++
			case e.HardlinkTo != "":
				// clean_path(name, 0) removes whatever is there, then link().
				if prev.IsDir() && children[name] > 0 {
					im.Skipped = append(im.Skipped, Skipped{e, "directory not empty"})
					continue
				}
			case prev.Type() == e.Type() && e.Type() != modeRegular:
				// mkdir/mknod/symlink fail with EEXIST; chown/chmod/utime still apply.
				keep := *prev
				keep.UID, keep.GID, keep.MTime = e.UID, e.GID, e.MTime
				if e.Type() != modeSymlink {
					keep.Mode = e.Mode
				}
				ne = keep
			case prev.IsDir() && children[name] > 0:
				im.Skipped = append(im.Skipped, Skipped{e, "directory not empty"})
				continue
			}
			im.files[name] = &ne
		}
	}
	for _, e := range im.files {
		if e.node != nil && e.node.seg >= 0 {
			e.Size = e.node.size
		} else if e.IsRegular() {
			e.Size = 0
		}
	}
	for si := range im.Segments {
		for i := range im.Segments[si].Entries {
			e := &im.Segments[si].Entries[i]
			if e.IsRegular() {
				e.Size = e.node.size
			}
		}
	}
	im.names = make([]string, 0, len(im.files))
	for n := range im.files {
		im.names = append(im.names, n)
	}
	sort.Strings(im.names)
}

// resolve follows symlinks in name within the merged view. It returns the path of the file
// name refers to and whether every component exists. depth counts symlinks followed.
func (im *Image) resolve(name string, depth int) (string, bool) {
	if name == "." || name == "" {
		return ".", true
	}
	cur := "."
	parts := strings.Split(name, "/")
	for i, p := range parts {
		next := p
		if cur != "." {
			next = cur + "/" + p
		}
		if p == ".." {
			next = path.Dir(cur)
			if cur == "." {
				next = "."
			}
		}
		e := im.files[next]
		if e == nil {
			return next, false
		}
		if e.IsSymlink() {
			if depth >= 40 {
				return next, false
			}
			t := e.LinkTarget
			if !strings.HasPrefix(t, "/") && cur != "." {
				t = cur + "/" + t
			}
			rest := strings.Join(parts[i+1:], "/")
			if rest != "" {
				t += "/" + rest
			}
			return im.resolve(normalize(t), depth+1)
		}
		cur = next
	}
	return cur, true
}

// Entries returns the files of the unpacked rootfs sorted by name, later entries of the image
// having overridden earlier ones as in the kernel. The root "." is always included (with
// Pos.SegmentOffset -1 when no archive carries it); entries the kernel would not create are in
// Skipped.
func (im *Image) Entries() []Entry {
	out := make([]Entry, len(im.names))
	for i, n := range im.names {
		out[i] = *im.files[n]
	}
	return out
}

// Lookup returns the entry named name (not following symlinks).
func (im *Image) Lookup(name string) (Entry, bool) {
	e, ok := im.files[normalize(name)]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Stat returns the entry name refers to, following symlinks inside the image.
func (im *Image) Stat(name string) (Entry, error) {
	p, ok := im.resolve(normalize(name), 0)
	if !ok {
		return Entry{}, &fs.PathError{Op: "stat", Path: im.Name + ":" + normalize(name), Err: fs.ErrNotExist}
	}
	return *im.files[p], nil
}

// Resolve returns the name of the entry name refers to once every symlink on its path is
// followed inside the image (at most 40), as the kernel's path walk in the unpacked rootfs
// would; an error when a component does not exist.
func (im *Image) Resolve(name string) (string, error) {
	p, ok := im.resolve(normalize(name), 0)
	if !ok {
		return "", &fs.PathError{Op: "resolve", Path: im.Name + ":" + normalize(name), Err: fs.ErrNotExist}
	}
	return p, nil
}

// ReadFile returns the content of the regular file name refers to, following symlinks inside
// the image.
func (im *Image) ReadFile(name string) ([]byte, error) {
	m, err := im.ReadFiles(name)
	if err != nil {
		return nil, err
	}
	return m[normalize(name)], nil
}

// ReadFiles returns the contents of several regular files, keyed by normalised name,
// decompressing each segment involved at most once.
func (im *Image) ReadFiles(names ...string) (map[string][]byte, error) {
	type want struct {
		name string
		n    *inode
	}
	bySeg := map[int][]want{}
	out := make(map[string][]byte, len(names))
	for _, raw := range names {
		name := normalize(raw)
		e, err := im.Stat(name)
		if err != nil {
			return nil, err
		}
		if !e.IsRegular() {
			return nil, &fs.PathError{Op: "read", Path: im.Name + ":" + name, Err: fmt.Errorf("not a regular file (mode %#o)", e.Mode)}
		}
		if e.node.seg < 0 || e.node.size == 0 {
			out[name] = []byte{}
			continue
		}
		if b, ok := im.deps[[2]int64{int64(e.node.seg), e.node.off}]; ok && int64(len(b)) == e.node.size {
			out[name] = bytes.Clone(b)
			continue
		}
		bySeg[e.node.seg] = append(bySeg[e.node.seg], want{name, e.node})
	}
	for si, ws := range bySeg {
		seg := im.Segments[si]
		ferr := func(err error) error {
			return &FormatError{File: im.Name, Segment: si + 1, Compression: seg.Compression, Offset: seg.Offset, Err: err}
		}
		if seg.plain != nil || seg.Compression == compression.None { // nothing to decompress
			for _, w := range ws {
				b, err := im.content(w.n)
				if err != nil {
					return nil, ferr(fmt.Errorf("reading %q: %w", w.name, err))
				}
				if seg.plain != nil {
					b = bytes.Clone(b) // content shares the memory Options.Keep kept
				}
				out[w.name] = b
			}
			continue
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].n.off < ws[j].n.off })
		d, err := openSegment(im.ra, seg.Offset, im.Size, seg.Compression, seg.Length)
		if err != nil {
			return nil, ferr(err)
		}
		s := newStream(d)
		for _, w := range ws {
			if w.n.off < s.pos { // two names of one hard-link group
				for _, prev := range ws {
					if prev.n == w.n && out[prev.name] != nil {
						out[w.name] = out[prev.name]
						break
					}
				}
				continue
			}
			if err := s.skip(w.n.off - s.pos); err != nil {
				d.close()
				return nil, ferr(fmt.Errorf("reading %q: %w", w.name, truncated(err)))
			}
			b := make([]byte, w.n.size)
			if err := s.readFull(b); err != nil {
				d.close()
				return nil, ferr(fmt.Errorf("reading %q: %w", w.name, truncated(err)))
			}
			out[w.name] = b
		}
		d.close()
	}
	return out, nil
}

// Walk calls fn for every record of every segment in image order, with the body of regular
// files that have one (nil otherwise), decompressing each segment once. fn must not keep r.
func (im *Image) Walk(fn func(e Entry, r io.Reader) error) error {
	for si, seg := range im.Segments {
		var s *stream
		var closeFn func()
		switch {
		case seg.Compression == compression.None:
			s = newFileStream(im.ra, seg.Offset, seg.Offset+seg.Length)
			closeFn = func() {}
		case seg.plain != nil:
			s = newFileStream(seg.plain, 0, seg.plain.size)
			closeFn = func() {}
		default:
			d, err := openSegment(im.ra, seg.Offset, im.Size, seg.Compression, seg.Length)
			if err != nil {
				return err
			}
			s, closeFn = newStream(d), d.close
		}
		i := 0
		for i < len(seg.Entries) {
			if _, err := s.skipZeros(); err != nil {
				closeFn()
				return &FormatError{File: im.Name, Segment: si + 1, Compression: seg.Compression, Offset: seg.Offset, Err: truncated(err)}
			}
			called := false
			var cbErr error
			r, err := s.readRecord(func(r *record, rd io.Reader) error {
				called = true
				cbErr = fn(seg.Entries[i], rd)
				return cbErr
			})
			if cbErr != nil {
				closeFn()
				return cbErr
			}
			if err != nil {
				closeFn()
				return &FormatError{File: im.Name, Segment: si + 1, Compression: seg.Compression, Offset: seg.Offset, Err: err}
			}
			if r.name == trailer {
				continue
			}
			if !called {
				if err := fn(seg.Entries[i], nil); err != nil {
					closeFn()
					return err
				}
			}
			i++
		}
		closeFn()
	}
	return nil
}

// WalkBodies calls fn for every record of every segment in image order, with the content of
// regular files that are not a hard link to an earlier name: the content of the file's inode
// as the kernel leaves it (for a hard-link group, whichever record carries the data). It
// decompresses nothing, so a compressed segment must have been kept (Options.Keep); the bytes then
// share the image's memory, which spares copying a whole image, and must not be modified.
func (im *Image) WalkBodies(fn func(e Entry, body []byte) error) error {
	for si, seg := range im.Segments {
		for _, e := range seg.Entries {
			var body []byte
			if e.IsRegular() && e.HardlinkTo == "" {
				b, err := im.content(e.node)
				if err != nil {
					return &FormatError{File: im.Name, Segment: si + 1, Compression: seg.Compression, Offset: seg.Offset,
						Err: fmt.Errorf("reading %q: %w", e.Name, err)}
				}
				body = b
			}
			if err := fn(e, body); err != nil {
				return err
			}
		}
	}
	return nil
}

// content returns the data of inode n without decompressing.
func (im *Image) content(n *inode) ([]byte, error) {
	if n == nil || n.seg < 0 || n.size == 0 {
		return []byte{}, nil
	}
	seg := im.Segments[n.seg]
	switch {
	case seg.plain != nil:
		return seg.plain.slice(n.off, n.size)
	case seg.Compression == compression.None:
		b := make([]byte, n.size)
		if _, err := im.ra.ReadAt(b, seg.Offset+n.off); err != nil {
			return nil, truncated(err)
		}
		return b, nil
	}
	return nil, errors.New("a compressed segment's content needs the image read with Options.Keep")
}
