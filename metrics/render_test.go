package metrics

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/status"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// A label value holding the format's special characters, and bytes that are not UTF-8, is
// escaped as the exposition format says (and the real promtool accepts it).
func TestRenderEscapes(t *testing.T) {
	odd := "a\\b\"c\nd\xff"
	rep := &status.Report{Kernels: []string{odd}, Rows: []weakupdates.Row{{Kernel: odd, Module: "m", State: weakupdates.Native}}}
	var out bytes.Buffer
	if err := Render(&out, Snapshot{Report: rep}); err != nil {
		t.Fatal(err)
	}
	want := `kabiguard_kernel_ready{kernel="a\\b\"c\nd` + "\uFFFD" + `"} 1` + "\n"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("no %q in:\n%s", want, out.String())
	}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "kabiguard_") && !strings.HasPrefix(line, "# HELP kabiguard_") && !strings.HasPrefix(line, "# TYPE kabiguard_") {
			t.Errorf("line that is neither a sample nor HELP/TYPE: %q", line)
		}
	}
	checkMetrics(t, out.Bytes())
}

// A healthy report still has every series: one sample per state of each row and image, and
// exactly one of them 1; every kernel's readiness and dangling count, the boot kernel's, and
// the last run (0 when none is recorded).
func TestRenderZeroSamples(t *testing.T) {
	rep := &status.Report{
		Kernels: []string{"k1", "k2"},
		Rows: []weakupdates.Row{
			{Kernel: "k1", Module: "drbd", Required: true, State: weakupdates.Native},
			{Kernel: "k2", Module: "drbd", Required: true, State: weakupdates.Weak},
		},
		Images: []status.Image{{Kernel: "k1", Image: "/boot/initrd.img-k1", State: status.ImageCurrent}, {Kernel: "k2", State: status.ImageNone}},
	}
	var out bytes.Buffer
	if err := Render(&out, Snapshot{Report: rep, Boot: Boot{"k2", "newest"}}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	states := 0
	for st := weakupdates.Native; st <= weakupdates.Undecided; st++ {
		states++
		for _, r := range rep.Rows {
			want := 0
			if r.State == st {
				want = 1
			}
			line := `kabiguard_module_state{kernel="` + r.Kernel + `",module="drbd",state="` + st.String() + `"} `
			if !strings.Contains(text, line+string(rune('0'+want))+"\n") {
				t.Errorf("no %s%d", line, want)
			}
		}
	}
	if n := strings.Count(text, "kabiguard_module_state{"); n != states*len(rep.Rows) || states != 12 {
		t.Errorf("%d module_state samples for %d states and %d rows", n, states, len(rep.Rows))
	}
	for _, st := range status.ImageStates {
		if !strings.Contains(text, `kabiguard_image_state{image="",kernel="k2",state="`+st+`"} `) {
			t.Errorf("no image_state sample for state %s", st)
		}
	}
	for _, want := range []string{
		`kabiguard_kernel_ready{kernel="k1"} 1`, `kabiguard_kernel_ready{kernel="k2"} 1`,
		`kabiguard_boot_kernel_ready{kernel="k2",source="newest"} 1`,
		`kabiguard_dangling_links{kernel="k1"} 0`, `kabiguard_dangling_links{kernel="k2"} 0`,
		`kabiguard_image_stale{image="/boot/initrd.img-k1",kernel="k1"} 0`,
		`kabiguard_module_required{kernel="k1",module="drbd"} 1`,
		"kabiguard_status_ok 1", "kabiguard_last_run_timestamp_seconds 0", "kabiguard_last_run_success 0",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	checkMetrics(t, out.Bytes())
}

// A required module that is not native or weak makes its kernel not ready, and status not OK.
func TestRenderNotReady(t *testing.T) {
	rep := &status.Report{Kernels: []string{"k1"}, Rows: []weakupdates.Row{{Kernel: "k1", Module: "drbd", Required: true, State: weakupdates.Missing}}}
	end := time.Unix(1764556000, 0)
	var out bytes.Buffer
	if err := Render(&out, Snapshot{Report: rep, Boot: Boot{"k1", "vmlinuz-symlink"}, LastRun: LastRun{End: end, OK: true}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`kabiguard_kernel_ready{kernel="k1"} 0`, `kabiguard_boot_kernel_ready{kernel="k1",source="vmlinuz-symlink"} 0`,
		`kabiguard_module_state{kernel="k1",module="drbd",state="missing"} 1`, "kabiguard_status_ok 0",
		"kabiguard_last_run_timestamp_seconds 1764556000", "kabiguard_last_run_success 1"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}

// checkMetrics runs the real `promtool check metrics` (Debian's prometheus package) on data:
// it must accept it without a complaint.
func checkMetrics(t *testing.T, data []byte) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if testing.Short() {
			t.Skip("-short: promtool (Debian package prometheus) not installed")
		}
		t.Fatalf("promtool (Debian package prometheus) not installed: %v", err)
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, data)
	}
}
