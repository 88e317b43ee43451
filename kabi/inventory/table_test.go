package inventory

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// The inventory's rules as a table, over roots made of the embedded sample
// (testkit.SampleDemoRoot: kernels 50, 53 and 54 with their symvers and one in-tree module each;
// kabidemo, kabiprov and kabiuser in 50's extra/). Every expected value is derived from what
// the case puts where (and from the sample's files), never from a run of Scan.

const (
	k49 = "6.1.0-49-amd64" // no kernel: a directory with only module builds
	k50 = testkit.SampleK50
	k53 = testkit.SampleK53
	k54 = testkit.SampleK54
)

// sampleModule is the host path of the sample's build of name for release (50 or 54).
func sampleModule(release, name string) string {
	return filepath.Join(testkit.RepoDir(), "testdata", "sample", "modules", release, name+".ko.xz")
}

// modinfoName is the module name the sample build's .modinfo gives.
func modinfoName(t *testing.T, release, name string) string {
	t.Helper()
	m, err := module.Open(sampleModule(release, name))
	if err != nil {
		t.Fatal(err)
	}
	return m.Name
}

// inTreeNames are kmod's names of the in-tree modules the sample ships for release: the file
// name without its .ko[.*] suffix, '-' read as '_'.
func inTreeNames(t *testing.T, release string) []string {
	t.Helper()
	var out []string
	dir := filepath.Join(testkit.RepoDir(), "testdata", "sample", "kernels", release, "kernel")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			base, _, _ := strings.Cut(filepath.Base(p), ".ko")
			out = append(out, strings.ReplaceAll(base, "-", "_"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func put(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// installBuild copies the sample's build of name for from into root at lib/modules/release/rel.
func installBuild(t *testing.T, root, release, rel, from, name string) {
	t.Helper()
	data, err := os.ReadFile(sampleModule(from, name))
	if err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(root, "lib", "modules", release, rel), data)
}

func modDir(root, release string) string { return filepath.Join(root, "lib", "modules", release) }

// TestScanKernels: which release directories are kernels (weak-link targets) and which only
// offer builds, newest last, with their in-tree modules named.
func TestScanKernels(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(t *testing.T, root string)
		installed map[string]bool // every tree expected, in release order
	}{{
		name:      "the sample's three kernels",
		setup:     func(*testing.T, string) {},
		installed: map[string]bool{k50: true, k53: true, k54: true},
	}, {
		name: "a directory with only extra/ is no kernel",
		setup: func(t *testing.T, root string) {
			installBuild(t, root, k49, "extra/kabidemo.ko.xz", k50, "kabidemo")
		},
		installed: map[string]bool{k49: false, k50: true, k53: true, k54: true},
	}, {
		name: "modules.order alone marks a kernel",
		setup: func(t *testing.T, root string) {
			put(t, filepath.Join(modDir(root, k49), "modules.order"), nil)
		},
		installed: map[string]bool{k49: true, k50: true, k53: true, k54: true},
	}, {
		name: "boot/vmlinuz-RELEASE alone marks a kernel",
		setup: func(t *testing.T, root string) {
			put(t, filepath.Join(modDir(root, k49), "extra", "kabidemo.ko.xz"), nil)
			put(t, filepath.Join(root, "boot", "vmlinuz-"+k49), []byte("kernel image\n"))
		},
		installed: map[string]bool{k49: true, k50: true, k53: true, k54: true},
	}, {
		name: "a file in lib/modules is no release",
		setup: func(t *testing.T, root string) {
			put(t, filepath.Join(root, "lib", "modules", "README"), []byte("not a kernel\n"))
		},
		installed: map[string]bool{k50: true, k53: true, k54: true},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			c.setup(t, root)
			inv, err := scan(t, root)
			if err != nil {
				t.Fatal(err)
			}
			var want, got []string
			for r := range c.installed {
				want = append(want, r)
			}
			sort.Slice(want, func(i, j int) bool { return kabi.CompareReleases(want[i], want[j]) < 0 })
			for _, tr := range inv.Trees {
				got = append(got, tr.Release)
				if tr.Installed != c.installed[tr.Release] {
					t.Errorf("%s: installed %v, want %v", tr.Release, tr.Installed, c.installed[tr.Release])
				}
				if tr.Dir != modDir(root, tr.Release) {
					t.Errorf("%s: dir %s, want %s", tr.Release, tr.Dir, modDir(root, tr.Release))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("trees %v, want %v (release order)", got, want)
			}
			for _, k := range []string{k50, k53, k54} {
				for _, n := range inTreeNames(t, k) {
					if want := filepath.Join(modDir(root, k), "kernel"); !strings.HasPrefix(inv.Tree(k).Native[n], want+"/") {
						t.Errorf("%s: in-tree %s at %q, want it under %s", k, n, inv.Tree(k).Native[n], want)
					}
				}
			}
		})
	}
}

// TestScanBuildsSearchOrder: one build per module name and kernel, the one depmod loads with
// kabiguard's depmod.d (search updates extra built-in weak-updates): updates/ before extra/
// before any other directory, then the lexically first path. Sub is where its weak link goes.
func TestScanBuildsSearchOrder(t *testing.T) {
	type want struct{ rel, sub string } // below lib/modules/50, below its top directory
	cases := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  map[string]want // sample module -> the build kept
	}{{
		name:  "the sample: extra/",
		setup: func(*testing.T, string) {},
		want: map[string]want{
			"kabidemo": {"extra/kabidemo/kabidemo.ko.xz", "kabidemo/kabidemo.ko.xz"},
			"kabiprov": {"extra/kabiprov/kabiprov.ko.xz", "kabiprov/kabiprov.ko.xz"},
			"kabiuser": {"extra/kabiuser/kabiuser.ko.xz", "kabiuser/kabiuser.ko.xz"},
		},
	}, {
		name: "updates/ wins over extra/",
		setup: func(t *testing.T, root string) {
			installBuild(t, root, k50, "updates/dkms/kabidemo.ko.xz", k54, "kabidemo")
		},
		want: map[string]want{
			"kabidemo": {"updates/dkms/kabidemo.ko.xz", "dkms/kabidemo.ko.xz"},
			"kabiprov": {"extra/kabiprov/kabiprov.ko.xz", "kabiprov/kabiprov.ko.xz"},
		},
	}, {
		name: "extra/ wins over another directory",
		setup: func(t *testing.T, root string) {
			installBuild(t, root, k50, "misc/kabiprov.ko.xz", k54, "kabiprov")
		},
		want: map[string]want{"kabiprov": {"extra/kabiprov/kabiprov.ko.xz", "kabiprov/kabiprov.ko.xz"}},
	}, {
		name: "another directory alone is external",
		setup: func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(modDir(root, k50), "extra"), filepath.Join(modDir(root, k50), "misc")); err != nil {
				t.Fatal(err)
			}
		},
		want: map[string]want{"kabiuser": {"misc/kabiuser/kabiuser.ko.xz", "kabiuser/kabiuser.ko.xz"}},
	}, {
		name: "the lexically first path within one directory",
		setup: func(t *testing.T, root string) {
			installBuild(t, root, k50, "extra/a/kabidemo.ko.xz", k54, "kabidemo")
		},
		want: map[string]want{"kabidemo": {"extra/a/kabidemo.ko.xz", "a/kabidemo.ko.xz"}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			c.setup(t, root)
			inv, err := scan(t, root)
			if err != nil {
				t.Fatal(err)
			}
			tr := inv.Tree(k50)
			names := map[string]int{}
			for _, b := range tr.Builds {
				names[b.Name]++
				if b.Kernel != k50 {
					t.Errorf("%s: kernel %s, want %s", b.Path, b.Kernel, k50)
				}
			}
			for n, count := range names {
				if count != 1 {
					t.Errorf("%d builds of %s in one kernel, want 1", count, n)
				}
			}
			for sample, w := range c.want {
				name := modinfoName(t, k50, sample)
				b := build(inv, k50, name)
				if b == nil {
					t.Fatalf("no build of %s", name)
				}
				wantPath := filepath.Join(modDir(root, k50), w.rel)
				if b.Path != wantPath || b.Sub != w.sub || b.Err != nil || b.Module == nil {
					t.Errorf("%s: %s (sub %s, err %v), want %s (sub %s), parsed", name, b.Path, b.Sub, b.Err, wantPath, w.sub)
				}
				if tr.Native[name] != wantPath {
					t.Errorf("%s: native path %s, want the kept build %s", name, tr.Native[name], wantPath)
				}
			}
			for _, k := range []string{k53, k54} {
				if n := len(inv.Tree(k).Builds); n != 0 {
					t.Errorf("%s: %d builds, the sample gives it none", k, n)
				}
			}
		})
	}
}

