package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

func render(t *testing.T, args ...string) string {
	t.Helper()
	pg, err := pageFor(args)
	if err != nil {
		t.Fatal(err)
	}
	var roff bytes.Buffer
	if err := pg.Write(&roff, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=2000n", "-P-cbou")
	cmd.Stdin = &roff
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil || errs.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errs.String())
	}
	return regexp.MustCompile(`\s+`).ReplaceAllString(out.String(), " ")
}

// kabiguard.conf(5) documents every setting the parser accepts, with the default the shipped
// file shows, and renders without a groff warning.
func TestConfPageDocumentsEverySetting(t *testing.T) {
	page := render(t, "conf", filepath.Join(testkit.RepoDir(), "etc", "kabiguard.conf"))
	def := config.Default()
	defaults := map[string]string{"never_weak": "", "share_builds": def.ShareBuilds, "on_missing_required": def.OnMissingRequired}
	for _, key := range config.Settings {
		want, ok := defaults[key]
		if !ok {
			t.Errorf("setting %s: this test does not know its default", key)
		}
		if !strings.Contains(page, strings.TrimSpace(key+" = "+want)) {
			t.Errorf("kabiguard.conf(5) lacks %q", key+" = "+want)
		}
	}
}

func TestRequiredPage(t *testing.T) {
	page := render(t, "text", "kabiguard-required", "5", filepath.Join(testkit.RepoDir(), "man", "kabiguard-required.5.txt"))
	for _, want := range []string{"kabiguard-required - modules every kernel must load", "/etc/kabiguard/required.d/*.conf", "early"} {
		if !strings.Contains(page, want) {
			t.Errorf("kabiguard-required(5) lacks %q", want)
		}
	}
}
