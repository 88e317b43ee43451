package apthook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// ErrProtocol means the input does not follow the hook protocol.
var ErrProtocol = errors.New("not APT's Pre-Install-Pkgs hook protocol")

// Kind is what APT is about to do with a package.
type Kind int

const (
	Unpack    Kind = iota // the package's .deb is unpacked (installed or upgraded)
	Configure             // the package is configured
	Remove                // the package is removed
)

func (k Kind) String() string {
	switch k {
	case Unpack:
		return "unpack"
	case Configure:
		return "configure"
	case Remove:
		return "remove"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Action is one package action line.
type Action struct {
	Package    string // without architecture qualification
	OldVersion string // "" when the package is not installed
	NewVersion string // "" when it is being removed
	OldArch    string // version 3 only; "" for none
	NewArch    string
	Direction  string // "<" upgrade, ">" downgrade, "=" no change
	Kind       Kind
	File       string // the .deb being unpacked (Kind Unpack)
}

// Request is everything APT sent.
type Request struct {
	Version int                 // 1, 2 or 3
	Config  map[string][]string // APT's configuration: every value of each key, in order
	Actions []Action
}

// Parse reads a whole hook request.
func Parse(r io.Reader) (*Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	req := &Request{Config: map[string][]string{}}
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	first, ok := next()
	if !ok {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: no input", ErrProtocol)
	}
	v, isVersioned := strings.CutPrefix(first, "VERSION ")
	if !isVersioned {
		// Version 1: one .deb file name a line.
		req.Version = 1
		for text, ok := first, true; ok; text, ok = next() {
			if text != "" {
				req.Actions = append(req.Actions, Action{Kind: Unpack, File: text})
			}
		}
		return req, sc.Err()
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 || n > 3 {
		return nil, fmt.Errorf("%w: line 1: protocol version %q (2 and 3 are read)", ErrProtocol, v)
	}
	req.Version = n
	for {
		text, ok := next()
		if !ok {
			return nil, fmt.Errorf("%w: the configuration does not end with a blank line", ErrProtocol)
		}
		if text == "" {
			break
		}
		if err := req.addConfig(text); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrProtocol, line, err)
		}
	}
	for text, ok := next(); ok; text, ok = next() {
		if text == "" {
			continue
		}
		a, err := parseAction(text, n)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrProtocol, line, err)
		}
		req.Actions = append(req.Actions, a)
	}
	return req, sc.Err()
}

// addConfig records one "key=value" or "key::=value" line, %-decoded.
func (req *Request) addConfig(text string) error {
	k, v, ok := strings.Cut(text, "=")
	if !ok {
		return fmt.Errorf("configuration line %q has no '='", text)
	}
	k = strings.TrimSuffix(k, "::")
	key, err1 := url.PathUnescape(k)
	val, err2 := url.PathUnescape(v)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("configuration line %q: %v", text, err)
	}
	key = strings.ToLower(key) // APT's configuration names are case-insensitive
	req.Config[key] = append(req.Config[key], val)
	return nil
}

// Field positions of a package action line: version 2 has name, old version, direction, new
// version, action; version 3 adds each version's architecture and multi-arch type.
type layout struct{ oldVersion, oldArch, direction, newVersion, newArch, action int }

var layouts = map[int]layout{
	2: {oldVersion: 1, oldArch: -1, direction: 2, newVersion: 3, newArch: -1, action: 4},
	3: {oldVersion: 1, oldArch: 2, direction: 4, newVersion: 5, newArch: 6, action: 8},
}

// parseAction reads one package action line of the given protocol version.
func parseAction(text string, version int) (Action, error) {
	l := layouts[version]
	f := strings.Fields(text)
	if len(f) <= l.action {
		return Action{}, fmt.Errorf("package action %q: %d fields, want %d", text, len(f), l.action+1)
	}
	field := func(i int) string {
		if i < 0 || f[i] == "-" {
			return ""
		}
		return f[i]
	}
	a := Action{
		Package: f[0], OldVersion: field(l.oldVersion), OldArch: field(l.oldArch),
		Direction: f[l.direction], NewVersion: field(l.newVersion), NewArch: field(l.newArch),
	}
	switch a.Direction {
	case "<", ">", "=":
	default:
		return Action{}, fmt.Errorf("package action %q: direction %q is not <, > or =", text, a.Direction)
	}
	// The action is the rest of the line: a .deb's path may hold spaces.
	switch action := fieldsFrom(text, l.action); action {
	case "**CONFIGURE**":
		a.Kind = Configure
	case "**REMOVE**":
		a.Kind = Remove
	default:
		a.Kind, a.File = Unpack, action
	}
	return a, nil
}

// fieldsFrom returns text from its n-th whitespace-separated field (0-based) to the end.
func fieldsFrom(text string, n int) string {
	s := strings.TrimLeft(text, " \t")
	for i := 0; i < n; i++ {
		j := strings.IndexAny(s, " \t")
		if j < 0 {
			return ""
		}
		s = strings.TrimLeft(s[j:], " \t")
	}
	return s
}
