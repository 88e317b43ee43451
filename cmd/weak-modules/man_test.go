package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// weak-modules --man renders without a groff warning and documents every option --help shows.
func TestManPage(t *testing.T) {
	var stdout, stderr, help bytes.Buffer
	if code := run([]string{"--man"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("--man: exit %d\n%s", code, stderr.String())
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=2000n", "-P-cbou")
	cmd.Stdin = &stdout
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil || errs.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errs.String())
	}
	page := regexp.MustCompile(`\s+`).ReplaceAllString(out.String(), " ")
	run([]string{"--help"}, strings.NewReader(""), &help, &stderr)
	flags := regexp.MustCompile(`--[a-z][a-z-]+`).FindAllString(help.String(), -1)
	if len(flags) < 8 {
		t.Fatalf("only %d options in --help:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if f != "--help" && !strings.Contains(page, f) {
			t.Errorf("weak-modules(8) lacks %s", f)
		}
	}
	if strings.Contains(page, "--man") || strings.Contains(page, "--delete-modules") {
		t.Error("a hidden option is documented")
	}
}
