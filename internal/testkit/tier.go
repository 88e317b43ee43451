package testkit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// init puts /usr/sbin and /sbin on PATH when they are missing, as they are for a normal user on
// Debian: the tests run depmod and modprobe from there, and so do the commands they start.
func init() {
	path := filepath.SplitList(os.Getenv("PATH"))
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if !slices.Contains(path, d) {
			path = append(path, d)
		}
	}
	os.Setenv("PATH", strings.Join(path, string(filepath.ListSeparator)))
}

// The test tiers: `go test -short ./...` is the fast tier (no root, no download, under a
// minute); `make test` and CI run everything, where a test whose prerequisite is missing
// fails rather than skips, so a skip never counts as a pass there.

// Slow skips tb in the fast tier (-short): the test needs a download, a long build or a tool
// run that takes minutes; why says which. Outside -short it does nothing.
func Slow(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: " + why)
	}
}

// NeedsRoot marks a test that needs root (mount namespaces, chroot, files owned by root; why
// says which): skipped in the fast tier, and outside it failed with the reason unless the test
// runs as root.
func NeedsRoot(tb testing.TB, why string) {
	tb.Helper()
	Slow(tb, "needs root: "+why)
	if os.Geteuid() != 0 {
		tb.Fatalf("needs root (%s): run the full tests as root (make test, .ci/run), or 'go test -short ./...' for the tier that does not", why)
	}
}
