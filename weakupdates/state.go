package weakupdates

import (
	"fmt"
	"strings"
)

//go:generate go tool stringer -type=State -linecomment
//go:generate go tool stringer -type=Reason -linecomment

// State of a module for a kernel: what the plan decided (Decision) or, in a status Row, how the
// tree on disk compares with it. Its text, as `kabiguard status` and the JSON show it, is the
// generated String.
type State int

// States; the line comment is the text (go generate).
const (
	// The kernel has its own build.
	Native State = iota + 1 // native
	// Linked from another kernel's build.
	Weak // weak
	// Builds exist, none loads into this kernel.
	Incompatible // incompatible
	// Policy says never link it weakly (never_weak).
	Excluded // excluded
	// The build(s) cannot be parsed: never linked, never trusted.
	Unreadable // unreadable
	// A compatible build's link path is taken by a file kabiguard did not create.
	Blocked // blocked
	// An admin's own link in weak-updates provides it: not managed.
	Admin // admin

	// The states below are only a status Row's: the tree on disk against the plan.

	// No build for this kernel, and none to link (the Row's reason says why).
	Missing // missing
	// Its weak-updates link points at nothing.
	Dangling // dangling
	// Its weak-updates link points at another build than the plan's.
	Stale // stale
	// The plan links a compatible build that is not linked yet.
	Pending // pending
	// The kernel's exports cannot be read (no symvers file, no readable image): whether a
	// build loads cannot be decided, which is not the same as "it does not".
	Undecided // undecided
)

// MarshalText writes the state's text, so JSON shows "native", "weak", ...
func (s State) MarshalText() ([]byte, error) {
	if s < Native || s > Undecided {
		return nil, fmt.Errorf("weakupdates: no such state %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a state's text, as MarshalText writes it.
func (s *State) UnmarshalText(b []byte) error {
	for v := Native; v <= Undecided; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("weakupdates: unknown state %q", b)
}

// Reason is why Diff makes a Change; the explanation (Why) is derived from it.
type Reason int

// Reasons; the line comment is the start of the explanation (go generate).
const (
	// A link under a temporary name, left by a run killed while making it.
	ReasonLeftover Reason = iota + 1 // left over from an interrupted run
	// The link points at nothing: removed whoever made it.
	ReasonDangling // dangling
	// The link's kernel is being removed.
	ReasonKernelRemoved // kernel is being removed
	// A new link; Detail is the release of the build.
	ReasonCompatible // compatible build from
	// A re-pointed link; Detail is the release of the new build.
	ReasonBetter // better build from
	// A dangling link re-pointed; Detail is the release of the build.
	ReasonWasDangling // was dangling; build from
	// A managed link the plan no longer wants; Detail is the whole explanation.
	ReasonUnwanted // not wanted by the plan
)

// Why is the reason for a Change and its detail; its text (String, and the "why" of the JSON)
// is derived from both.
type Why struct {
	Reason Reason
	Detail string
}

func (w Why) String() string {
	switch {
	case w.Detail == "":
		return w.Reason.String()
	case w.Reason == ReasonUnwanted:
		return w.Detail
	}
	return w.Reason.String() + " " + w.Detail
}

// MarshalText writes the explanation, so the JSON's "why" is text.
func (w Why) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText reads an explanation as MarshalText writes it: a reason's text, alone or
// followed by its detail; any other text is ReasonUnwanted's detail.
func (w *Why) UnmarshalText(b []byte) error {
	text := string(b)
	for r := ReasonLeftover; r < ReasonUnwanted; r++ {
		if detail, ok := strings.CutPrefix(text, r.String()); ok && (detail == "" || detail[0] == ' ') {
			*w = Why{r, strings.TrimPrefix(detail, " ")}
			return nil
		}
	}
	*w = Why{ReasonUnwanted, text}
	return nil
}
