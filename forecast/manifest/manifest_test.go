package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/forecast/pkgfile"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// A forecast over a host's manifest gives the verdicts a forecast on the host gives, module by
// module (state, source kernel, build, reasons and problems), with the paths as the host
// sees them. The host forecast is the expectation; the cases vary what the planner reads:
// managed and admin links, a regular file where a link would go, an unreadable build,
// never_weak with a dependency on the excluded module, DKMS with headers, share_builds = any,
// on_missing_required = warn. Each case is judged for two sample kernels (one the builds load
// into, one they do not).
func TestManifestForecastEqualsHost(t *testing.T) {
	pkgs := map[string]string{}
	for _, k := range []string{testkit.SampleK53, testkit.SampleK54} {
		pkgs[k] = samplePackage(t, k)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"as the demo leaves it", func(*testing.T, string) {}},
		{"after link", link},
		{"admin link, blocked path, unreadable build, never_weak", func(t *testing.T, root string) {
			link(t, root)
			k54 := filepath.Join(root, "lib/modules", testkit.SampleK54, "weak-updates")
			must(t, os.RemoveAll(filepath.Join(k54, "kabidemo")))
			write(t, root, "opt/kabidemo.ko.xz", read(t, filepath.Join(testkit.RepoDir(), "testdata/sample/modules", testkit.SampleK54, "kabidemo.ko.xz")))
			mkdir(t, filepath.Join(k54, "kabidemo"))
			must(t, os.Symlink("/opt/kabidemo.ko.xz", filepath.Join(k54, "kabidemo", "kabidemo.ko.xz")))
			k53 := filepath.Join(root, "lib/modules", testkit.SampleK53, "weak-updates", "kabiuser")
			must(t, os.Remove(filepath.Join(k53, "kabiuser.ko.xz")))
			write(t, root, filepath.Join("lib/modules", testkit.SampleK53, "weak-updates/kabiuser/kabiuser.ko.xz"), "an admin's file\n")
			write(t, root, filepath.Join("lib/modules", testkit.SampleK50, "extra/broken/broken.ko"), "not an ELF file\n")
			write(t, root, config.MainFile, "never_weak = kabiprov\n")
			write(t, root, filepath.Join(config.RequiredDir, "more.conf"), "kabiuser\nbroken\n")
		}},
		{"DKMS with headers, share_builds any, warn", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "usr/src/linux-headers-"+testkit.SampleK54))
			write(t, root, "var/lib/dkms/kabidemo/1.0/source/dkms.conf", "PACKAGE_NAME=kabidemo\nAUTOINSTALL=yes\n")
			write(t, root, config.MainFile, "share_builds = any\non_missing_required = warn\n")
			write(t, root, "etc/hostname", "node7\n")
			must(t, os.RemoveAll(filepath.Join(root, "lib/modules", testkit.SampleK53))) // the package's kernel is new
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			tc.setup(t, root)
			m, err := Collect(root, "")
			must(t, err)
			m, err = Parse("test.json", []byte(jsonText(t, m))) // as a central machine receives it
			must(t, err)
			cfg, err := config.Load(root)
			if err != nil {
				t.Fatal(err)
			}
			for release, p := range pkgs {
				host, err := forecast.Run(p, forecast.Options{Root: root, Config: cfg})
				if err != nil {
					t.Fatal(err)
				}
				pkg, kernels := readPackage(t, p)
				central := m.Rebuild().Forecast(pkg, kernels)
				want := strings.ReplaceAll(jsonText(t, host), root+"/", "/")
				if got := jsonText(t, central); got != want {
					t.Errorf("%s: the forecast over the manifest differs from the host's:\nmanifest: %s\nhost:     %s", release, got, want)
				}
				t.Logf("%s: gate %s, lost %v", release, host[0].Gate, host[0].Lost)
			}
		})
	}
}

