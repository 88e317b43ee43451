package exports

// The cache of derived exports, one file per kernel:
//
//	ROOT/var/cache/kabiguard/exports/RELEASE.symvers
//
// Under the root, because what it describes lies under the root (a sandbox or a chroot keeps
// its own, and a test never writes the host's), and in /var/cache because it is what the FHS
// says that directory is for: data an application can regenerate, whose loss costs time only.
//
// Layout: a header of comment lines, then modpost's symvers lines.
//
//	# kabiguard derived exports 1
//	# sum SHA256-OF-EVERYTHING-AFTER-THIS-LINE
//	# source SIZE MTIME-NS INODE PATH      vmlinuz first, then every module file read
//	# all                                  present when every in-tree module was read
//	0x...	symbol	module	EXPORT_SYMBOL	namespace
//
// A cache is used only if its sum matches and every source file still has the size, mtime and
// inode recorded (PATH is root-relative); anything else (corrupt, stale, another version) is
// ignored and replaced, never trusted.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

const cacheMagic = "# kabiguard derived exports 1"

// CachePath is where the derived exports of release are cached under root.
func CachePath(root, release string) string {
	return filepath.Join(root, "var", "cache", "kabiguard", "exports", release+".symvers")
}

// stamp identifies one version of a source file.
type stamp struct {
	size, mtime int64
	ino         uint64
}

func stampOf(r *rootfs.Root, p string) (stamp, error) {
	fi, err := r.Stat(p)
	if err != nil {
		return stamp{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return stamp{}, fmt.Errorf("%s: no inode number", p)
	}
	return stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: st.Ino}, nil
}

// derived is what a cache holds: the exports of vmlinux and of the module files read.
type derived struct {
	vmlinuz string // host path
	sources map[string]stamp
	modules map[string][]entry // by host path of the module file; an entry per file read
	vmlinux []entry
	all     bool
}

// loadCache returns the cached exports, or nil with the reason they cannot be used.
func loadCache(r *rootfs.Root, path, vmlinuz string, t *tree) (*derived, error) {
	data, err := r.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(why string) (*derived, error) { return nil, fmt.Errorf("%s: %s", path, why) }
	head, rest, _ := bytes.Cut(data, []byte("\n"))
	sumLine, body, _ := bytes.Cut(rest, []byte("\n"))
	if string(head) != cacheMagic {
		return bad("not a cache of this version")
	}
	sum := sha256.Sum256(body)
	if string(sumLine) != "# sum "+hex.EncodeToString(sum[:]) {
		return bad("checksum mismatch (corrupt)")
	}
	d := &derived{vmlinuz: vmlinuz, sources: map[string]stamp{}, modules: map[string][]entry{}}
	var order []string
	for len(body) > 0 && body[0] == '#' {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte("\n"))
		s := string(line)
		switch {
		case s == "# all":
			d.all = true
		case strings.HasPrefix(s, "# source "):
			f := strings.SplitN(strings.TrimPrefix(s, "# source "), " ", 4)
			if len(f) != 4 {
				return bad("bad source line")
			}
			size, e1 := strconv.ParseInt(f[0], 10, 64)
			mtime, e2 := strconv.ParseInt(f[1], 10, 64)
			ino, e3 := strconv.ParseUint(f[2], 10, 64)
			if e := errors.Join(e1, e2, e3); e != nil {
				return bad("bad source line")
			}
			p := r.Path(f[3])
			want := stamp{size: size, mtime: mtime, ino: ino}
			if now, err := stampOf(r, p); err != nil || now != want {
				return bad(p + " changed since the cache was written (stale)")
			}
			d.sources[p] = want
			order = append(order, p)
		default:
			return bad("unknown header line")
		}
	}
	if len(order) == 0 || order[0] != vmlinuz {
		return bad("made from another kernel image")
	}
	if d.all {
		for _, f := range t.files {
			if _, ok := d.sources[f]; !ok {
				return bad(f + " is not in the cache (stale)")
			}
		}
	}
	byColumn := map[string]string{}
	for _, p := range order[1:] {
		d.modules[p] = nil
		byColumn[t.column(p)] = p
	}
	tab, err := symvers.ParseBytes(path, bytes.Clone(body))
	if err != nil {
		return nil, err
	}
	for name, e := range tab.Exports {
		en := entry{name: name, namespace: e.Namespace, crc: e.CRC, gpl: e.GPLOnly, module: e.Module}
		if e.Module == "vmlinux" {
			d.vmlinux = append(d.vmlinux, en)
			continue
		}
		p, ok := byColumn[e.Module]
		if !ok {
			return bad("export of " + name + " from a module not among the sources")
		}
		d.modules[p] = append(d.modules[p], en)
	}
	return d, nil
}

// writeCache replaces the cache with d.
func writeCache(r *rootfs.Root, path string, d *derived) error {
	var hdr, body bytes.Buffer
	rel := func(p string) string {
		rp, _ := r.Rel(p)
		return rp
	}
	src := func(p string) {
		s := d.sources[p]
		fmt.Fprintf(&hdr, "# source %d %d %d %s\n", s.size, s.mtime, s.ino, rel(p))
	}
	src(d.vmlinuz)
	for _, p := range sortedKeys(d.modules) {
		src(p)
	}
	if d.all {
		hdr.WriteString("# all\n")
	}
	if err := writeEntries(&body, d.entries()); err != nil {
		return err
	}
	rest := append(hdr.Bytes(), body.Bytes()...)
	sum := sha256.Sum256(rest)
	if err := r.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return r.WriteAtomic(path, 0o644, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\n# sum %s\n%s", cacheMagic, hex.EncodeToString(sum[:]), rest)
		return err
	})
}
