package main

// Issue 11 point 2: Debian's DKMS always calls `weak-modules --no-initramfs`. The images its
// link changes make stale stay owed, and the next weak-modules run without the flag, even one
// that changes no link, refreshes them and says so. On the embedded sample.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/internal/testkit/sample"
	"github.com/kabiguard/kabiguard/weakupdates"
)

func TestNoInitramfsDefersImageWork(t *testing.T) {
	root := sample.Root(t)
	wm := func(stdin string, args ...string) (int, string) {
		var out bytes.Buffer
		code := run(append([]string{"--basedir", root}, args...), strings.NewReader(stdin), &out, &out)
		return code, out.String()
	}
	for _, k := range []string{sample.K53, sample.K54} {
		if code, out := wm("", "--add-kernel", k); code != 0 {
			t.Fatalf("--add-kernel %s: exit %d\n%s", k, code, out)
		}
	}
	img := func(k string) string { return filepath.Join(root, "boot", "initramfs-"+k+".img") }
	for _, k := range []string{sample.K53, sample.K54} {
		sample.Image(t, root, k, img(k))
	}
	// DKMS removes kabiuser: its prerm calls weak-modules --remove-modules --no-initramfs.
	user := filepath.Join(root, "lib/modules", sample.K50, "extra/kabiuser/kabiuser.ko.xz")
	if err := os.Remove(user); err != nil {
		t.Fatal(err)
	}
	code, out := wm(user+"\n", "--remove-modules", "--no-initramfs", "--verbose")
	if code != 0 || !strings.Contains(out, "owed") {
		t.Errorf("--remove-modules --no-initramfs: exit %d\n%s", code, out)
	}
	if owed, _ := weakupdates.ImagesOwed(root); len(owed) != 2 {
		t.Errorf("owed after --no-initramfs: %v, want 53 and 54", owed)
	}
	// The next run changes no link, and does the owed work.
	code, out = wm("", "--add-kernel", sample.K53)
	if code != 0 || strings.Count(out, "refreshed") != 2 || !strings.Contains(out, "owed") {
		t.Fatalf("--add-kernel after --no-initramfs: exit %d\n%s", code, out)
	}
	for _, k := range []string{sample.K53, sample.K54} {
		rep, err := imagesync.Verify(root, k, img(k), config.Default())
		if err != nil || !rep.OK() {
			t.Fatalf("%s's image after the owed refresh: %v %+v", k, err, rep)
		}
	}
	if owed, _ := weakupdates.ImagesOwed(root); len(owed) != 0 {
		t.Fatalf("still owed: %v", owed)
	}
}
