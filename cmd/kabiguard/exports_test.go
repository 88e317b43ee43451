package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// TestExportsPrintsTheDerivedSymvers: on a root with a real kernel's image package and no
// headers, `kabiguard exports` prints a sorted 5-column symvers equal to the headers'
// Module.symvers, and says on stderr where the exports came from.
func TestExportsPrintsTheDerivedSymvers(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	root := testkit.ImageRoot(t, k)
	var out, errOut bytes.Buffer
	if code := run([]string{"exports", "--kernel", k.Release, "--root", root}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	image := filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	if !strings.Contains(errOut.String(), "exports derived from "+image+" and ") {
		t.Errorf("stderr %q does not say where the exports came from", errOut.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	prev := ""
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 5 || len(f[0]) != 10 || !strings.HasPrefix(f[3], "EXPORT_SYMBOL") {
			t.Fatalf("line %d %q is not modpost's 5-column layout", i+1, l)
		}
		if f[1] < prev {
			t.Fatalf("line %d: %s after %s: not sorted", i+1, f[1], prev)
		}
		prev = f[1]
	}
	got, err := symvers.ParseBytes("kabiguard exports", out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want, err := symvers.Load(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != len(want.Exports) || len(got.Exports) != len(want.Exports) {
		t.Fatalf("%d lines, %d symbols; Module.symvers has %d", len(lines), len(got.Exports), len(want.Exports))
	}
	for name, w := range want.Exports {
		if g := got.Exports[name]; g != w {
			t.Fatalf("%s: printed %+v, Module.symvers %+v", name, g, w)
		}
	}
}

// TestExportsErrors: no image, or a file that is no kernel, exit 2 with one line naming it.
func TestExportsErrors(t *testing.T) {
	root := t.TempDir()
	rel := "6.1.0-99-amd64"
	os.MkdirAll(filepath.Join(root, "lib", "modules", rel), 0o755)
	image := filepath.Join(root, "boot", "vmlinuz-"+rel)
	for _, c := range []struct {
		name string
		prep func()
	}{
		{"no image", func() {}},
		{"not a kernel", func() {
			os.MkdirAll(filepath.Dir(image), 0o755)
			os.WriteFile(image, []byte("not a kernel\n"), 0o644)
		}},
	} {
		c.prep()
		var out, errOut bytes.Buffer
		code := run([]string{"exports", "--kernel", rel, "--root", root}, &out, &errOut)
		msg := errOut.String()
		if code != exitError || out.Len() != 0 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, image) {
			t.Errorf("%s: exit %d, stdout %d bytes, stderr %q; want exit 2 and one line naming %s", c.name, code, out.Len(), msg, image)
		}
	}
}
