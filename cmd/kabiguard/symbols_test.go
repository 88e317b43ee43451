package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// hasExtVersions: kabiguard prints a module's extended modversions table (Linux 6.14+), the one
// the loader checks; kmod before 34 knows only __versions.
func hasExtVersions(t *testing.T, p string) bool {
	m, err := module.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	return m.ExtVersions != nil
}

// TestSymbolsMatchesModprobe: `kabiguard symbols` against the real `modprobe
// --dump-modversions` on every fixture of testdata/elf: the same output when modprobe
// succeeds, a failure when it fails. On a module without symbol versions both exit 1 and
// kabiguard names the file in one line on stderr (it printed nothing and exited 0). On a file
// that is no module at all kabiguard exits 2 (its "could not run"), modprobe 1.
func TestSymbolsMatchesModprobe(t *testing.T) {
	if _, err := exec.LookPath("modprobe"); err != nil {
		t.Fatalf("the real modprobe (kmod) is needed: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(testkit.RepoDir(), "testdata", "elf", "*.ko*"))
	// An empty __versions section is a table without entries, not a missing one: kmod prints
	// nothing and succeeds.
	empty := filepath.Join(t.TempDir(), "empty-versions.ko")
	if out, err := exec.Command("objcopy", "--update-section", "__versions=/dev/null", filepath.Join(testkit.RepoDir(), "testdata", "elf", "x86_64.ko"), empty).CombinedOutput(); err != nil {
		t.Fatalf("objcopy (binutils): %v %s", err, out)
	}
	files = append(files, empty)
	if len(files) < 11 {
		t.Fatalf("only %d fixtures", len(files))
	}
	sawNoVersions := false
	for _, p := range files {
		cmd := exec.Command("modprobe", "--dump-modversions", p)
		var want, mpErr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &want, &mpErr
		mpCode := 0
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			mpCode = ee.ExitCode()
		}
		if mpCode != 0 && strings.Contains(mpErr.String(), "Exec format error") && !strings.HasPrefix(filepath.Base(p), "bad-") {
			t.Logf("%s: this kmod cannot decompress it (%s)", filepath.Base(p), strings.TrimSpace(mpErr.String()))
			continue
		}
		var got, stderr bytes.Buffer
		code := run([]string{"symbols", p}, &got, &stderr)
		switch {
		case mpCode == 0 && code != 0:
			t.Errorf("%s: kabiguard exit %d %q, modprobe 0", p, code, stderr.String())
		case mpCode == 0 && got.String() != want.String() && !hasExtVersions(t, p):
			t.Errorf("%s: kabiguard exit %d %q\n%s\nmodprobe:\n%s", p, code, stderr.String(), got.String(), want.String())
		case mpCode != 0 && code == 0:
			t.Errorf("%s: modprobe exits %d (%s), kabiguard 0 printing %q", p, mpCode, strings.TrimSpace(mpErr.String()), got.String())
		case strings.Contains(mpErr.String(), "could not get modversions") && strings.Contains(mpErr.String(), "No such file or directory") && !strings.HasPrefix(filepath.Base(p), "bad-"):
			// A well-formed module without __versions.
			sawNoVersions = true
			if code != mpCode || got.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "could not get modversions of "+p+": ") {
				t.Errorf("%s: exit %d (modprobe %d), stdout %q, stderr %q", p, code, mpCode, got.String(), stderr.String())
			}
			got.Reset()
			stderr.Reset()
			if code := run([]string{"symbols", "--json", p}, &got, &stderr); code != 1 || !strings.Contains(stderr.String(), p) || !strings.Contains(got.String(), `"symbols": []`) {
				t.Errorf("%s --json: exit %d, %q %q", p, code, got.String(), stderr.String())
			}
		}
	}
	if !sawNoVersions {
		t.Fatalf("no fixture without symbol versions: the test proves nothing")
	}
	// With several modules, the versioned ones are printed and the exit status still says one
	// had none.
	var got, stderr bytes.Buffer
	noVer, ver := filepath.Join(testkit.RepoDir(), "testdata", "elf", "x86_64-noversions.ko"), filepath.Join(testkit.RepoDir(), "testdata", "elf", "x86_64.ko")
	if code := run([]string{"symbols", noVer, ver}, &got, &stderr); code != 1 || !strings.Contains(got.String(), "misc_register") || !strings.Contains(stderr.String(), noVer) || strings.Contains(stderr.String(), ver+":") {
		t.Errorf("two modules: exit %d %q %q", code, got.String(), stderr.String())
	}
}
