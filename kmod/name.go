package kmod

import (
	"path"
	"strings"

	"github.com/kabiguard/kabiguard/internal/compression"
)

// suffixes are the names of module files kmod loads, and the compression each says the
// file is in.
var suffixes = [...]struct {
	ext    string
	format compression.Format
}{
	{".ko", compression.None},
	{".ko.xz", compression.XZ},
	{".ko.zst", compression.Zstd},
	{".ko.gz", compression.Gzip},
}

// suffix returns the module suffix file's base name ends in, after at least one character.
func suffix(file string) (string, compression.Format, bool) {
	base := path.Base(file)
	for _, s := range suffixes {
		if len(base) > len(s.ext) && strings.HasSuffix(base, s.ext) {
			return s.ext, s.format, true
		}
	}
	return "", "", false
}

// ModuleName returns kmod's name of the module file file, as modprobe and depmod derive it
// (kmod's modname_normalize): its base name up to the first '.', so without the module
// suffix (.ko, .ko.xz, .ko.zst, .ko.gz), and with every '-' turned into '_'. It names any
// path; IsModule tells whether file is named as a module file at all.
func ModuleName(file string) string {
	base := path.Base(file)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	return Normalize(base)
}

// Normalize returns a module name as kmod compares it: '-' and '_' are the same character.
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// IsModule reports whether file is named as a module file: a name before one of the module
// suffixes.
func IsModule(file string) bool {
	_, _, ok := suffix(file)
	return ok
}

// Compression returns the compression the module file file is in by its name (depmod and
// modprobe pick the decompressor by it), or "" when file is not named as a module file.
func Compression(file string) compression.Format {
	_, f, _ := suffix(file)
	return f
}
