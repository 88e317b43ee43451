package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit/sample"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Issue 11, point 6: status shows each kernel's initramfs and whether it holds current copies
// (of the required early modules above all), in text and JSON, and agrees with the gate: a
// required early module without a current copy in its kernel's image makes it exit 1. A weak
// build from a module directory without a kernel is said to be one.
func TestStatusShowsImages(t *testing.T) {
	root := sample.Root(t)
	os.MkdirAll(filepath.Join(root, "etc", "kabiguard", "required.d"), 0o755)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "etc", "kabiguard", "required.d", "t.conf"), []byte("kabidemo early\nkabiprov\n"), 0o644))
	status := func() (int, string, []weakupdates.Row) {
		t.Helper()
		var out, errOut, js bytes.Buffer
		code := run([]string{"status", "--root", root}, &out, &errOut)
		run([]string{"status", "--root", root, "--json"}, &js, &errOut)
		var rows []weakupdates.Row
		must(json.Unmarshal(js.Bytes(), &rows))
		return code, out.String(), rows
	}
	row := func(rows []weakupdates.Row, k, m string) weakupdates.Row {
		for _, r := range rows {
			if r.Kernel == k && r.Module == m {
				return r
			}
		}
		t.Fatalf("no row %s %s", k, m)
		return weakupdates.Row{}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"link", "--root", root, "--no-initramfs"}, &out, &errOut); code != 0 {
		t.Fatalf("link: %d\n%s%s", code, out.String(), errOut.String())
	}
	img53 := sample.Image(t, root, sample.K53, filepath.Join(root, "boot", "initramfs-"+sample.K53+".img"))

	// 53: weak kabidemo, copied into its image: current. 50 has no image: kabidemo early is
	// not in any, so status says so and exits 1, as the gate would refuse 50.
	code, text, rows := status()
	if !regexp.MustCompile(`(?m)^`+sample.K53+`\s+`+regexp.QuoteMeta(img53)+`\s+current\s`).MatchString(text) ||
		!regexp.MustCompile(`(?m)^`+sample.K50+`\s+-\s+no-image\s`).MatchString(text) {
		t.Fatalf("no INITRAMFS table with 53 current and 50 without an image:\n%s", text)
	}
	if r := row(rows, sample.K53, "kabidemo"); r.Image != img53 || r.Initrd != "current" {
		t.Errorf("JSON row 53 kabidemo: image %q initrd %q", r.Image, r.Initrd)
	}
	if r := row(rows, sample.K50, "kabidemo"); r.Initrd != "no-image" || code != 1 {
		t.Errorf("50 has no image for the early kabidemo: row initrd %q, status exit %d", r.Initrd, code)
	}

	// The image of 53 goes stale: kabiuser is removed from 50 and with it 53's link, while the
	// image keeps its copy (the refresh deferred). kabiprov's build moves, unchanged, to a
	// module directory without a kernel (51 has only that build): the link is re-pointed and
	// the image's copy is still the same build.
	must(os.RemoveAll(filepath.Join(root, "lib", "modules", sample.K50, "extra", "kabiuser")))
	must(os.MkdirAll(filepath.Join(root, "lib", "modules", "6.1.0-51-amd64", "extra"), 0o755))
	must(os.Rename(filepath.Join(root, "lib", "modules", sample.K50, "extra", "kabiprov"), filepath.Join(root, "lib", "modules", "6.1.0-51-amd64", "extra", "kabiprov")))
	out.Reset()
	if code := run([]string{"link", "--root", root, "--no-initramfs"}, &out, &errOut); code != 0 {
		t.Fatalf("link: %d\n%s%s", code, out.String(), errOut.String())
	}
	_, text, rows = status()
	if !regexp.MustCompile(`(?m)^` + sample.K53 + `\s+\S+\s+stale\s+kabiuser \(not-in-tree\)`).MatchString(text) {
		t.Errorf("53's image holds a kabiuser copy the tree no longer has, status does not say stale:\n%s", text)
	}
	if r := row(rows, sample.K53, "kabiprov"); r.Initrd != "current" || !r.FromNoKernel ||
		!strings.Contains(text, "<- 6.1.0-51-amd64 (no kernel installed there") {
		t.Errorf("53 kabiprov: initrd %q, from_no_kernel %v\n%s", r.Initrd, r.FromNoKernel, text)
	}
}
