package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// forecast --manifest <(manifest --root R) PKG says what forecast --root R PKG says, on a real
// kernel package and a host of real modules: a required DKMS module (v4l2loopback), a pair of
// modules where one uses the other's exports (kabipair), 20 in-tree drivers of the host
// kernel installed as external builds, and a directory left by a kmod package for an older
// kernel (its builds offered, no kernel; kabiuser, required, does not load into 6.1.0-56). Reports are compared as JSON after the root's prefix
// is removed from the host's paths; the exit codes are equal; the text names the host.
func TestManifestForecastCLI(t *testing.T) {
	host := testkit.FetchKernel(t, "6.1.0-55")
	old := testkit.FetchKernel(t, "6.1.0-54")
	deb := testkit.ImageDeb(t, "6.1.0-56")
	root := testkit.NewRoot(t, host)
	testkit.Install(t, root, host.Release, "updates/dkms/v4l2loopback.ko", testkit.V4L2Loopback(t, host))
	for name, p := range testkit.BuildModules(t, old, filepath.Join(testkit.RepoDir(), "testdata", "src", "kabipair")) {
		testkit.Install(t, root, old.Release, "extra/"+name+".ko", p)
	}
	n := 0
	filepath.WalkDir(filepath.Join(host.ModulesDir(), "kernel", "drivers", "net", "ethernet", "intel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") || n == 20 {
			return err
		}
		testkit.Install(t, root, host.Release, "extra/"+filepath.Base(p), p)
		n++
		return nil
	})
	testkit.Depmod(t, root, host.Release)
	must(t, os.MkdirAll(filepath.Join(root, "etc/kabiguard/required.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc/kabiguard/required.d/t.conf"), []byte("v4l2loopback\ne1000e\nkabiuser\n"), 0o644))

	var man, errs bytes.Buffer
	if code := run([]string{"manifest", "--root", root, "--host", "node7"}, &man, &errs); code != 0 {
		t.Fatalf("manifest: exit %d: %s", code, errs.String())
	}
	file := filepath.Join(t.TempDir(), "node7.json")
	must(t, os.WriteFile(file, man.Bytes(), 0o644))

	var onHost, central bytes.Buffer
	hostCode := run([]string{"forecast", "--json", "--root", root, deb}, &onHost, &errs)
	centralCode := run([]string{"forecast", "--json", "--manifest", file, deb}, &central, &errs)
	var fleet []struct {
		Host, Manifest string
		Reports        json.RawMessage
	}
	if err := json.Unmarshal(central.Bytes(), &fleet); err != nil || len(fleet) != 1 {
		t.Fatalf("--manifest --json: %v\n%s", err, central.String())
	}
	if fleet[0].Host != "node7" || fleet[0].Manifest != file || hostCode != centralCode {
		t.Errorf("host %q from %q, exit %d; on the host exit %d", fleet[0].Host, fleet[0].Manifest, centralCode, hostCode)
	}
	want := compactJSON(t, strings.ReplaceAll(onHost.String(), root+"/", "/"))
	if got := compactJSON(t, string(fleet[0].Reports)); got != want {
		t.Errorf("the forecast over the manifest differs from the host's:\nmanifest: %s\nhost:     %s", got, want)
	}
	var reports []struct {
		Gate    string
		Modules []struct{ Module, State string }
	}
	must(t, json.Unmarshal(onHost.Bytes(), &reports))
	states := map[string]int{}
	for _, m := range reports[0].Modules {
		states[m.State]++
	}
	t.Logf("%d modules %v, gate %s, exit %d", len(reports[0].Modules), states, reports[0].Gate, hostCode)

	var text bytes.Buffer
	run([]string{"forecast", "--manifest", filepath.Dir(file), deb}, &text, &errs)
	if !strings.Contains(text.String(), "node7") || !strings.Contains(text.String(), "of 1 hosts would lose a required module") {
		t.Errorf("the fleet table:\n%s", text.String())
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	must(t, json.Compact(&b, []byte(s)))
	return b.String()
}

// The fleet commands on the sample, fast: manifest prints one compact JSON document;
// forecast --manifest exits 0 for a kernel every host takes and 1 for one a host would lose
// a module with, naming the host; --root with --manifest, and a file that is no manifest,
// are errors (exit 2) that say why.
func TestManifestCLISample(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	var man, errs bytes.Buffer
	if code := run([]string{"manifest", "--root", root, "--host", "node1"}, &man, &errs); code != 0 || strings.Count(man.String(), "\n") != 1 {
		t.Fatalf("manifest: exit %d, %d lines: %s", code, strings.Count(man.String(), "\n"), errs.String())
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "node1.json")
	must(t, os.WriteFile(file, man.Bytes(), 0o644))
	pkg := func(release string) string {
		p := filepath.Join(t.TempDir(), "lib/modules", release)
		must(t, os.MkdirAll(p, 0o755))
		src := filepath.Join(testkit.RepoDir(), "testdata/sample/kernels", release, "symvers.xz")
		data, err := os.ReadFile(src)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(p, "symvers.xz"), data, 0o644))
		return filepath.Dir(filepath.Dir(filepath.Dir(p)))
	}
	for release, wantCode := range map[string]int{testkit.SampleK53: 0, testkit.SampleK54: 1} {
		var out bytes.Buffer
		code := run([]string{"forecast", "--manifest", dir, pkg(release)}, &out, &errs)
		if code != wantCode || !strings.Contains(out.String(), "node1") || !strings.Contains(out.String(), fmt.Sprintf("%d of 1 hosts would lose", wantCode)) {
			t.Errorf("%s: exit %d, want %d:\n%s", release, code, wantCode, out.String())
		}
	}
	errs.Reset()
	if code := run([]string{"forecast", "--root", root, "--manifest", file, pkg(testkit.SampleK53)}, &man, &errs); code != 2 || !strings.Contains(errs.String(), "exclude each other") {
		t.Errorf("--root with --manifest: exit %d: %s", code, errs.String())
	}
	bad := filepath.Join(dir, "bad.json")
	must(t, os.WriteFile(bad, []byte(`{"format": 9}`), 0o644))
	errs.Reset()
	if code := run([]string{"forecast", "--manifest", bad, pkg(testkit.SampleK53)}, &man, &errs); code != 2 || !strings.Contains(errs.String(), bad+": not a kabiguard manifest of format 1 (its format is 9)") {
		t.Errorf("a manifest of another format: exit %d: %s", code, errs.String())
	}
}
