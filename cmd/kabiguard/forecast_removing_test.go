package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// forecast --removing K: what the kernels staying installed lose when K goes. On the sample,
// 6.1.0-53 loads the required kabidemo through a weak link to 6.1.0-50's build. As a kmod
// package's build (extra/, no DKMS record) it outlives 6.1.0-50: no loss, exit 0. As DKMS's
// build (DKMS records it for 6.1.0-50 and removes it with that kernel), 6.1.0-53 loses it:
// exit 1, naming both kernels and the module. Nothing on the host changes either way.
func TestForecastRemoving(t *testing.T) {
	k50, k53 := testkit.SampleK50, testkit.SampleK53
	root := testkit.SampleDemoRoot(t)
	var out, errs bytes.Buffer
	if code := run([]string{"link", "--root", root, "--no-initramfs"}, &out, &errs); code != 0 {
		t.Fatalf("link: exit %d\n%s%s", code, out.String(), errs.String())
	}
	before := linksUnder(t, root)
	judge := func() (int, []weakupdates.Loss) {
		t.Helper()
		var js bytes.Buffer
		errs.Reset()
		code := run([]string{"forecast", "--json", "--root", root, "--removing", k50}, &js, &errs)
		var got struct {
			Removing []string
			Losses   []weakupdates.Loss
		}
		if err := json.Unmarshal(js.Bytes(), &got); err != nil || len(got.Removing) != 1 || got.Losses == nil {
			t.Fatalf("forecast --removing --json: %v\n%s%s", err, js.String(), errs.String())
		}
		return code, got.Losses
	}
	if code, losses := judge(); code != 0 || len(losses) != 0 {
		t.Errorf("removing %s with its builds staying: exit %d, losses %+v; want 0, none", k50, code, losses)
	}
	testkit.DKMSInstalled(t, root, "kabidemo", k50)
	code, losses := judge()
	if code != 1 || len(losses) != 1 || losses[0].Kernel != k53 || losses[0].Module != "kabidemo" {
		t.Errorf("removing %s with kabidemo DKMS's: exit %d, losses %+v; want 1, %s loses kabidemo", k50, code, losses, k53)
	}
	out.Reset()
	if code := run([]string{"forecast", "--root", root, "--removing", k50}, &out, &errs); code != 1 ||
		!strings.Contains(out.String(), "removing "+k50+": "+k53+" stays installed but loses required module kabidemo") {
		t.Errorf("forecast --removing: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"forecast", "--root", root, "--removing", "6.1.0-99-amd64"}, &out, &errs); code != 2 {
		t.Errorf("--removing a kernel that is not installed: exit %d, want 2", code)
	}
	if after := linksUnder(t, root); after != before {
		t.Errorf("forecast changed the links:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// linksUnder lists every symlink under root's lib/modules with its target.
func linksUnder(t *testing.T, root string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "lib/modules"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			out = append(out, p+" -> "+target)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}
