package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// TestUsageErrorsPointAtTheSubcommand: a usage error names the --help that explains it.
func TestUsageErrorsPointAtTheSubcommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		help string
	}{
		{[]string{"check", "--bogus", "x.ko"}, "'kabiguard check --help'"},
		{[]string{"initramfs", "verify"}, "'kabiguard initramfs verify --help'"},
		{[]string{"frobnicate"}, "'kabiguard --help'"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), tc.help) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 pointing at %s", tc.args, code, errOut.String(), tc.help)
		}
	}
}

// TestCheckDefaultsToTheRunningKernel: without -k or --symvers, check looks for the running
// kernel (uname -r) as modprobe would; under another --root it asks which kernel instead.
func TestCheckDefaultsToTheRunningKernel(t *testing.T) {
	rel, err := runningRelease()
	if err != nil {
		t.Fatal(err)
	}
	mod := "../../testdata/sample/modules/6.1.0-50-amd64/kabidemo.ko.xz"
	root := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"check", "--root", root, mod}, &out, &errOut)
	if code != exitError || !strings.Contains(errOut.String(), "say which kernel of "+root) {
		t.Errorf("check under --root without -k: exit %d, %q", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code = run([]string{"check", mod}, &out, &errOut)
	// This machine may or may not have the running kernel's tree; either way it was asked for.
	if !strings.Contains(out.String()+errOut.String(), rel) {
		t.Errorf("check without -k did not use the running kernel %s: exit %d\n%s%s", rel, code, out.String(), errOut.String())
	}
}

// TestGateOfAMissingKernelIsAnError: the gate asked about a kernel that is not installed
// reports a mistake (exit 2, naming it), not a refusal with advice to rebuild modules for it.
func TestGateOfAMissingKernelIsAnError(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	for _, k := range []string{"6.1.0-99-amd64", "../6.1.0-50-amd64"} {
		var out, errOut bytes.Buffer
		code := run([]string{"gate", "--root", root, "-k", k}, &out, &errOut)
		if code != exitError || strings.Contains(errOut.String(), "refusing") || !strings.Contains(errOut.String(), k) {
			t.Errorf("gate -k %s: exit %d\n%s%s", k, code, out.String(), errOut.String())
		}
	}
}
