package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