// TestScanWeakLinks: every symlink in a kernel's weak-updates/ is a Link (its target as stored,
// where it resolves inside the root, whether it dangles); any other file is in Others.
func TestScanWeakLinks(t *testing.T) {
	type link struct {
		target   string
		resolved string // root-relative; "" when dangling
	}
	cases := []struct {
		name  string
		links map[string]link // below 53's weak-updates/
		files []string        // regular files below 53's weak-updates/
	}{{
		name: "relative link to 50's build",
		links: map[string]link{"kabidemo/kabidemo.ko.xz": {
			target:   "../../../" + k50 + "/extra/kabidemo/kabidemo.ko.xz",
			resolved: "lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz"}},
	}, {
		name: "absolute link means inside the root (RHEL's weak-modules)",
		links: map[string]link{"kabiprov/kabiprov.ko.xz": {
			target:   "/lib/modules/" + k50 + "/extra/kabiprov/kabiprov.ko.xz",
			resolved: "lib/modules/" + k50 + "/extra/kabiprov/kabiprov.ko.xz"}},
	}, {
		name:  "dangling link",
		links: map[string]link{"gone/gone.ko.xz": {target: "../../../" + k50 + "/extra/gone/gone.ko.xz"}},
	}, {
		name: "regular file and an admin's link side by side",
		links: map[string]link{"admin/kabiuser.ko.xz": {
			target:   "/lib/modules/" + k50 + "/extra/kabiuser/kabiuser.ko.xz",
			resolved: "lib/modules/" + k50 + "/extra/kabiuser/kabiuser.ko.xz"}},
		files: []string{"local/foo.ko"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			weak := filepath.Join(modDir(root, k53), "weak-updates")
			for sub, l := range c.links {
				symlink(t, l.target, filepath.Join(weak, sub))
			}
			for _, f := range c.files {
				put(t, filepath.Join(weak, f), []byte("not kabiguard's\n"))
			}
			inv, err := scan(t, root)
			if err != nil {
				t.Fatal(err)
			}
			tr := inv.Tree(k53)
			if len(tr.Links) != len(c.links) {
				t.Errorf("%d links, want %d", len(tr.Links), len(c.links))
			}
			for _, got := range tr.Links {
				w, ok := c.links[got.Sub]
				if !ok {
					t.Errorf("unexpected link %s", got.Sub)
					continue
				}
				if got.Path != filepath.Join(weak, got.Sub) || got.Target != w.target || got.Dangling != (w.resolved == "") || got.Escapes {
					t.Errorf("%s: %+v, want target %s, dangling %v", got.Sub, got, w.target, w.resolved == "")
				}
				if w.resolved != "" && got.Resolved != filepath.Join(root, w.resolved) {
					t.Errorf("%s: resolved %s, want %s", got.Sub, got.Resolved, filepath.Join(root, w.resolved))
				}
			}
			var wantOthers []string
			for _, f := range c.files {
				wantOthers = append(wantOthers, filepath.Join(weak, f))
			}
			if !slices.Equal(tr.Others, wantOthers) {
				t.Errorf("others %v, want %v", tr.Others, wantOthers)
			}
			if len(tr.Builds) != 0 {
				t.Errorf("links are taken for builds: %v", tr.Builds)
			}
		})
	}
}

