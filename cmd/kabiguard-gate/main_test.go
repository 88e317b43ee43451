package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/kmod"
	"golang.org/x/sys/unix"
)

func TestParseKmsg(t *testing.T) {
	for rec, want := range map[string]string{
		"4,1234,5678,-;kabidemo: disagrees about version of symbol misc_register\n":    "disagrees about version of symbol misc_register",
		"4,1235,5679,-;kabidemo: Unknown symbol misc_register (err -22)\n SUBSYSTEM=x": "Unknown symbol misc_register (err -22)",
		"6,1236,5680,-;other: disagrees about version of symbol x\n":                   "",
		"garbage": "",
	} {
		if got := parseKmsg([]byte(rec), "kabidemo"); got != want {
			t.Errorf("parseKmsg(%q) = %q, want %q", rec, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	got := summarize([]string{
		"loading out-of-tree module taints kernel.",
		"module verification failed: signature and/or required key missing - tainting kernel",
		"disagrees about version of symbol misc_deregister",
		"Unknown symbol misc_deregister (err -22)",
		"Unknown symbol other_sym (err -2)",
	})
	if want := "disagrees about version of symbol misc_deregister; Unknown symbol other_sym (err -2)"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestReadListAndDep(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "required"), []byte("# cluster\ndrbd early\n\nnpreal2\nfoo-bar\n"), 0o644)
	names, err := readList(filepath.Join(dir, "required"))
	if err != nil || len(names) != 3 || names[0] != "drbd" || names[2] != "foo_bar" {
		t.Fatalf("%v %v", names, err)
	}
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("extra/drbd.ko.xz: kernel/lib/libcrc32c.ko.xz\nkernel/lib/libcrc32c.ko.xz:\n"), 0o644)
	dep, err := readModulesDep(filepath.Join(dir, "modules.dep"))
	if err != nil || dep["drbd"].path != "extra/drbd.ko.xz" || len(dep["drbd"].deps) != 1 || dep["libcrc32c"].path == "" {
		t.Fatalf("%+v %v", dep, err)
	}
	// A module the image does not carry: one clear line, exit 1.
	os.WriteFile(filepath.Join(dir, "required2"), []byte("npreal2\n"), 0o644)
	var out stringsBuilder
	want := "kabiguard: required module npreal2 cannot load: not in the initramfs (" + dir + "/modules.dep does not list it)\n"
	if code := run(filepath.Join(dir, "required2"), dir, &out); code != 1 || out.s != want {
		t.Fatalf("exit %d: %q", code, out.s)
	}
}

type stringsBuilder struct{ s string }

func (b *stringsBuilder) Write(p []byte) (int, error) { b.s += string(p); return len(p), nil }

// TestSize: the gate goes into every initramfs; it must stay at most 2 MB as make install
// builds it (static, stripped).
func TestSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gate")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", p, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2<<20 {
		t.Fatalf("kabiguard-gate is %d bytes, over 2 MB", fi.Size())
	}
	t.Logf("kabiguard-gate: %d bytes", fi.Size())
}

// gateDir makes a module directory with modules.dep and a list file; names start with kgtest
// so no module of the machine running the test is among them.
func gateDir(t *testing.T, list, dep string) (listPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	listPath = filepath.Join(dir, "required")
	if err := os.WriteFile(listPath, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	return listPath, dir
}

// runGate runs the gate with a stand-in for finit_module that records the order and fails the
// modules named in refuse; it fails the test if the gate takes more than 10 s (a hang).
func runGate(t *testing.T, listPath, dir string, insert func(name, path string) error) (int, string) {
	t.Helper()
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		var out stringsBuilder
		code := runWith(listPath, dir, &out, insert)
		done <- result{code, out.s}
	}()
	select {
	case r := <-done:
		return r.code, r.out
	case <-time.After(10 * time.Second):
		t.Fatalf("kabiguard-gate hangs on %s", dir)
		return 0, ""
	}
}

func oneLine(t *testing.T, out string) string {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "kabiguard: ") {
		t.Fatalf("want one line, got %q", out)
	}
	return out
}

