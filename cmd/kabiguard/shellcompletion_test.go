package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
)

// The zsh and fish tests live beside the grammar (package main), so what the shells must
// offer is computed from it, and from the sandbox's files, never copied from a run.

// completionCase is a command line typed up to the cursor and what completing its last word
// must offer.
type completionCase struct {
	name, line string
	want       []string
}

// completionCases are the cases both shells are tried on: subcommands, a flag of link, a
// kernel release under --root (the embedded sample's root), a module file in dir.
func completionCases(t *testing.T, dir string) []completionCase {
	t.Helper()
	parser, err := kong.New(&cli{}, kong.Name("kabiguard"), kong.Description(description))
	if err != nil {
		t.Fatal(err)
	}
	root := parser.Model.Node
	var link *kong.Node
	var subcommands []string
	for _, ch := range root.Children {
		if !ch.Hidden && ch.Type == kong.CommandNode {
			subcommands = append(subcommands, ch.Name)
		}
		if ch.Name == "link" {
			link = ch
		}
	}
	var linkFlags []string
	for _, f := range slices.Concat(link.AllFlags(true)...) {
		linkFlags = append(linkFlags, "--"+f.Name)
	}
	sandbox := testkit.SampleDemoRoot(t)
	ents, err := os.ReadDir(filepath.Join(sandbox, "lib", "modules"))
	if err != nil {
		t.Fatal(err)
	}
	var releases []string
	for _, e := range ents {
		if e.IsDir() {
			releases = append(releases, e.Name())
		}
	}
	if ents, err = os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	var modules []string
	for _, e := range ents {
		if e.IsDir() {
			modules = append(modules, e.Name()+"/")
		} else if kmod.IsModule(e.Name()) {
			modules = append(modules, e.Name())
		}
	}
	gate := "kabiguard gate --root " + sandbox + " -k "
	return []completionCase{
		{"subcommands", "kabiguard li", withPrefix(subcommands, "li")},
		{"every subcommand", "kabiguard ", subcommands},
		{"a flag of link", "kabiguard link --d", withPrefix(linkFlags, "--d")},
		{"every flag of link", "kabiguard link --", linkFlags},
		{"releases under --root", gate + "6.1", withPrefix(releases, "6.1")},
		{"one release under --root", gate + testkit.SampleK53[:8], withPrefix(releases, testkit.SampleK53[:8])},
		{"module files", "kabiguard check kabi", withPrefix(modules, "kabi")},
		{"one module file", "kabiguard check kabid", withPrefix(modules, "kabid")},
		{"a directory", "kabiguard check kabis", withPrefix(modules, "kabis")},
	}
}

func withPrefix(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// moduleDir is a directory of the sample's module files, a file that is not a module and a
// directory, all starting with "kabi".
func moduleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(testkit.RepoDir(), "testdata", "sample", "modules", testkit.SampleK50)
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"kabinotes.txt", "kabiold.ko.bak"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "kabisub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// installedScript writes the shipped completion script src (completion/) as name into a new
// directory, with its @SBINDIR@ filled in as make install does, and returns the directory.
func installedScript(t *testing.T, src, name, sbindir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.RepoDir(), "completion", src))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := strings.ReplaceAll(string(data), "@SBINDIR@", sbindir)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The shipped fish completion, found by a real fish where it autoloads vendor completions
// from, offers for each line exactly what the grammar and the sandbox say (`complete -C`
// prints what Tab would offer).
func TestFishCompletion(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Fatal("fish is not installed (.ci/run installs it): ", err)
	}
	bin := filepath.Dir(testkit.BuildBinary(t, "kabiguard"))
	scripts := installedScript(t, "kabiguard.fish", "kabiguard.fish", bin)
	dir := moduleDir(t)
	for _, tc := range completionCases(t, dir) {
		cmd := exec.Command(fish, "--no-config", "-c", "set -g fish_complete_path $argv[1]; complete -C $argv[2]", scripts, tc.line)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: fish: %v\n%s", tc.name, err, out)
			continue
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" {
				got = append(got, w)
			}
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if len(tc.want) == 0 || !slices.Equal(got, tc.want) {
			t.Errorf("%s: fish offers for %q\n%q\nwant %q", tc.name, tc.line, got, tc.want)
		}
	}
}

// The shipped zsh completion, autoloaded by compinit from fpath in a real interactive zsh,
// completes each line when Tab is pressed: a single candidate is put on the line (a
// directory without the space after it), several are listed.
func TestZshCompletion(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Fatal("zsh is not installed (.ci/run installs it): ", err)
	}
	bin := filepath.Dir(testkit.BuildBinary(t, "kabiguard"))
	functions := installedScript(t, "_kabiguard.zsh", "_kabiguard", bin)
	home := t.TempDir()
	rc := "fpath=(" + functions + " $fpath)\nautoload -Uz compinit && compinit -u -D\nPS1='KG> '\n"
	if err := os.WriteFile(filepath.Join(home, ".zshrc"), []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := moduleDir(t)
	term := testkit.StartTerminal(t, "zsh -i", []string{"PATH=" + bin + ":/usr/bin:/bin", "TERM=dumb", "HOME=" + home, "ZDOTDIR=" + home})
	term.Expect("KG> ")
	term.Type("cd " + dir + "\n")
	term.Expect("KG> ")
	for i, tc := range completionCases(t, dir) {
		if len(tc.want) == 0 {
			t.Fatalf("%s: the grammar or sandbox offers nothing for %q", tc.name, tc.line)
		}
		// zsh lists several candidates at the first Tab, or at the second when the first put
		// their common prefix on the line (LIST_AMBIGUOUS).
		if term.Type(tc.line + "\t"); len(tc.want) > 1 {
			term.Type("\t")
		}
		if len(tc.want) == 1 {
			w := tc.want[0]
			if strings.HasSuffix(w, "/") { // typing goes on inside the directory
				term.Type("m")
				w += "m"
			} else {
				w += " "
			}
			term.Expect(w)
		} else {
			term.ExpectAll(tc.want...)
		}
		// ^U discards the line; the shell's answer to an arithmetic expansion (which its
		// echo of the typed line cannot show) says it is ready for the next case.
		term.Type(fmt.Sprintf("\x15echo ready$((%d+1))\n", i))
		term.Expect(fmt.Sprintf("ready%d", i+1))
	}
	term.Type("exit\n")
}
