package metrics_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/internal/testkit/sample"
	"github.com/kabiguard/kabiguard/metrics"
)

// promtool runs the real `promtool check metrics` on data; it must accept it silently.
func promtool(t *testing.T, data []byte) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		if testing.Short() {
			t.Skip("-short: promtool (Debian package prometheus) not installed")
		}
		t.Fatalf("promtool (Debian package prometheus) not installed: %v", err)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, data)
	}
}

func render(t *testing.T, root string) (string, metrics.Snapshot) {
	t.Helper()
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	s, err := metrics.Collect(metrics.Options{Root: root, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := metrics.Render(&out, s); err != nil {
		t.Fatal(err)
	}
	promtool(t, out.Bytes())
	return out.String(), s
}

// value is the sample of series (name and labels as written) in text; the test fails if there
// is none.
func value(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no series %s in:\n%s", series, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// danglingOnDisk counts, by reading the file system, the links in kernel's weak-updates/ that
// lead nowhere.
func danglingOnDisk(t *testing.T, root, kernel string) int {
	n := 0
	filepath.WalkDir(filepath.Join(root, "lib", "modules", kernel, "weak-updates"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink != 0 {
			if _, serr := os.Stat(p); serr != nil {
				n++
			}
		}
		return nil
	})
	return n
}

// The sandbox root before anything is linked, then broken (a dangling link, a stale image):
// promtool accepts the metrics of both, and they say what the tree on disk says.
func TestSampleRootMetrics(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	text, s := render(t, root)
	// Nothing linked: kabidemo (required, early) is pending for 53 and 54, and no kernel has
	// an image, so no kernel is ready; the newest, 54, is the boot kernel without a symlink.
	if v := value(t, text, `kabiguard_module_state{kernel="`+sample.K53+`",module="kabidemo",state="pending"}`); v != 1 {
		t.Errorf("53 kabidemo pending = %v", v)
	}
	if v := value(t, text, `kabiguard_boot_kernel_ready{kernel="`+sample.K54+`",source="newest"}`); v != 0 {
		t.Errorf("boot kernel ready = %v", v)
	}
	for _, k := range s.Report.Kernels {
		if v := value(t, text, `kabiguard_dangling_links{kernel="`+k+`"}`); v != 0 {
			t.Errorf("%s: %v dangling links before any link exists", k, v)
		}
	}

	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Run(hooks.Options{Root: root, Config: cfg, NoInitramfs: true}); err != nil {
		t.Fatal(err)
	}
	sample.Image(t, root, sample.K53, filepath.Join(root, "boot", "initramfs-"+sample.K53+".img"))
	img53 := "/boot/initramfs-" + sample.K53 + ".img" // labels name paths in the root
	text, _ = render(t, root)
	if v := value(t, text, `kabiguard_image_state{image="`+img53+`",kernel="`+sample.K53+`",state="current"}`); v != 1 {
		t.Errorf("53's fresh image current = %v", v)
	}
	if v := value(t, text, `kabiguard_kernel_ready{kernel="`+sample.K53+`"}`); v != 1 {
		t.Errorf("53 (kabidemo weak, in its image) ready = %v", v)
	}

	// Break it: kabiuser's build goes from 50 and a link run drops the links to it without
	// refreshing images, so 53's image holds a copy the tree no longer has; a link in 54's
	// weak-updates/ leads nowhere (a build removed by hand).
	if err := os.RemoveAll(filepath.Join(root, "lib", "modules", sample.K50, "extra", "kabiuser")); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Run(hooks.Options{Root: root, Config: cfg, NoInitramfs: true}); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(root, "lib", "modules", sample.K54, "weak-updates", "gone", "gone.ko.xz")
	if err := os.MkdirAll(filepath.Dir(gone), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/modules/"+sample.K50+"/extra/gone/gone.ko.xz", gone); err != nil {
		t.Fatal(err)
	}
	// The admin points the boot symlink at 53, as Debian's linux-update-symlinks does.
	if err := os.Symlink("boot/vmlinuz-"+sample.K53, filepath.Join(root, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	text, s = render(t, root)
	total := 0
	for _, k := range s.Report.Kernels {
		want := danglingOnDisk(t, root, k)
		total += want
		if v := value(t, text, `kabiguard_dangling_links{kernel="`+k+`"}`); v != float64(want) {
			t.Errorf("%s: dangling_links %v, %d on disk", k, v, want)
		}
	}
	if total == 0 {
		t.Fatal("the broken root has no dangling link: the test's premise failed")
	}
	if v := value(t, text, `kabiguard_image_stale{image="`+img53+`",kernel="`+sample.K53+`"}`); v != 1 {
		t.Errorf("53's image stale = %v:\n%s", v, text)
	}
	if v := value(t, text, `kabiguard_image_state{image="`+img53+`",kernel="`+sample.K53+`",state="current"}`); v != 0 {
		t.Errorf("53's stale image also current = %v", v)
	}
	// A stale copy of a module that is not early does not stop 53 booting (the gate's rule).
	if v := value(t, text, `kabiguard_boot_kernel_ready{kernel="`+sample.K53+`",source="vmlinuz-symlink"}`); v != 1 {
		t.Errorf("boot kernel 53 ready = %v", v)
	}
}

// The default boot kernel: a BLS entry GRUB saves as default wins over the /vmlinuz symlink,
// which wins over the newest kernel; a choice naming no installed kernel is passed over.
func TestDefaultBoot(t *testing.T) {
	root := t.TempDir()
	kernels := []string{"6.1.0-9-amd64", "6.1.0-10-amd64", "6.12.1-amd64"}
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(kernel, source string) {
		t.Helper()
		if got := metrics.DefaultBoot(root, kernels); got != (metrics.Boot{Kernel: kernel, Source: source}) {
			t.Errorf("got %+v, want %s by %s", got, kernel, source)
		}
	}
	check("6.12.1-amd64", "newest")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("vmlinuz-6.1.0-404-amd64", filepath.Join(root, "boot", "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	check("6.12.1-amd64", "newest")
	if err := os.Symlink("boot/vmlinuz-6.1.0-10-amd64", filepath.Join(root, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	check("6.1.0-10-amd64", "vmlinuz-symlink")
	write("boot/grub2/grubenv", "# GRUB Environment Block\nsaved_entry=0123abcd-6.1.0-9-amd64\nboot_success=0\n#######\n")
	check("6.1.0-10-amd64", "vmlinuz-symlink") // no such entry yet
	write("boot/loader/entries/0123abcd-6.1.0-9-amd64.conf", "title Debian\nversion 6.1.0-9-amd64\nlinux /vmlinuz-6.1.0-9-amd64\n")
	check("6.1.0-9-amd64", "grub-saved-entry")
}

// Link runs keep the file current once it exists (or metrics_dir says where), recording
// their outcome as the last run; `kabiguard metrics` (Update without a run) carries it over.
func TestLinkRunsRefreshTheFile(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if p := metrics.Target(root, cfg); p != "" {
		t.Fatalf("target %s before the file exists", p)
	}
	dir := filepath.Join(root, metrics.DefaultDir)
	path := filepath.Join(dir, metrics.FileName)
	if err := metrics.Update(metrics.Options{Root: root, Config: cfg, Path: path}); err == nil {
		t.Fatal("written into a directory that does not exist")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Update(metrics.Options{Root: root, Config: cfg, Path: path}); err != nil {
		t.Fatal(err)
	}
	if p := metrics.Target(root, cfg); p != path {
		t.Fatalf("target %q once the file exists, want %s", p, path)
	}
	before := time.Now().Unix()
	if _, err := hooks.Run(hooks.Options{Root: root, Config: cfg, NoInitramfs: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	promtool(t, data)
	end := value(t, text, "kabiguard_last_run_timestamp_seconds")
	if end < float64(before) || end > float64(time.Now().Unix()) || value(t, text, "kabiguard_last_run_success") != 1 {
		t.Fatalf("last run not recorded (%v, started %d):\n%s", end, before, text)
	}
	if value(t, text, `kabiguard_module_state{kernel="`+sample.K53+`",module="kabidemo",state="weak"}`) != 1 {
		t.Errorf("the file does not show the links the run made:\n%s", text)
	}
	if err := metrics.Update(metrics.Options{Root: root, Config: cfg, Path: path}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if v := value(t, string(data), "kabiguard_last_run_timestamp_seconds"); v != end || value(t, string(data), "kabiguard_last_run_success") != 1 {
		t.Errorf("the last run was not carried over: %v, want %v", v, end)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*")); len(leftovers) != 1 {
		t.Errorf("the directory holds %v, want only %s", leftovers, metrics.FileName)
	}
	// A kernel's removal (hook remove runs while its files may still be there) is not reported.
	if _, err := hooks.Run(hooks.Options{Root: root, Config: cfg, NoInitramfs: true, Removing: []string{sample.K54}}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if _, err := os.Stat(filepath.Join(root, "lib", "modules", sample.K54, "modules.dep")); err != nil || strings.Contains(string(data), sample.K54) {
		t.Errorf("the kernel being removed (its tree still there: %v) is in the metrics:\n%s", err, data)
	}
	value(t, string(data), `kabiguard_kernel_ready{kernel="`+sample.K53+`"}`) // the others still are
	// metrics_dir = off: runs leave the file alone.
	cfg.MetricsDir = metrics.Off
	if p := metrics.Target(root, cfg); p != "" {
		t.Errorf("target %q with metrics_dir = off", p)
	}
}
