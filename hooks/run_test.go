package hooks

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// sample is the embedded sample's root (testkit.SampleDemoRoot) and its configuration.
func sample(t *testing.T) (string, *config.Config) {
	root := testkit.SampleDemoRoot(t)
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, cfg
}

// Run on the embedded sample (real depmod; no images under boot/): the kernel being installed
// keeps the image debt its new links made, for a later run to settle once its image exists;
// every other changed kernel without an image owes nothing once the run is over.
func TestRunKeepsTheInstalledKernelsDebt(t *testing.T) {
	root, cfg := sample(t)
	var logged, progress []string
	res, err := Run(Options{Root: root, Config: cfg, Installing: []string{testkit.SampleK53},
		Log: func(s string) { logged = append(logged, s) }, Progress: func(s string) { progress = append(progress, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sync == nil || !slices.Contains(res.Sync.Changed, testkit.SampleK53) || !slices.Contains(res.Sync.Changed, testkit.SampleK54) {
		t.Fatalf("changed kernels: %+v; want 6.1.0-53 and 6.1.0-54 among them", res.Sync)
	}
	if len(logged) == 0 {
		t.Error("no link change was logged")
	}
	owed, err := weakupdates.ImagesOwed(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(owed, []string{testkit.SampleK53}) {
		t.Errorf("images owed after the run: %v; want only the kernel being installed, %s", owed, testkit.SampleK53)
	}

	// The next run, with no kernel being installed, finds 6.1.0-53 without an image: its debt goes.
	var upToDate []string
	if _, err := Run(Options{Root: root, Config: cfg, SayUpToDate: true, Log: func(s string) { upToDate = append(upToDate, s) }}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(upToDate, []string{"weak-updates links are up to date"}) {
		t.Errorf("second run said %q; want only that the links are up to date", upToDate)
	}
	if owed, _ := weakupdates.ImagesOwed(root); len(owed) != 0 {
		t.Errorf("images owed after the second run: %v; want none", owed)
	}
}

// With NoInitramfs the images stay owed; Deferred hears only of kernels with an image (none
// here), and no image work is said.
func TestRunNoInitramfsDefers(t *testing.T) {
	root, cfg := sample(t)
	var deferred, progress []string
	_, err := Run(Options{Root: root, Config: cfg, NoInitramfs: true,
		Deferred: func(ks []string) { deferred = append(deferred, ks...) },
		Progress: func(s string) { progress = append(progress, s) }})
	if err != nil {
		t.Fatal(err)
	}
	owed, _ := weakupdates.ImagesOwed(root)
	if !slices.Contains(owed, testkit.SampleK53) || !slices.Contains(owed, testkit.SampleK54) {
		t.Errorf("images owed: %v; want 6.1.0-53 and 6.1.0-54", owed)
	}
	if len(deferred)+len(progress) != 0 {
		t.Errorf("deferred %v, progress %v; want neither (no kernel has an image)", deferred, progress)
	}
}

func TestReportLosses(t *testing.T) {
	losses := []weakupdates.Loss{{Kernel: "6.1.0-53-amd64", Module: "kabidemo"}}
	for _, tc := range []struct {
		dryRun, mark bool
		want         string
	}{
		{false, true, "x: ERROR: "},
		{true, true, "x: ERROR (dry run: would happen): "},
		{true, false, "x: ERROR: "},
	} {
		var b strings.Builder
		reportLosses(Options{Losses: &b, Prefix: "x: ", DryRun: tc.dryRun, MarkDryRun: tc.mark}, losses)
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], tc.want) || !strings.HasPrefix(lines[1], "x:   before 6.1.0-53-amd64 boots: build or install kabidemo") {
			t.Errorf("dry run %v, mark %v: %q", tc.dryRun, tc.mark, b.String())
		}
	}
}

func TestOnlyImageFailures(t *testing.T) {
	img := ImageError{errors.New("image")}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{img, true},
		{errors.Join(nil, img), true},
		{errors.Join(errors.New("link"), img), false},
		{errors.New("link"), false},
	} {
		if got := OnlyImageFailures(tc.err); got != tc.want {
			t.Errorf("OnlyImageFailures(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
