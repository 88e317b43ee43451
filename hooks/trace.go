package hooks

import (
	"fmt"
	"os"
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
