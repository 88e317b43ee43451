package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
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

// Review findings: hook remove touched the host through a kernel directory that is an
// absolute symlink; a FIFO where lib/modules should be hung every command; a kernel whose
// depmod marker cannot be written got link changes no later run would know to index.
func TestHookRemoveStaysInsideTheRoot(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "K")
	must(t, os.MkdirAll(filepath.Join(victim, "weak-updates"), 0o755))
	must(t, os.WriteFile(filepath.Join(victim, ".kabiguard-depmod-pending"), nil, 0o644))
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "lib", "modules"), 0o755))
	must(t, os.Symlink(victim, filepath.Join(root, "lib", "modules", "K")))
	var out, errOut bytes.Buffer
	run([]string{"hook", "remove", "--root", root, "--", "K"}, &out, &errOut)
	for _, p := range []string{"weak-updates", ".kabiguard-depmod-pending"} {
		if _, err := os.Lstat(filepath.Join(victim, p)); err != nil {
			t.Errorf("hook remove deleted %s outside the root: %v\n%s%s", p, err, out.String(), errOut.String())
		}
	}
}

func TestFIFOAsModuleDirectoryNoHang(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "lib"), 0o755))
	testkit.Mkfifo(t, filepath.Join(root, "lib", "modules"))
	for _, args := range [][]string{{"status"}, {"link", "--dry-run"}, {"link"}} {
		code := testkit.WithDeadline(t, 30*time.Second, strings.Join(args, " "), func() int {
			var out, errOut bytes.Buffer
			return run(append(args, "--root", root), &out, &errOut)
		})
		if code == 0 {
			t.Errorf("%v with a FIFO as lib/modules: exit 0", args)
		}
	}
}

func TestUnwritableDepmodMarkerRefusesTheKernel(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	must(t, os.MkdirAll(filepath.Join(root, "lib", "modules", testkit.SampleK53, ".kabiguard-depmod-pending"), 0o755))
	var out, errOut bytes.Buffer
	code := run([]string{"link", "--root", root, "--no-initramfs"}, &out, &errOut)
	if code == 0 {
		t.Errorf("link exit 0 although 53's depmod marker cannot be written\n%s%s", out.String(), errOut.String())
	}
	if ents, err := os.ReadDir(filepath.Join(root, "lib", "modules", testkit.SampleK53, "weak-updates")); err == nil && len(ents) > 0 {
		t.Errorf("53 got links although its depmod marker could not be written: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "lib", "modules", testkit.SampleK54, "weak-updates")); len(ents) == 0 {
		t.Errorf("54 got no links: one kernel's marker must not stop the others\n%s%s", out.String(), errOut.String())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestGateDepmodAdviceNamesTheRoot: a kernel under --root that depmod never indexed is refused
// with the depmod that indexes it there (-b ROOT), as initramfs verify advises, not the host's.
func TestGateDepmodAdviceNamesTheRoot(t *testing.T) {
	root := testkit.SampleDemoRoot(t) // no depmod has run: no modules.dep
	var out, errOut bytes.Buffer
	code := run([]string{"gate", "--root", root, "-k", testkit.SampleK50, "--no-initrd"}, &out, &errOut)
	want := "cannot read " + kmod.ModulesDir(root, testkit.SampleK50) + "/modules.dep (missing): run 'depmod -b " + root + " -a " + testkit.SampleK50 + "'"
	if code != exitProblem || !strings.Contains(out.String()+errOut.String(), want) {
		t.Errorf("gate: exit %d, want %d and %q in\n%s%s", code, exitProblem, want, out.String(), errOut.String())
	}
}