// TestGateBadNames: a name that is no module name is refused with one line naming the file
// and line, before anything is looked up: "../../etc/passwd" used to pass as built in because
// /sys/module/../../etc/passwd exists.
func TestGateBadNames(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", "..", "/etc/passwd", "*", "kgtest.ko", "kg$test", "kgtest\x00"} {
		listPath, dir := gateDir(t, "# ok\nkgtest_ok\n"+name+"\n", "extra/kgtest_ok.ko:\n")
		code, out := runGate(t, listPath, dir, func(n, p string) error {
			t.Errorf("%q: %s inserted although the list is refused", name, n)
			return nil
		})
		want := listPath + ":3: " + strconv.Quote(name) + " is not a module name"
		if code != 1 || !strings.Contains(oneLine(t, out), want) {
			t.Errorf("%q: exit %d %q, want 1 and %q", name, code, out, want)
		}
	}
	listPath, dir := gateDir(t, "kgtest_a early\nkgtest_b eraly\n", "")
	if code, out := runGate(t, listPath, dir, nil); code != 1 || !strings.Contains(oneLine(t, out), listPath+`:2: unknown flag "eraly"`) {
		t.Errorf("unknown flag: exit %d %q", code, out)
	}
}

// TestGateDependencyCycle: a cyclic modules.dep stops the boot with one line naming the cycle
// (it was a stack overflow); nothing is inserted.
func TestGateDependencyCycle(t *testing.T) {
	for dep, cycle := range map[string]string{
		"extra/kgtest_a.ko: extra/kgtest_b.ko\nextra/kgtest_b.ko: extra/kgtest_a.ko\n":                                                         "kgtest_a -> kgtest_b -> kgtest_a",
		"extra/kgtest_a.ko: extra/kgtest_a.ko\n":                                                                                               "kgtest_a -> kgtest_a",
		"extra/kgtest_a.ko: extra/kgtest_c.ko extra/kgtest_b.ko\nextra/kgtest_b.ko: extra/kgtest_c.ko\nextra/kgtest_c.ko: extra/kgtest_b.ko\n": "kgtest_b -> kgtest_c -> kgtest_b",
	} {
		listPath, dir := gateDir(t, "kgtest_a\n", dep)
		code, out := runGate(t, listPath, dir, func(n, p string) error {
			t.Errorf("%s inserted from a cyclic modules.dep", n)
			return nil
		})
		want := "kabiguard: required module kgtest_a cannot load: " + dir + "/modules.dep has a dependency cycle: " + cycle + "\n"
		if code != 1 || out != want {
			t.Errorf("exit %d\n got %q\nwant %q", code, out, want)
		}
	}
}

// TestGateDeepChain: a long chain loads in order; an absurd one ends in a line, not a crash.
func TestGateDeepChain(t *testing.T) {
	chain := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "extra/kgtest_%d.ko: extra/kgtest_%d.ko\n", i, i+1)
		}
		fmt.Fprintf(&b, "extra/kgtest_%d.ko:\n", n)
		return b.String()
	}
	listPath, dir := gateDir(t, "kgtest_0\n", chain(500))
	var order []string
	if code, out := runGate(t, listPath, dir, func(n, p string) error { order = append(order, n); return nil }); code != 0 || len(order) != 501 || order[0] != "kgtest_500" || order[500] != "kgtest_0" {
		t.Fatalf("exit %d %q, %d inserted", code, out, len(order))
	}
	listPath, dir = gateDir(t, "kgtest_0\n", chain(200000))
	code, out := runGate(t, listPath, dir, func(n, p string) error { return nil })
	if code != 1 || !strings.Contains(oneLine(t, out), "deeper than 1000 modules") {
		t.Fatalf("exit %d %q", code, out)
	}
}