// The manifest names what the root holds, as the host sees it, and takes no kernel's
// exports; another format is refused.
func TestManifestContent(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	link(t, root)
	m, err := Collect(root, "node1")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Host != "node1" || m.Format != Format || len(m.Kernels) != len(inv.Trees) {
		t.Fatalf("manifest %+v for %d trees", m, len(inv.Trees))
	}
	for i, tr := range inv.Trees {
		k := m.Kernels[i]
		if k.Release != tr.Release || len(k.Builds) != len(tr.Builds) || len(k.Links) != len(tr.Links) {
			t.Errorf("%s: %d builds %d links, the tree has %d and %d", k.Release, len(k.Builds), len(k.Links), len(tr.Builds), len(tr.Links))
		}
		for j, b := range k.Builds {
			if b.Path != strings.TrimPrefix(tr.Builds[j].Path, root) || b.Module == nil || len(b.Module.Versions) != len(tr.Builds[j].Module.Versions) {
				t.Errorf("build %+v for %s", b, tr.Builds[j].Path)
			}
		}
		if !strings.Contains(k.Exports, "symvers /lib/modules/"+k.Release) {
			t.Errorf("%s: exports %q", k.Release, k.Exports)
		}
	}
	if len(m.Config.Required) != 1 || m.Config.Required[0].Source != "/etc/kabiguard/required.d/demo.conf:1" {
		t.Errorf("required %+v", m.Config.Required)
	}
	m.Root = ""
	data, _ := json.Marshal(m)
	if bytes.Contains(data, []byte(root)) {
		t.Errorf("the manifest names the sandbox root's path beyond its root field")
	}
	if _, err := Parse("old.json", []byte(`{"format": 2, "host": "x"}`)); !errors.Is(err, ErrFormat) {
		t.Errorf("format 2: %v", err)
	}
	if _, err := Parse("x.json", []byte(`[1, 2]`)); !errors.Is(err, ErrFormat) {
		t.Errorf("not a manifest: %v", err)
	}
}

// samplePackage is an unpacked kernel package of a sample kernel: its symvers file and its
// in-tree module, as a kernel-core package ships them.
func samplePackage(t *testing.T, release string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "kernel-"+release)
	src := filepath.Join(testkit.RepoDir(), "testdata/sample/kernels", release)
	for _, f := range []string{"symvers.xz", "kernel/lib/crc-itu-t.ko.xz"} {
		write(t, dir, filepath.Join("lib/modules", release, f), read(t, filepath.Join(src, f)))
	}
	return dir
}

// link makes the links `kabiguard link` makes (relative, into 6.1.0-50's extra/), in the
// other two kernels, for every build: the planner keeps, re-points or drops them.
func link(t *testing.T, root string) {
	t.Helper()
	build := filepath.Join(root, "lib/modules", testkit.SampleK50, "extra")
	for _, k := range []string{testkit.SampleK53, testkit.SampleK54} {
		kdir := filepath.Join(root, "lib/modules", k)
		for _, m := range []string{"kabidemo", "kabiprov", "kabiuser"} {
			sub := m + "/" + m + ".ko.xz"
			mkdir(t, filepath.Join(kdir, "weak-updates", m))
			must(t, os.Symlink(weakupdates.LinkTarget(kdir, sub, filepath.Join(build, sub)), filepath.Join(kdir, "weak-updates", sub)))
		}
	}
}

// readPackage reads the package at p once, as forecast --manifest does.
func readPackage(t *testing.T, p string) (*pkgfile.Package, []*forecast.Kernel) {
	t.Helper()
	pkg, err := pkgfile.Open(p)
	must(t, err)
	kernels, err := forecast.Read(pkg, nil)
	must(t, err)
	return pkg, kernels
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	return string(data)
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	mkdir(t, filepath.Dir(p))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func mkdir(t *testing.T, p string) { t.Helper(); must(t, os.MkdirAll(p, 0o755)) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Judging many manifests at once, on every core, with their identical modules decoded and
// rebuilt once, gives each host the report it gets alone; a manifest that cannot be read
// stops the run, naming the file.
func TestJudgeFleet(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, required := range []string{"kabidemo", "kabiprov", "kabiuser", "kabidemo early", "kabiprov", "kabiuser"} {
		root := testkit.SampleDemoRoot(t)
		write(t, root, filepath.Join(config.RequiredDir, "demo.conf"), required+"\n")
		m, err := Collect(root, fmt.Sprintf("node%d", i))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(dir, m.Host+".json"))
		write(t, dir, m.Host+".json", jsonText(t, m))
	}
	seen.modules = nil
	manifests, err := LoadAll(files)
	if err != nil {
		t.Fatal(err)
	}
	pkg, kernels := readPackage(t, samplePackage(t, testkit.SampleK54))
	hosts := Judge(pkg, kernels, manifests)
	keeps := 0
	for i, h := range hosts {
		alone, err := Load(files[i])
		if err != nil {
			t.Fatal(err)
		}
		want := jsonText(t, alone.Rebuild().Forecast(pkg, kernels))
		if h.Host != alone.Host || h.Manifest != files[i] || jsonText(t, h.Reports) != want {
			t.Errorf("%s in the fleet: %s\nalone: %s", h.Host, jsonText(t, h.Reports), want)
		}
		if h.Keeps() {
			keeps++
		}
	}
	if keeps == 0 || keeps == len(hosts) {
		t.Errorf("%d of %d hosts keep their modules: the fleet should mix both", keeps, len(hosts))
	}
	write(t, dir, "bad.json", `{"format": 1, "host": "x", "kernels": 7}`)
	if _, err := LoadAll(append(files, filepath.Join(dir, "bad.json"))); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("a broken manifest: %v", err)
	}
}
