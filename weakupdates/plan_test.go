package weakupdates

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// Roots built from the embedded sample (testdata/sample, as scripts/demo.sh builds its root):
// three Debian 6.1 kernels' symvers and one in-tree module each, and kabidemo, kabiprov and
// kabiuser (which uses two of kabiprov's exports) built for 6.1.0-50 and 6.1.0-54. kabidemo-50
// loads into 50 and 53, not 54 (misc_register changed CRC); kabiprov and kabiuser into all.
// Nothing here needs root, a download or depmod: Sync runs with Depmod "true".

const (
	k49 = "6.1.0-49-amd64" // never installed: a directory with only extra/ offers its builds
	k50 = "6.1.0-50-amd64"
	k51 = "6.1.0-51-amd64" // likewise
	k53 = "6.1.0-53-amd64"
	k54 = "6.1.0-54-amd64"
	k55 = "6.1.0-55-amd64" // installed (kernel/), but no symvers
)

var sampleDir = filepath.Join("..", "testdata", "sample")

// demoBuilds are the kmod packages of the demo: the three modules in 6.1.0-50's extra/.
var demoBuilds = map[string]string{
	k50 + "/extra/kabidemo/kabidemo.ko.xz": k50 + "/kabidemo",
	k50 + "/extra/kabiprov/kabiprov.ko.xz": k50 + "/kabiprov",
	k50 + "/extra/kabiuser/kabiuser.ko.xz": k50 + "/kabiuser",
}

// rootSpec describes a sandbox root.
type rootSpec struct {
	kernels []string          // sample kernels installed (symvers, kernel/)
	builds  map[string]string // path below lib/modules -> sample module "RELEASE/NAME"
	linked  bool              // run Sync once before the extras below are added (links exist)
	files   map[string]string // root-relative path -> content (a file in the way, a corrupt build)
	symlink map[string]string // root-relative path -> target, as an admin would make it
	copies  map[string]string // root-relative path -> sample module "RELEASE/NAME"
}

func with(base map[string]string, more ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(more); i += 2 {
		out[more[i]] = more[i+1]
	}
	return out
}