// TestGateHostileFiles: a very long modules.dep line, a missing module, a directory or a FIFO
// where a module, modules.dep or the list should be: one line each, exit 1, no hang. These go
// through the real loader, which refuses them before finit_module.
func TestGateHostileFiles(t *testing.T) {
	fifo := func(p string) {
		os.Remove(p)
		if err := unix.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := "extra/kgtest_a.ko: " + strings.Repeat("extra/kgtest_b.ko ", 70000) + "\n"
	listPath, dir := gateDir(t, "kgtest_a\n", "kernel/x.ko:\n"+long)
	if code, out := runGate(t, listPath, dir, nil); code != 1 || !strings.Contains(oneLine(t, out), dir+"/modules.dep:2: a line longer than") {
		t.Errorf("long line: exit %d %q", code, out)
	}

	dep := "extra/kgtest_a.ko: extra/kgtest_b.ko\nextra/kgtest_b.ko:\n"
	for what, make := range map[string]func(p string){
		"no such file":        func(p string) {},
		"not a regular file":  func(p string) { os.Mkdir(p, 0o755) },
		"not a regular file ": fifo,
	} {
		listPath, dir := gateDir(t, "kgtest_a\n", dep)
		os.Mkdir(filepath.Join(dir, "extra"), 0o755)
		make(filepath.Join(dir, "extra", "kgtest_b.ko"))
		code, out := runGate(t, listPath, dir, nil)
		if code != 1 || !strings.Contains(oneLine(t, out), "required module kgtest_a cannot load: dependency kgtest_b: ") || !strings.Contains(out, strings.TrimSpace(what)) {
			t.Errorf("dependency %s: exit %d %q", what, code, out)
		}
	}

	listPath, dir = gateDir(t, "kgtest_a\n", dep)
	fifo(filepath.Join(dir, "modules.dep"))
	if code, out := runGate(t, listPath, dir, nil); code != 1 || !strings.Contains(oneLine(t, out), dir+"/modules.dep: not a regular file") {
		t.Errorf("FIFO modules.dep: exit %d %q", code, out)
	}
	listPath, dir = gateDir(t, "", dep)
	fifo(listPath)
	if code, out := runGate(t, listPath, dir, nil); code != 1 || !strings.Contains(oneLine(t, out), listPath+": not a regular file") {
		t.Errorf("FIFO list: exit %d %q", code, out)
	}
}

// FuzzModulesDep: whatever modules.dep says, parsing and loading every module it lists ends
// (no crash, no hang), and a module is only inserted after all its listed dependencies.
func FuzzModulesDep(f *testing.F) {
	f.Add([]byte("extra/drbd.ko.xz: kernel/lib/libcrc32c.ko.xz\nkernel/lib/libcrc32c.ko.xz:\n"))
	f.Add([]byte("a.ko: b.ko\nb.ko: a.ko\n"))
	f.Add([]byte("a.ko: a.ko ../x.ko /sys/y.ko\nc.ko: b.ko a.ko\nb.ko:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dep, err := parseModulesDep(bytes.NewReader(data), "modules.dep")
		if err != nil {
			return
		}
		inserted := map[string]bool{}
		l := &loader{dir: "/nonexistent", dep: dep, loaded: map[string]bool{}}
		l.insert = func(name, path string) error {
			for _, d := range dep[name].deps {
				if dn := moduleName(d); !inserted[dn] && dep[dn].path != "" {
					t.Fatalf("%s inserted before its dependency %s", name, dn)
				}
			}
			inserted[name] = true
			return nil
		}
		names := make([]string, 0, len(dep))
		for n := range dep {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			l.load(n)
			if len(l.chain) != 0 {
				t.Fatalf("chain left %v", l.chain)
			}
		}
	})
}

// TestValidNameAgrees: the gate's copy of the module-name rule is config's.
func TestValidNameAgrees(t *testing.T) {
	for _, s := range []string{"", "a", "kabi_demo", "kabi-demo", "A9", "../x", "a.ko", "a b", "a*", "é", "a\x00", "-", "_"} {
		if validName(s) != config.ValidModuleName(s) {
			t.Errorf("%q: gate %v, config %v", s, validName(s), config.ValidModuleName(s))
		}
	}
}

// TestModuleNameAgrees: the gate's copy of the module-name rule is package kmod's.
func TestModuleNameAgrees(t *testing.T) {
	for _, p := range []string{"", "a.ko", "kernel/fs/xfs/xfs.ko.xz", "/lib/modules/K/extra/kabi-demo.ko.zst", "a-b.ko.gz", "a.b.ko", "noext", ".ko", "d/", "a.ko.bak"} {
		if moduleName(p) != kmod.ModuleName(p) {
			t.Errorf("%q: gate %q, kmod %q", p, moduleName(p), kmod.ModuleName(p))
		}
	}
}
