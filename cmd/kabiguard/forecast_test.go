package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// kabiguard forecast on a real kernel package: the text names the kernel, where its exports
// came from and each module's fate; --json says the same; the exit status follows the gate;
// a file that is no package is one line and exit 2.
func TestForecastCLI(t *testing.T) {
	host := testkit.FetchKernel(t, "6.1.0-55")
	deb := testkit.ImageDeb(t, "6.1.0-56")
	root := testkit.NewRoot(t, host)
	testkit.Install(t, root, host.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, host))
	testkit.Depmod(t, root, host.Release)
	must(t, os.MkdirAll(filepath.Join(root, "etc/kabiguard/required.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/kabiguard/required.d/t.conf"), []byte("v4l2loopback\n"), 0o644))

	var out, errs bytes.Buffer
	code := run([]string{"forecast", "--root", root, deb}, &out, &errs)
	text := out.String()
	var js bytes.Buffer
	jcode := run([]string{"forecast", "--json", "--root", root, deb}, &js, &errs)
	var reports []struct {
		Kernel, Gate, Exports string
		Modules               []struct{ Module, State, From string }
	}
	if err := json.Unmarshal(js.Bytes(), &reports); err != nil || len(reports) != 1 || len(reports[0].Modules) != 1 {
		t.Fatalf("--json: %v\n%s", err, js.String())
	}
	r := reports[0]
	m := r.Modules[0]
	if code != jcode || (code == 0) != (r.Gate == "pass") {
		t.Errorf("exit %d (json %d) with gate %q", code, jcode, r.Gate)
	}
	for _, want := range []string{"linux-image-6.1.0-56-amd64-unsigned", "kernel 6.1.0-56-amd64: exports derived from vmlinuz-6.1.0-56-amd64",
		"v4l2loopback*", m.State, "gate: 6.1.0-56-amd64"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	if m.State == "weak" && !strings.Contains(text, "<- "+m.From) {
		t.Errorf("a weak module without its source kernel:\n%s", text)
	}
	if !strings.Contains(errs.String(), "reading "+deb) {
		t.Errorf("no progress line on stderr: %q", errs.String())
	}

	notPkg := filepath.Join(t.TempDir(), "notes.deb")
	must(t, os.WriteFile(notPkg, []byte("hello\n"), 0o644))
	errs.Reset()
	if code := run([]string{"forecast", "--root", root, notPkg}, &out, &errs); code != 2 {
		t.Errorf("a file that is no package: exit %d", code)
	}
	if lines := strings.Split(strings.TrimSpace(errs.String()), "\n"); !strings.Contains(lines[len(lines)-1], notPkg+": not a readable package") {
		t.Errorf("the error does not name the file and the cause: %q", errs.String())
	}
}
