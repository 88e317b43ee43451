package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// renderMan formats a roff page as plain text with the real groff, failing on any warning.
func renderMan(t *testing.T, roff string) string {
	t.Helper()
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=2000n", "-P-cbou")
	cmd.Stdin = strings.NewReader(roff)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil || errs.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errs.String())
	}
	return squash(out.String())
}

var spaces = regexp.MustCompile(`\s+`)

func squash(s string) string { return spaces.ReplaceAllString(s, " ") }

// kabiguard --man renders without a groff warning and says what --help says: every command,
// its help and detail text, every flag and argument.
func TestManPageFromGrammar(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--man"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--man: exit %d\n%s", code, stderr.String())
	}
	page := renderMan(t, stdout.String())
	var c cli
	parser, err := kong.New(&c, kong.Name("kabiguard"), kong.Description(description))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *kong.Node)
	commands := 0
	walk = func(n *kong.Node) {
		for _, ch := range n.Children {
			if ch.Hidden {
				continue
			}
			commands++
			for _, want := range []string{ch.FullPath(), squash(ch.Help), squash(ch.Detail)} {
				if !strings.Contains(page, want) {
					t.Errorf("kabiguard(8) lacks %q", want)
				}
			}
			for _, f := range ch.Flags {
				if !f.Hidden && f.Name != "help" && !strings.Contains(page, "--"+f.Name) {
					t.Errorf("kabiguard(8) lacks %s's flag --%s", ch.FullPath(), f.Name)
				}
			}
			for _, p := range ch.Positional {
				if !strings.Contains(page, squash(p.Help)) {
					t.Errorf("kabiguard(8) lacks %s's argument %s: %q", ch.FullPath(), p.Name, p.Help)
				}
			}
			walk(ch)
		}
	}
	walk(parser.Model.Node)
	if commands < 8 {
		t.Errorf("only %d commands in the grammar", commands)
	}
	if regexp.MustCompile(`--man\b`).MatchString(page) { // --manifest is forecast's
		t.Error("the hidden --man flag is documented")
	}
}
