package testkit

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Terminal is an interactive shell on a pseudo-terminal (util-linux script), driven like a
// person at the keyboard: type, then wait for what the screen shows. The completion tests
// use it to press Tab in a real bash and zsh.
type Terminal struct {
	tb    testing.TB
	in    io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	shown int // output already matched
}

// StartTerminal runs the shell command line shell on a new pseudo-terminal with exactly the
// environment env; it is killed when the test ends.
func StartTerminal(tb testing.TB, shell string, env []string) *Terminal {
	tb.Helper()
	cmd := exec.Command("script", "-qfec", shell, "/dev/null")
	cmd.Env = env
	term := &Terminal{tb: tb}
	var err error
	if term.in, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
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
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
	return term
}

// Expect waits until the screen shows want after what was matched before (the deadline only
// guards against a hang), and returns what it showed up to and including want.
func (term *Terminal) Expect(want string) string {
	term.tb.Helper()
	return term.wait(fmt.Sprintf("%q", want), func(screen string) int {
		if i := strings.Index(screen, want); i >= 0 {
			return i + len(want)
		}
		return -1
	})
}

// ExpectAll waits until the screen shows every one of wants, in any order, after what was
// matched before (a shell lists completions in columns), and returns what it showed.
func (term *Terminal) ExpectAll(wants ...string) string {
	term.tb.Helper()
	return term.wait(fmt.Sprintf("all of %q", wants), func(screen string) int {
		end := 0
		for _, w := range wants {
			i := strings.Index(screen, w)
			if i < 0 {
				return -1
			}
			end = max(end, i+len(w))
		}
		return end
	})
}

// wait polls the screen after what was matched before until find returns where the match
// ends (-1: not yet), moves past it and returns the matched part.
func (term *Terminal) wait(what string, find func(screen string) int) string {
	term.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		term.mu.Lock()
		screen := term.out.String()[term.shown:]
		term.mu.Unlock()
		if end := find(screen); end >= 0 {
			term.shown += end
			return screen[:end]
		}
		time.Sleep(20 * time.Millisecond)
	}
	term.mu.Lock()
	defer term.mu.Unlock()
	term.tb.Fatalf("the terminal never showed %s; it shows:\n%s", what, term.out.String()[term.shown:])
	return ""
}

// Type sends keys to the shell.
func (term *Terminal) Type(keys string) {
	term.tb.Helper()
	if _, err := io.WriteString(term.in, keys); err != nil {
		term.tb.Fatal(err)
	}
}
