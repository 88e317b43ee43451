package kabi

import (
	"strings"
	"unicode"
)

// CompareReleases orders kernel releases the way `sort -V` and rpmvercmp agree on for kernel
// names: digit runs compare numerically, other runs as strings, so 6.1.0-9 < 6.1.0-10 and
// 6.1.0-54-amd64 < 6.12.107+deb12-amd64.
func CompareReleases(a, b string) int {
	for a != "" || b != "" {
		ra, restA := nextRun(a)
		rb, restB := nextRun(b)
		if c := compareRun(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return 0
}

func nextRun(s string) (string, string) {
	if s == "" {
		return "", ""
	}
	digit := unicode.IsDigit(rune(s[0]))
	i := 1
	for i < len(s) && unicode.IsDigit(rune(s[i])) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRun(a, b string) int {
	da := a != "" && unicode.IsDigit(rune(a[0]))
	db := b != "" && unicode.IsDigit(rune(b[0]))
	switch {
	case da && db:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case da != db:
		// A number sorts after a separator or word: 6.1.0-54 < 6.1.0-54.1 is decided
		// elsewhere; here "10" > "-rc".
		if da {
			return 1
		}
		return -1
	}
	return strings.Compare(a, b)
}

// Series is the major.minor of a release ("6.1" of "6.1.0-54-amd64").
func Series(release string) string {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return release
	}
	minor := parts[1]
	for i, r := range minor {
		if !unicode.IsDigit(r) {
			minor = minor[:i]
			break
		}
	}
	return parts[0] + "." + minor
}

// Flavour is the build variant a release names: Debian's trailing words ("amd64",
// "cloud-amd64", "rt-amd64"), RHEL's architecture and variant ("x86_64", "x86_64+debug").
// Builds are shared only between kernels of one series and flavour unless configured
// otherwise: a debug or RT kernel is never a target for a module built for the generic one.
func Flavour(release string) string {
	parts := strings.Split(release, "-")
	for i, p := range parts {
		if i > 0 && p != "" && unicode.IsLetter(rune(p[0])) {
			return strings.Join(parts[i:], "-")
		}
	}
	if i := strings.LastIndex(release, "."); i >= 0 {
		return release[i+1:]
	}
	return ""
}
