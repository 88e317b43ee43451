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
	defaults := map[string]string{"never_weak": "", "share_builds": def.ShareBuilds, "on_missing_required": def.OnMissingRequired, "metrics_dir": def.MetricsDir}
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

// The pages written as text render without a groff warning and keep their sections.
func TestTextPages(t *testing.T) {
	for _, tc := range []struct {
		name, section string
		want          []string
	}{
		{"kabiguard-required", "5", []string{"kabiguard-required - modules every kernel must load", "/etc/kabiguard/required.d/*.conf", "early"}},
		{"kabiguard-gate", "8", []string{"kabiguard-gate - the boot-time gate", "--list FILE", "--moddir DIR", "rd.kabiguard=0"}},
	} {
		page := render(t, "text", tc.name, tc.section, filepath.Join(testkit.RepoDir(), "man", tc.name+"."+tc.section+".txt"))
		for _, want := range tc.want {
			if !strings.Contains(page, want) {
				t.Errorf("%s(%s) lacks %q", tc.name, tc.section, want)
			}
		}
	}
}
