package testkit

import (
	"os/exec"
	"slices"
	"strings"
)

// MustRunOK runs cmd in the chroot and fails the test with its output unless it exits with one
// of codes (a command whose "no" is exit 1 is not an error there).
func (c *Chroot) MustRunOK(cmd string, codes ...int) string {
	c.tb.Helper()
	out, code := c.Run(cmd)
	if !slices.Contains(codes, code) {
		c.tb.Fatalf("chroot# %s: exit %d, want one of %v\n%s", cmd, code, codes, strings.TrimSpace(out))
	}
	return out
}

// GoTool is the go command the tests build with: the one on PATH (make and .ci/run put
// /usr/local/go/bin there), else Go's default install location.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