func sampleModule(t *testing.T, ref string) []byte {
	t.Helper()
	rel, name, _ := strings.Cut(ref, "/")
	data, err := os.ReadFile(filepath.Join(sampleDir, "modules", rel, name+".ko.xz"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the sample kernel release into root's lib/modules.
func copyKernel(t *testing.T, root, release string) {
	t.Helper()
	src := filepath.Join(sampleDir, "kernels", release)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(root, "lib", "modules", release, rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newRoot(t *testing.T, s rootSpec) string {
	t.Helper()
	root := t.TempDir()
	for _, k := range s.kernels {
		if k == k55 {
			copyKernel(t, root, k54)
			if err := os.Rename(filepath.Join(root, "lib/modules", k54), filepath.Join(root, "lib/modules", k55)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(root, "lib/modules", k55, "symvers.xz"))
			continue
		}
		copyKernel(t, root, k)
	}
	for p, ref := range s.builds {
		writeFile(t, filepath.Join(root, "lib", "modules", p), sampleModule(t, ref))
	}
	if s.linked {
		mustSync(t, root) // as `kabiguard link` left the tree before the changes below
	}
	for p, ref := range s.copies {
		writeFile(t, filepath.Join(root, p), sampleModule(t, ref))
	}
	for p, content := range s.files {
		writeFile(t, filepath.Join(root, p), []byte(content))
	}
	for p, target := range s.symlink {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mustSync(t *testing.T, root string) *Result {
	t.Helper()
	res, err := Sync(config.Default(), SyncOptions{Root: root, Depmod: "true"})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// truncated is the first bytes of a sample build: an xz stream that ends too early.
func truncated(t *testing.T, ref string) string {
	return string(sampleModule(t, ref)[:700])
}

// TestPlanJudgesWithChosenProviders: every module of every kernel gets the state and reason
// that the modules the kernel really has (its own, and the builds chosen for it) imply.
// want maps "RELEASE/module" to "state[ from]", reason to a substring of status's reason.
func TestPlanJudgesWithChosenProviders(t *testing.T) {
	cases := []struct {
		name   string
		spec   rootSpec
		want   map[string]string
		reason map[string]string
	}{{
		name: "demo",
		spec: rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds},
		want: map[string]string{
			k50 + "/kabidemo": "native", k50 + "/kabiprov": "native", k50 + "/kabiuser": "native",
			k53 + "/kabidemo": "weak " + k50, k53 + "/kabiprov": "weak " + k50, k53 + "/kabiuser": "weak " + k50,
			k54 + "/kabidemo": "incompatible", k54 + "/kabiprov": "weak " + k50, k54 + "/kabiuser": "weak " + k50,
		},
		reason: map[string]string{k54 + "/kabidemo": "misc_deregister: module wants CRC 0x6a45ac49, kernel has 0x693017d1"},
	}, {
		// Finding 2: the provider copied unchanged into a newer directory is chosen there; the
		// user is judged with it (same exports, same CRCs) and stays linked.
		name: "provider copied into a newer directory",
		spec: rootSpec{kernels: []string{k50, k53, k54}, builds: with(demoBuilds, k51+"/extra/kabiprov.ko.xz", k50+"/kabiprov")},
		want: map[string]string{
			k53 + "/kabiprov": "weak " + k51, k53 + "/kabiuser": "weak " + k50,
			k54 + "/kabiprov": "weak " + k51, k54 + "/kabiuser": "weak " + k50,
		},
	}, {
		name: "user without any provider",
		spec: rootSpec{kernels: []string{k50, k53}, builds: map[string]string{k50 + "/extra/kabiuser/kabiuser.ko.xz": k50 + "/kabiuser"}},
		want: map[string]string{k53 + "/kabiuser": "incompatible"},
		reason: map[string]string{
			k53 + "/kabiuser": "kabiprov_ns_value: not exported by the kernel",
		},
	}, {
		// The provider is the kernel's own build (another kmod, built for it); the user comes
		// from another directory. Both ways.
		name: "provider native, user weak",
		spec: rootSpec{kernels: []string{k50, k54}, builds: map[string]string{
			k50 + "/extra/kabiuser/kabiuser.ko.xz": k50 + "/kabiuser",
			k54 + "/extra/kabiprov/kabiprov.ko.xz": k54 + "/kabiprov",
		}},
		want: map[string]string{
			k54 + "/kabiprov": "native", k54 + "/kabiuser": "weak " + k50,
			k50 + "/kabiuser": "native", k50 + "/kabiprov": "weak " + k54,
		},
	}, {
		// Finding 6: a regular file holds the provider's link path. The provider cannot be
		// linked, so neither can its user; the file is named, and neither is "pending".
		name: "provider's link path blocked",
		spec: rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds,
			files: map[string]string{"lib/modules/" + k53 + "/weak-updates/kabiprov/kabiprov.ko.xz": "not a module\n"}},
		want: map[string]string{
			k53 + "/kabiprov": "blocked", k53 + "/kabiuser": "incompatible", k53 + "/kabidemo": "weak " + k50,
			k54 + "/kabiprov": "weak " + k50, k54 + "/kabiuser": "weak " + k50,
		},
		reason: map[string]string{
			k53 + "/kabiprov": "weak-updates/kabiprov/kabiprov.ko.xz is taken by ",
			k53 + "/kabiuser": "kabiprov_ns_value: exported by kabiprov, which this kernel does not get (its build cannot be linked: its link weak-updates/kabiprov/kabiprov.ko.xz is taken by",
		},
	}, {
		name: "blocked provider served by another directory's build",
		spec: rootSpec{kernels: []string{k50, k53}, builds: with(demoBuilds, k49+"/extra/kabiprov.ko.xz", k50+"/kabiprov"),
			files: map[string]string{"lib/modules/" + k53 + "/weak-updates/kabiprov/kabiprov.ko.xz": "not a module\n"}},
		want: map[string]string{k53 + "/kabiprov": "weak " + k49, k53 + "/kabiuser": "weak " + k50},
	}, {
		// A provider the kernel would load is linked whatever its users do.
		name: "user's link path blocked, provider linked",
		spec: rootSpec{kernels: []string{k50, k53}, builds: demoBuilds,
			files: map[string]string{"lib/modules/" + k53 + "/weak-updates/kabiuser": "a file where the directory goes\n"}},
		want:   map[string]string{k53 + "/kabiprov": "weak " + k50, k53 + "/kabiuser": "blocked"},
		reason: map[string]string{k53 + "/kabiuser": "not created by kabiguard, left alone"},
	}, {
		// Finding 11: a truncated build is unreadable in its own kernel and everywhere else.
		name: "truncated build",
		spec: rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds, linked: true,
			files: map[string]string{"lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz": truncated(t, k50+"/kabidemo")}},
		want: map[string]string{
			k50 + "/kabidemo": "unreadable", k53 + "/kabidemo": "unreadable", k54 + "/kabidemo": "unreadable",
			k53 + "/kabiuser": "weak " + k50,
		},
		reason: map[string]string{
			k50 + "/kabidemo": "own build " + "ROOT/lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz cannot be read: corrupt xz data",
			k53 + "/kabidemo": "build from " + k50 + ": ROOT/lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz cannot be read: corrupt xz data",
		},
	}, {
		// Finding 10: an admin's own link is the admin's: shown, not managed, and the module
		// behind it serves the weak builds that use it.
		name: "admin's link",
		spec: rootSpec{kernels: []string{k50, k53}, builds: map[string]string{k50 + "/extra/kabiuser/kabiuser.ko.xz": k50 + "/kabiuser"},
			copies:  map[string]string{"opt/kabiprov.ko.xz": k54 + "/kabiprov"},
			symlink: map[string]string{"lib/modules/" + k53 + "/weak-updates/admin/kabiprov.ko.xz": "/opt/kabiprov.ko.xz"}},
		want:   map[string]string{k53 + "/kabiprov": "admin", k53 + "/kabiuser": "weak " + k50},
		reason: map[string]string{k53 + "/kabiprov": "admin's link to /opt/kabiprov.ko.xz, not managed by kabiguard"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := newRoot(t, c.spec)
			if _, err := Sync(config.Default(), SyncOptions{Root: root, Depmod: "true"}); err != nil && !OnlyIncomplete(err) {
				t.Fatal(err) // an unreadable build is reported, the rest is done
			}
			res, err := Preview(config.Default(), root, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 0 {
				t.Errorf("a second run would still change %v", res.Changes)
			}
			rows, errs := Status(res, config.Default())
			if len(errs) != 0 {
				t.Fatalf("status errors: %v", errs)
			}
			got := map[string]Row{}
			for _, r := range rows {
				got[r.Kernel+"/"+r.Module] = r
			}
			for key, want := range c.want {
				r, ok := got[key]
				have := r.State.String()
				if r.From != "" {
					have += " " + r.From
				}
				if !ok || have != want {
					t.Errorf("%s: %q (%s), want %q", key, have, r.Reason, want)
				}
			}
			for key, want := range c.reason {
				if reason := strings.ReplaceAll(got[key].Reason, root, "ROOT"); !strings.Contains(reason, want) {
					t.Errorf("%s: reason %q does not say %q", key, reason, want)
				}
			}
			checkLinksLoad(t, res)
		})
	}
}

// checkLinksLoad asserts what `kabiguard check` would: every weak build chosen for a kernel
// loads into it together with the kernel's own builds and the other chosen ones.
func checkLinksLoad(t *testing.T, res *Result) {
	t.Helper()
	for _, kp := range res.Plan.Kernels {
		if kp.Kernel == nil {
			continue
		}
		var mods, with []*module.Module
		for _, d := range kp.Decisions {
			switch {
			case d.State == Weak:
				mods = append(mods, d.Build.Module)
			case d.State == Native:
				with = append(with, d.Build.Module)
			case d.State == Admin && kp.Admin[d.Module].Module != nil:
				with = append(with, kp.Admin[d.Module].Module)
			}
		}
		for _, v := range kabi.Check(kp.Kernel, mods, with) {
			if !v.Compatible {
				t.Errorf("%s: %s is linked but does not load: %v", kp.Release, v.Module, v.Problems)
			}
		}
	}
}

// TestDiffKeepsWorkingLinks is finding 2 as reported: after kabiprov's 6.1.0-50 build is
// copied unchanged into 6.1.0-51-amd64/extra/, link must not remove kabiuser's links on 53
// and 54 (check says both builds load there); only kabiprov's link moves to the newer build.
func TestDiffKeepsWorkingLinks(t *testing.T) {
	root := newRoot(t, rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds, linked: true,
		copies: map[string]string{"lib/modules/" + k51 + "/extra/kabiprov.ko.xz": k50 + "/kabiprov"}})
	res, err := Preview(config.Default(), root, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range res.Changes {
		if strings.Contains(ch.Link, "kabiuser") || strings.Contains(ch.Link, "kabidemo") {
			t.Errorf("%s: %s %s (%s): a working link is touched", ch.Kernel, ch.Op, ch.Link, ch.Why)
		}
		if ch.Op == Remove && !strings.Contains(ch.Why.String(), "replaced by the build from "+k51) {
			t.Errorf("%s: remove %s says %q, want the true reason (replaced by 51's build)", ch.Kernel, ch.Link, ch.Why)
		}
	}
	if len(res.Changes) != 4 {
		t.Errorf("want kabiprov's link moved in 53 and 54 (4 changes), got %v", res.Changes)
	}
}

// TestManaged: which links kabiguard re-points and removes (its own, and those RHEL's
// weak-modules made) and which are the admin's.
func TestManaged(t *testing.T) {
	root := "/r"
	wu := "/r/lib/modules/" + k53 + "/weak-updates/"
	cases := []struct {
		sub, target string
		want        bool
	}{
		{"kabiprov/kabiprov.ko.xz", "../../../" + k50 + "/extra/kabiprov/kabiprov.ko.xz", true},     // kabiguard's
		{"kabiprov/kabiprov.ko.xz", "/lib/modules/" + k50 + "/extra/kabiprov/kabiprov.ko.xz", true}, // RHEL's weak-modules
		{"kabiprov.ko.xz", "../../" + k51 + "/updates/kabiprov.ko.xz", true},
		{"kabiprov.ko.xz", "/usr/lib/modules/" + k51 + "/extra/kabiprov.ko.xz", true},
		{"admin/kabiprov.ko.xz", "/opt/kabiprov.ko.xz", false},                                   // elsewhere
		{"admin/kabiprov.ko.xz", "../../../" + k50 + "/extra/kabiprov/kabiprov.ko.xz", false},    // another path below weak-updates
		{"crc-itu-t.ko.xz", "../../" + k50 + "/kernel/lib/crc-itu-t.ko.xz", false},               // in-tree: not a build
		{"kabiprov.ko.xz", "../../" + k50 + "/weak-updates/kabiprov.ko.xz", false},               // another kernel's link
		{"kabiprov.ko.xz", "../../../../opt/x/" + k50 + "/extra/kabiprov.ko.xz", false},          // outside lib/modules
		{"kabiprov/kabiprov.ko.xz", "../../../" + k50 + "/extra/kabiuser/kabiprov.ko.xz", false}, // another sub
	}
	for _, c := range cases {
		l := linkAt(wu, c.sub, c.target)
		if got := Managed(root, l); got != c.want {
			t.Errorf("weak-updates/%s -> %s: managed %v, want %v", c.sub, c.target, got, c.want)
		}
	}
}

// TestAdminLinkNeverRemoved is finding 10: an admin's hand-made link to a compatible module
// (in its own admin/ directory) stays, with its directory, and kabiguard's own link of the
// same module goes with the true reason, so the kernel has one kabidemo.
func TestAdminLinkNeverRemoved(t *testing.T) {
	admin := "lib/modules/" + k53 + "/weak-updates/admin/kabidemo.ko.xz"
	root := newRoot(t, rootSpec{kernels: []string{k50, k53}, builds: demoBuilds, linked: true,
		copies:  map[string]string{"opt/kabidemo.ko.xz": k50 + "/kabidemo"},
		symlink: map[string]string{admin: "/opt/kabidemo.ko.xz"}})
	res := mustSync(t, root)
	var removed []Change
	for _, ch := range res.Changes {
		if ch.Op == Remove {
			removed = append(removed, ch)
		}
	}
	if len(removed) != 1 || !strings.HasSuffix(removed[0].Link, "weak-updates/kabidemo/kabidemo.ko.xz") ||
		removed[0].Why.String() != "an admin's link weak-updates/admin/kabidemo.ko.xz provides it" {
		t.Errorf("removed %v; want only kabiguard's kabidemo link, because the admin's provides it", removed)
	}
	if target, err := os.Readlink(filepath.Join(root, admin)); err != nil || target != "/opt/kabidemo.ko.xz" {
		t.Fatalf("the admin's link is gone or changed: %q %v", target, err)
	}
	// Made incompatible-looking (the admin points at 54's build, which 53 cannot load): still
	// the admin's decision, never removed; only a dangling one goes.
	writeFile(t, filepath.Join(root, "opt/kabidemo.ko.xz"), sampleModule(t, k54+"/kabidemo"))
	if res := mustSync(t, root); len(res.Changes) != 0 {
		t.Errorf("changes %v to an admin's link", res.Changes)
	}
	os.Remove(filepath.Join(root, "opt/kabidemo.ko.xz"))
	res = mustSync(t, root)
	if len(res.Changes) != 2 || res.Changes[0].Why.String() != "dangling" && res.Changes[1].Why.String() != "dangling" {
		t.Errorf("a dangling admin link: changes %v, want it removed and kabiguard's link back", res.Changes)
	}
}

// TestSyncReportsWhatItCannotPlan is finding 7: a kernel without symvers, or with a garbage
// line in it, and an unreadable build make Sync fail naming the kernel or file and the cause,
// after the other kernels' links are made.
func TestSyncReportsWhatItCannotPlan(t *testing.T) {
	garbage := func(t *testing.T, root string) {
		p := filepath.Join(root, "lib/modules", k54, "symvers.xz")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, "lib/modules", k54, "symvers"), []byte("0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\nnot a symvers line\n"))
	}
	cases := []struct {
		name   string
		spec   rootSpec
		modify func(*testing.T, string)
		only   []string
		want   string
	}{
		{name: "no symvers", spec: rootSpec{kernels: []string{k50, k53, k55}, builds: demoBuilds},
			want: "kernel " + k55 + ": its links cannot be planned: no symvers for kernel " + k55},
		{name: "garbage symvers line", spec: rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds}, modify: garbage,
			want: "kernel " + k54 + ": its links cannot be planned: ROOT/lib/modules/" + k54 + "/symvers:2:"},
		{name: "garbage symvers line, that kernel only", spec: rootSpec{kernels: []string{k50, k53, k54}, builds: demoBuilds}, modify: garbage,
			only: []string{k54}, want: "kernel " + k54 + ": its links cannot be planned"},
		{name: "not an installed kernel", spec: rootSpec{kernels: []string{k50, k53}, builds: demoBuilds},
			only: []string{k54}, want: "kernel " + k54 + ": no such kernel"},
		{name: "unreadable build", spec: rootSpec{kernels: []string{k50, k53}, builds: demoBuilds,
			files: map[string]string{"lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz": truncated(t, k50+"/kabidemo")}},
			want: "ROOT/lib/modules/" + k50 + "/extra/kabidemo/kabidemo.ko.xz: cannot be read, so it is linked nowhere and " + k50 + " cannot load it: corrupt xz data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := newRoot(t, c.spec)
			if c.modify != nil {
				c.modify(t, root)
			}
			res, err := Sync(config.Default(), SyncOptions{Root: root, Only: c.only, Depmod: "true"})
			if !errors.Is(err, ErrIncomplete) || !OnlyIncomplete(err) {
				t.Fatalf("err %v, want an IncompleteError", err)
			}
			if msg := strings.ReplaceAll(err.Error(), root, "ROOT"); !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not say %q", msg, c.want)
			}
			if c.only == nil {
				// The other kernels' links are made all the same.
				if _, err := os.Lstat(filepath.Join(root, "lib/modules", k53, "weak-updates/kabiprov/kabiprov.ko.xz")); err != nil {
					t.Errorf("%s got no link: %v (changes %v)", k53, err, res.Changes)
				}
			}
		})
	}
}

func linkAt(weakDir, sub, target string) *inventory.Link {
	return &inventory.Link{Path: weakDir + sub, Sub: sub, Target: target}
}

// TestStatusPathsOnMergedUsr: on a merged-/usr root (lib -> usr/lib, Debian 12) every status row
// names its file as the tree does, under lib/modules, weak rows included (they named the
// resolved /usr/lib/modules path, so scripts comparing paths saw two spellings of one file).
func TestStatusPathsOnMergedUsr(t *testing.T) {
	root := testkit.SampleDemoRoot(t)
	must(t, os.MkdirAll(filepath.Join(root, "usr"), 0o755))
	must(t, os.Rename(filepath.Join(root, "lib"), filepath.Join(root, "usr", "lib")))
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	mustSync(t, root)
	cfg, err := config.Load(root)
	must(t, err)
	res, err := Preview(cfg, root, nil, nil)
	must(t, err)
	rows, _ := Status(res, cfg)
	weak := 0
	for _, r := range rows {
		if r.Path != "" && !strings.HasPrefix(r.Path, filepath.Join(root, "lib", "modules")+"/") {
			t.Errorf("%s %s %s: path %s is not under %s/lib/modules", r.Kernel, r.Module, r.State, r.Path, root)
		}
		if r.State == Weak {
			weak++
		}
	}
	if weak == 0 {
		t.Fatalf("no weak row to check: %+v", rows)
	}
}
