package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// needTool finds a program a test needs from a Debian package (.ci/run installs it): missing,
// the test fails, except in the fast tier where it is skipped.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			t.Skipf("-short: %s (Debian package %s) not installed", name, pkg)
		}
		t.Fatalf("%s (Debian package %s) not installed: %v", name, pkg, err)
	}
	return p
}

// samples reads the samples of a text exposition, "name{labels}" -> value, of the series
// whose name starts with prefix.
func samples(t *testing.T, text, prefix string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsThroughNodeExporter: `kabiguard metrics` writes the textfile on a sandbox root,
// `kabiguard link` refreshes it (last run recorded), the real `promtool check metrics`
// accepts it, and the real prometheus-node-exporter, reading that directory with its textfile
// collector, serves every one of kabiguard's samples on /metrics with the file's value and
// no scrape error.
func TestMetricsThroughNodeExporter(t *testing.T) {
	testkit.Slow(t, "builds kabiguard and starts node_exporter")
	exporter := needTool(t, "prometheus-node-exporter", "prometheus-node-exporter")
	promtool := needTool(t, "promtool", "prometheus")
	kg := testkit.BuildBinary(t, "kabiguard")
	root := testkit.SampleDemoRoot(t)
	dir := filepath.Join(root, "var", "lib", "prometheus", "node-exporter")
	file := filepath.Join(dir, "kabiguard.prom")
	kabiguard := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kg, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kabiguard %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command(kg, "metrics", "--root", root).CombinedOutput(); err == nil || !strings.Contains(string(out), dir) {
		t.Fatalf("metrics into a directory that does not exist: %v\n%s", err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kabiguard("metrics", "--root", root)
	before := time.Now().Unix()
	kabiguard("link", "--root", root, "--no-initramfs")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics %s: %v\n%s", file, err, out)
	}
	want := samples(t, string(data), "kabiguard_")
	if end := want["kabiguard_last_run_timestamp_seconds"]; end < float64(before) || want["kabiguard_last_run_success"] != 1 {
		t.Fatalf("the link run is not recorded in %s (last run %v, link started %d):\n%s", file, end, before, data)
	}
	// --stdout prints what the file holds (the last run carried over from it).
	if printed := samples(t, kabiguard("metrics", "--root", root, "--stdout"), "kabiguard_"); !maps.Equal(printed, want) {
		t.Errorf("metrics --stdout differs from %s:\n%v\n%v", file, printed, want)
	}
	if n := len(want); n < 50 {
		t.Fatalf("only %d kabiguard samples in %s:\n%s", n, file, data)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm()&0o004 == 0 {
		t.Fatalf("%s is not readable by node_exporter's user: %v", file, err)
	}

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	exp := exec.CommandContext(ctx, exporter, "--collector.disable-defaults", "--collector.textfile",
		"--collector.textfile.directory="+dir, "--web.listen-address="+addr)
	var log bytes.Buffer
	exp.Stdout, exp.Stderr = &log, &log
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); exp.Wait() })
	text := scrape(t, "http://"+addr+"/metrics", &log)
	got := samples(t, text, "kabiguard_")
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("/metrics: %s = %v (present %v), the file says %v", series, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("/metrics has %d kabiguard samples, the file %d", len(got), len(want))
	}
	errs := samples(t, text, "node_textfile_scrape_error")
	if v, ok := errs["node_textfile_scrape_error"]; !ok || v != 0 {
		t.Errorf("node_textfile_scrape_error = %v (present %v)\n%s", v, ok, log.String())
	}
	if !strings.Contains(text, "kabiguard.prom") {
		t.Errorf("/metrics has no node_textfile_mtime_seconds for kabiguard.prom")
	}
}

// freeAddr is a localhost address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape GETs url until the exporter answers (10 s at most).
func scrape(t *testing.T, url string, log *bytes.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v\n%s", url, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetricsUnits: the shipped systemd service and timer pass the real `systemd-analyze
// verify` (with the binary at the path make install fills in); make install enables neither
// (TestMakeInstallUninstall lists every file it makes: no .wants link).
func TestMetricsUnits(t *testing.T) {
	testkit.Slow(t, "builds kabiguard")
	analyze := needTool(t, "systemd-analyze", "systemd")
	kg := testkit.BuildBinary(t, "kabiguard")
	units := t.TempDir()
	for _, u := range []string{"kabiguard-metrics.service", "kabiguard-metrics.timer"} {
		data, err := os.ReadFile(filepath.Join(repoDir(), "systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "@SBINDIR@", filepath.Dir(kg))
		if err := os.WriteFile(filepath.Join(units, u), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", "--man=no",
		filepath.Join(units, "kabiguard-metrics.timer"), filepath.Join(units, "kabiguard-metrics.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The same check catches a wrong ExecStart: it is not a check that passes anything.
	svc := filepath.Join(units, "kabiguard-metrics.service")
	data, _ := os.ReadFile(svc)
	os.WriteFile(svc, bytes.ReplaceAll(data, []byte(kg), []byte(kg+".missing")), 0o644)
	if out, err := exec.Command(analyze, "verify", "--man=no", svc).CombinedOutput(); err == nil {
		t.Errorf("systemd-analyze verify accepts a service whose binary is missing:\n%s", out)
	}
}
