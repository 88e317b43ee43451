package imagesync

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// tracer prints how long each step of a long operation took, to stderr, when the environment
// sets KABIGUARD_TRACE: the first thing to look at when a refresh is slow on some host.
type tracer struct {
	what  string
	start time.Time
	last  time.Time
	on    bool
}

func newTracer(what string) *tracer {
	now := time.Now()
	return &tracer{what: what, start: now, last: now, on: os.Getenv("KABIGUARD_TRACE") != ""}
}

// step reports the step that just ended.
func (t *tracer) step(name string) {
	if !t.on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "kabiguard: trace: %s: %-24s %8.1f ms (total %8.1f ms)\n", t.what, name,
		float64(now.Sub(t.last).Microseconds())/1000, float64(now.Sub(t.start).Microseconds())/1000)
	t.last = now
}

// testPoint serves the fault-injection tests only, as weakupdates' faultPoint does for link
// changes. At the point named name (see its callers):
//   - KABIGUARD_TEST_KILL_POINT=name: the process kills itself with SIGKILL, as a power cut
//     or `kill -9` would stop it there;
//   - KABIGUARD_TEST_PAUSE_POINT=name:FILE: it creates FILE.reached and waits until FILE
//     exists, so that a test can run another process at that moment.
func testPoint(name string) {
	if os.Getenv("KABIGUARD_TEST_KILL_POINT") == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	at, file, ok := strings.Cut(os.Getenv("KABIGUARD_TEST_PAUSE_POINT"), ":")
	if !ok || at != name {
		return
	}
	os.WriteFile(file+".reached", nil, 0o644)
	for {
		if _, err := os.Stat(file); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
