package completion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// The shipped bash completion, loaded into a real interactive bash, completes subcommands,
// flags, kernel releases (under the --root already typed) and module files, and goes on into
// a directory, when Tab is pressed.
func TestBashCompletion(t *testing.T) {
	bin := filepath.Dir(testkit.BuildBinary(t, "kabiguard"))
	if err := os.Symlink(testkit.BuildBinary(t, "weak-modules"), filepath.Join(bin, "weak-modules")); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "completion", "kabiguard.bash"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, k := range []string{"6.1.0-54-amd64", "6.1.0-55-amd64"} {
		if err := os.MkdirAll(filepath.Join(root, "lib", "modules", k), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cwd := t.TempDir()
	if err := os.Mkdir(filepath.Join(cwd, "updates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"drbd.ko.xz", "drbd.txt"} {
		if err := os.WriteFile(filepath.Join(cwd, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := filepath.Join(t.TempDir(), "rc")
	body := strings.ReplaceAll(string(script), "@SBINDIR@", bin) + "PS1='KG> '\n"
	if err := os.WriteFile(rc, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	term := testkit.StartTerminal(t, "bash --rcfile "+rc+" --noprofile -i",
		[]string{"PATH=/usr/bin:/bin", "TERM=dumb", "HOME=" + t.TempDir()})
	term.Expect("KG> ")
	term.Type("cd " + cwd + "\n")
	term.Expect("KG> ")
	for _, tc := range []struct{ typed, completed string }{
		{"kabiguard st\t", "kabiguard status "},
		{"kabiguard initramfs ve\t", "kabiguard initramfs verify "},
		{"kabiguard link --dr\t", "kabiguard link --dry-run "},
		{"kabiguard gate --root " + root + " -k 6.1.0-55\t", "6.1.0-55-amd64 "},
		{"weak-modules --add-k\t", "weak-modules --add-kernel "},
		{"kabiguard check dr\t", "kabiguard check drbd.ko.xz "},
		{"kabiguard check upd\tm", "kabiguard check updates/m"},
	} {
		term.Type(tc.typed)
		term.Expect(tc.completed)
		term.Type("\x15") // ^U: discard the line
	}
	term.Type("exit\n")
}
