package gate

// The gate on roots built from the embedded sample (testdata/sample, as scripts/demo.sh builds
// its root): no root privileges, no download; links by kabiguard, indexes by the real depmod.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

const (
	s50 = "6.1.0-50-amd64"
	s51 = "6.1.0-51-amd64" // a directory with only extra/: offers its builds
	s53 = "6.1.0-53-amd64"
	s54 = "6.1.0-54-amd64"
)

var sample = filepath.Join("..", "testdata", "sample")

func sampleFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sample, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
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

// sampleRoot holds kernels 50, 53 and 54 and files (path below lib/modules -> content).
func sampleRoot(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for _, k := range []string{s50, s53, s54} {
		put(t, filepath.Join(root, "lib/modules", k, "symvers.xz"), sampleFile(t, "kernels/"+k+"/symvers.xz"))
		put(t, filepath.Join(root, "lib/modules", k, "kernel/lib/crc-itu-t.ko.xz"), sampleFile(t, "kernels/"+k+"/kernel/lib/crc-itu-t.ko.xz"))
	}
	for p, data := range files {
		put(t, filepath.Join(root, "lib/modules", p), data)
	}
	return root
}

// TestGateOnSampleRoots: the gate passes a required module only when the file modprobe would
// load resolves every symbol with the modules the kernel really has (finding 6), and refuses a
// build that cannot be read (finding 11), saying which file and why.
func TestGateOnSampleRoots(t *testing.T) {
	mod := func(rel, name string) []byte { return sampleFile(t, "modules/"+rel+"/"+name+".ko.xz") }
	demo := func() map[string][]byte {
		return map[string][]byte{
			s50 + "/extra/kabidemo/kabidemo.ko.xz": mod(s50, "kabidemo"),
			s50 + "/extra/kabiprov/kabiprov.ko.xz": mod(s50, "kabiprov"),
			s50 + "/extra/kabiuser/kabiuser.ko.xz": mod(s50, "kabiuser"),
		}
	}
	blocked := func(m map[string][]byte) map[string][]byte {
		m[s53+"/weak-updates/kabiprov/kabiprov.ko.xz"] = []byte("not a module\n")
		return m
	}
	cases := []struct {
		name     string
		files    map[string][]byte
		required string
		kernel   string
		ok       bool
		reason   []string
	}{
		{name: "weak user and provider", files: demo(), required: "kabiuser", kernel: s53, ok: true},
		{name: "provider copied into a newer directory (finding 2)", required: "kabiuser", kernel: s54, ok: true,
			files: func() map[string][]byte { m := demo(); m[s51+"/extra/kabiprov.ko.xz"] = mod(s50, "kabiprov"); return m }()},
		{name: "weak user, provider's link path blocked (finding 6)", files: blocked(demo()), required: "kabiuser", kernel: s53,
			reason: []string{"kabiuser does not load into " + s53, "exported by kabiprov", "not created by kabiguard"}},
		{name: "native user, provider's link path blocked (finding 6)", required: "kabiuser", kernel: s53,
			files: blocked(map[string][]byte{
				s53 + "/extra/kabiuser.ko.xz":          mod(s50, "kabiuser"),
				s50 + "/extra/kabiprov/kabiprov.ko.xz": mod(s50, "kabiprov"),
			}),
			reason: []string{"kabiuser: ROOT/lib/modules/" + s53 + "/extra/kabiuser.ko.xz does not load into " + s53,
				"kabiprov_value: exported by kabiprov, which " + s53 + " does not get (blocked: "}},
		{name: "truncated build, its own kernel (finding 11)", required: "kabidemo", kernel: s50,
			files: func() map[string][]byte {
				m := demo()
				m[s50+"/extra/kabidemo/kabidemo.ko.xz"] = mod(s50, "kabidemo")[:700]
				return m
			}(),
			reason: []string{"kabidemo: the kernel's own build ROOT/lib/modules/" + s50 + "/extra/kabidemo/kabidemo.ko.xz cannot be read: corrupt xz data"}},
		{name: "truncated build, another kernel (finding 11)", required: "kabidemo", kernel: s53,
			files: func() map[string][]byte {
				m := demo()
				m[s50+"/extra/kabidemo/kabidemo.ko.xz"] = mod(s50, "kabidemo")[:700]
				return m
			}(),
			reason: []string{"kabidemo: no build usable by " + s53, "kabidemo.ko.xz cannot be read: corrupt xz data"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := sampleRoot(t, c.files)
			cfg := gateConfig(t, root, c.required+"\n", "")
			// As `kabiguard link` leaves the tree: links made, the real depmod run.
			if _, err := weakupdates.Sync(cfg, weakupdates.SyncOptions{Root: root}); err != nil && !weakupdates.OnlyIncomplete(err) {
				t.Fatal(err)
			}
			for _, k := range []string{s50, s53, s54} {
				if err := kmod.Depmod(root, k, ""); err != nil {
					t.Fatal(err)
				}
			}
			res := gateFor(t, Options{Root: root, Kernel: c.kernel, Config: cfg, NoInitrd: true})
			m := res.Modules[0]
			reason := strings.ReplaceAll(m.Reason, root, "ROOT")
			if m.OK != c.ok || res.OK != c.ok {
				t.Fatalf("%s on %s: ok %v (%s: %s), want %v", c.required, c.kernel, m.OK, m.State, reason, c.ok)
			}
			for _, want := range c.reason {
				if !strings.Contains(reason, want) {
					t.Errorf("reason %q does not say %q", reason, want)
				}
			}
		})
	}
}
