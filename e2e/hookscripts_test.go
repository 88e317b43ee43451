package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// hookScript runs one of the project's kernel hook scripts as its host runs it, with
// KABIGUARD naming a stand-in that records each call's arguments (one per line, then "--end"),
// from a directory of decoy files for an unquoted pattern to expand to. It returns the calls,
// the script's stderr and exit status.
func hookScript(t *testing.T, script string, env []string, args ...string) (calls [][]string, stderr string, code int) {
	t.Helper()
	dir := t.TempDir()
	for _, decoy := range []string{"decoy-a", "6.1.0-test-decoy", "-h"} {
		os.WriteFile(filepath.Join(dir, decoy), nil, 0o644)
	}
	log := filepath.Join(dir, "calls")
	stub := filepath.Join(t.TempDir(), "kabiguard-stub")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" --end >>'"+log+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(repoDir(), script), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KABIGUARD="+stub, "KERNEL_INSTALL_VERBOSE=", "DEB_MAINT_PARAMS=")
	cmd.Env = append(cmd.Env, env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	data, _ := os.ReadFile(log)
	var call []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "--end" {
			calls = append(calls, call)
			call = nil
		} else if line != "" {
			call = append(call, line)
		}
	}
	return calls, errb.String(), code
}

// TestHookScriptsRelease: every hook script hands kabiguard the release after "--" or as
// --kernel=RELEASE, so a release is never parsed as a flag ("45-kabiguard.install add --help"
// and postrm with "-h" exited 0 having done nothing: kabiguard printed its help). A release
// that starts with '-' or is a path is refused by the script, exit 2, naming it, and kabiguard
// is not run. Arguments keep their words: nothing expands against the working directory.
func TestHookScriptsRelease(t *testing.T) {
	const rel = "6.1.0-test*"
	initrdDir := t.TempDir()
	os.WriteFile(filepath.Join(initrdDir, "initrd.img-"+rel), nil, 0o644)
	deb := []string{"DEB_MAINT_PARAMS=configure 6.1.0-test *"}
	good := []struct {
		script string
		env    []string
		args   []string
		want   [][]string
	}{
		{"install.d/45-kabiguard.install", nil, []string{"add", rel, "/efi/x", "/boot/vmlinuz"}, [][]string{{"hook", "add", "--", rel}}},
		{"install.d/45-kabiguard.install", []string{"KERNEL_INSTALL_VERBOSE=1"}, []string{"remove", rel, "/efi/x"}, [][]string{{"hook", "remove", "--verbose", "--", rel}}},
		{"install.d/45-kabiguard.install", nil, []string{"inspect", "-h"}, nil},
		{"install.d/86-kabiguard-gate.install", nil, []string{"add", rel, "/efi/x", "/boot/vmlinuz", "/boot/initrd *", "-odd"}, [][]string{{"gate", "--kernel=" + rel, "--initrd=/boot/initrd *", "--initrd=-odd"}}},
		{"kernel/postinst.d/dkms-kabiguard", deb, []string{rel, "/boot/vmlinuz-" + rel}, [][]string{{"hook", "add", "--verbose", "--", rel}, {"gate", "--verbose", "--kernel=" + rel, "--no-initrd"}}},
		{"kernel/postinst.d/zx-kabiguard-initrd", deb, []string{rel, filepath.Join(initrdDir, "vmlinuz-"+rel)}, [][]string{{"gate", "--verbose", "--kernel=" + rel, "--initrd=" + filepath.Join(initrdDir, "initrd.img-"+rel)}}},
		{"kernel/postrm.d/dkms-kabiguard", []string{"DEB_MAINT_PARAMS=remove *"}, []string{rel, "/boot/vmlinuz-" + rel}, [][]string{{"hook", "remove", "--verbose", "--", rel}}},
	}
	for _, c := range good {
		calls, stderr, code := hookScript(t, c.script, c.env, c.args...)
		if code != 0 || !equalCalls(calls, c.want) {
			t.Errorf("%s %q: exit %d, calls %q, want %q\n%s", c.script, c.args, code, calls, c.want, stderr)
		}
	}

	for _, bad := range []string{"-h", "--help", "--version", "-", "../x", "a/b", ".."} {
		for _, c := range []struct {
			script string
			env    []string
			args   []string
		}{
			{"install.d/45-kabiguard.install", nil, []string{"add", bad, "/efi/x", "/boot/vmlinuz"}},
			{"install.d/45-kabiguard.install", nil, []string{"remove", bad}},
			{"install.d/86-kabiguard-gate.install", nil, []string{"add", bad, "/efi/x", "/boot/vmlinuz"}},
			{"kernel/postinst.d/dkms-kabiguard", deb, []string{bad, "/boot/vmlinuz"}},
			{"kernel/postinst.d/zx-kabiguard-initrd", deb, []string{bad, "/boot/vmlinuz"}},
			{"kernel/postrm.d/dkms-kabiguard", nil, []string{bad, "/boot/vmlinuz"}},
		} {
			calls, stderr, code := hookScript(t, c.script, c.env, c.args...)
			if code != 2 || len(calls) != 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "refusing kernel release '"+bad+"'") {
				t.Errorf("%s %q: exit %d, calls %q, stderr %q; want exit 2, no call, one line naming it", c.script, c.args, code, calls, stderr)
			}
		}
	}
}

// TestHookScriptsRealCLI: the real kabiguard takes the release after "--" as the release (with
// "-h" before it, it printed its help and exited 0): through 45-kabiguard.install on an empty
// root, a release is acted on, and the help never shows.
func TestHookScriptsRealCLI(t *testing.T) {
	bin := testkit.BuildBinary(t, "kabiguard")
	root := t.TempDir()
	for _, d := range []string{"lib/modules/6.1.0-test", "etc", "boot"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// The stand-in puts --root and --dry-run after "hook VERB", before the script's own flags.
	wrap := filepath.Join(t.TempDir(), "kabiguard")
	os.WriteFile(wrap, []byte("#!/bin/sh\nv=$1 w=$2\nshift 2\nexec '"+bin+"' \"$v\" \"$w\" --root '"+root+"' --dry-run \"$@\"\n"), 0o755)
	cmd := exec.Command(filepath.Join(repoDir(), "install.d", "45-kabiguard.install"), "add", "6.1.0-test", "/efi/x", "/boot/vmlinuz")
	cmd.Env = append(os.Environ(), "KABIGUARD="+wrap, "KERNEL_INSTALL_VERBOSE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "Usage:") || !strings.Contains(string(out), "weak-updates") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func equalCalls(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false
		}
	}
	return true
}
