package completion_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// terminal is an interactive bash on a pseudo-terminal (util-linux script), driven like a
// person at the keyboard: type, then wait for what the screen shows.
type terminal struct {
	t     *testing.T
	in    io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	cmd   *exec.Cmd
	shown int // output already matched
}

func startBash(t *testing.T, rcfile string) *terminal {
	cmd := exec.Command("script", "-qfec", "bash --rcfile "+rcfile+" --noprofile -i", "/dev/null")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=dumb", "HOME=" + t.TempDir()}
	term := &terminal{t: t, cmd: cmd}
	var err error
	if term.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
	return term
}

// expect waits until the screen shows want after what was matched before (the deadline only
// guards against a hang).
func (term *terminal) expect(want string) {
	term.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		screen := term.out.String()
		term.mu.Unlock()
		if i := strings.Index(screen[term.shown:], want); i >= 0 {
			term.shown += i + len(want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	term.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, term.out.String()[term.shown:])
}

func (term *terminal) typeKeys(s string) {
	if _, err := io.WriteString(term.in, s); err != nil {
		term.t.Fatal(err)
	}
}

// The shipped bash completion, loaded into a real interactive bash, completes subcommands,
// flags and kernel releases (under the --root already typed) when Tab is pressed.
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
	rc := filepath.Join(t.TempDir(), "rc")
	body := strings.ReplaceAll(string(script), "@SBINDIR@", bin) + "PS1='KG> '\n"
	if err := os.WriteFile(rc, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	term := startBash(t, rc)
	term.expect("KG> ")
	for _, tc := range []struct{ typed, completed string }{
		{"kabiguard st\t", "kabiguard status "},
		{"kabiguard initramfs ve\t", "kabiguard initramfs verify "},
		{"kabiguard link --dr\t", "kabiguard link --dry-run "},
		{"kabiguard gate --root " + root + " -k 6.1.0-55\t", "6.1.0-55-amd64 "},
		{"weak-modules --add-k\t", "weak-modules --add-kernel "},
	} {
		term.typeKeys(tc.typed)
		term.expect(tc.completed)
		term.typeKeys("\x15") // ^U: discard the line
	}
	term.typeKeys("exit\n")
}