// TestSymversSourceNamed: a kernel's symvers is the first of symvers.Candidates that exists
// (RHEL's /boot/symvers-K.xz before lib/modules/K/symvers.xz; .gz as RHEL 8+ ships it), named
// by its path and read whole; without one, the error names where it looked first.
func TestSymversSourceNamed(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, root string) // root holds 53's symvers.xz in lib/modules/53
		want  string                          // root-relative path of the symvers read; "" none
	}{{
		name:  "lib/modules/K/symvers.xz (the sample)",
		setup: func(*testing.T, string) {},
		want:  "lib/modules/" + k53 + "/symvers.xz",
	}, {
		name: "/boot/symvers-K.xz first",
		setup: func(t *testing.T, root string) {
			data, err := os.ReadFile(filepath.Join(modDir(root, k53), "symvers.xz"))
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(root, "boot", "symvers-"+k53+".xz"), data)
		},
		want: "boot/symvers-" + k53 + ".xz",
	}, {
		name: "moved to /boot",
		setup: func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(modDir(root, k53), "symvers.xz"), filepath.Join(root, "boot", "symvers-"+k53+".xz")); err != nil {
				t.Fatal(err)
			}
		},
		want: "boot/symvers-" + k53 + ".xz",
	}, {
		// RHEL 8+ kernel-core: lib/modules/K/symvers.gz, the sample's xz made gzip by the tools.
		name:  "lib/modules/K/symvers.gz",
		setup: func(t *testing.T, root string) { regzip(t, root, filepath.Join(modDir(root, k53), "symvers.gz")) },
		want:  "lib/modules/" + k53 + "/symvers.gz",
	}, {
		name:  "/boot/symvers-K.gz",
		setup: func(t *testing.T, root string) { regzip(t, root, filepath.Join(root, "boot", "symvers-"+k53+".gz")) },
		want:  "boot/symvers-" + k53 + ".gz",
	}, {
		name: "none",
		setup: func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(modDir(root, k53), "symvers.xz")); err != nil {
				t.Fatal(err)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			c.setup(t, root)
			inv, err := scan(t, root)
			if err != nil {
				t.Fatal(err)
			}
			if tr := inv.Tree(k53); tr == nil || !tr.Installed {
				t.Fatalf("53 is not an installed kernel: %+v", tr)
			}
			k, err := kabi.LoadKernel(root, k53)
			if c.want == "" {
				var nf *symvers.ErrNotFound
				if !errors.As(err, &nf) || !strings.Contains(err.Error(), symvers.Candidates(root, k53)[0]) {
					t.Fatalf("LoadKernel: %v, want %T naming %s", err, nf, symvers.Candidates(root, k53)[0])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.SymversPath(); got != filepath.Join(root, c.want) {
				t.Errorf("symvers %s, want %s", got, filepath.Join(root, c.want))
			}
			sample, err := symvers.Load(filepath.Join(testkit.RepoDir(), "testdata", "sample", "kernels", k53, "symvers.xz"))
			if err != nil {
				t.Fatal(err)
			}
			if len(sample.Exports) == 0 || len(k.Symvers.Exports) != len(sample.Exports) {
				t.Errorf("%s holds %d exports, the sample's symvers.xz %d", c.want, len(k.Symvers.Exports), len(sample.Exports))
			}
		})
	}
}

// regzip replaces 53's lib/modules/K/symvers.xz with dst, its content recompressed by the real
// xz and gzip, as RHEL ships it.
func regzip(t *testing.T, root, dst string) {
	t.Helper()
	src := filepath.Join(modDir(root, k53), "symvers.xz")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `xz -dc "$1" | gzip -9 >"$2"`, "sh", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xz -dc | gzip (xz-utils, gzip): %v %s", err, out)
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
}
