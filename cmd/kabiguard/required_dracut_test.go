package main

// The dracut module (dracut/90kabiguard/module-setup.sh) reads required.d in the shell;
// kabiguard reads it with config.Load. Both must accept the same files and see the same
// modules: these tests run the real shell functions and the Go parser over one corpus.

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

// Special contents of a corpus file: a directory, or a symlink to the rest of the string.
const (
	corpusDir  = "\x00dir"
	corpusLink = "\x00link:"
)

// requiredCorpus: the files of required.d and whether they are acceptable. The good ones
// carry the modules both parsers must see ("name" or "name early", sorted).
var requiredCorpus = []struct {
	name  string
	files map[string]string
	want  []string // nil: refused
}{
	{"plain", map[string]string{"a.conf": "kabidemo early\nnpreal2\n"}, []string{"kabidemo early", "npreal2"}},
	{"no files", map[string]string{}, []string{}},
	{"comments and blanks", map[string]string{"a.conf": "# cluster\n\n   \n\t# x\n"}, []string{}},
	{"dash and comment", map[string]string{"a.conf": "kabi-demo early # the storage driver\n"}, []string{"kabi_demo early"}},
	{"comment inside a word", map[string]string{"a.conf": "drbd#early\nnpreal2 ear#ly\n"}, nil},
	{"comment cuts the flag", map[string]string{"a.conf": "drbd#early\n"}, []string{"drbd"}},
	{"crlf", map[string]string{"a.conf": "drbd early\r\nnpreal2\r\n"}, []string{"drbd early", "npreal2"}},
	{"no final newline", map[string]string{"a.conf": "drbd"}, []string{"drbd"}},
	{"tabs and odd spaces", map[string]string{"a.conf": "\tdrbd\tearly\v\n npreal2 \f\nx\r\r\v early\n"}, []string{"drbd early", "npreal2", "x early"}},
	{"unicode space around", map[string]string{"a.conf": "\u00a0drbd early\u3000\n\u2028npreal2\u0085\n"}, []string{"drbd early", "npreal2"}},
	{"early twice", map[string]string{"a.conf": "drbd early early\n"}, []string{"drbd early"}},
	{"declared twice, stricter wins", map[string]string{"a.conf": "drbd\n", "b.conf": "drbd early\nnpreal2\n", "c.conf": "npreal2\n"}, []string{"drbd early", "npreal2"}},
	{"dot file and others", map[string]string{".pkg.conf": "x early\n", "README": "not a module!\n", "a.conf.bak": "*\n"}, []string{"x early"}},
	{"NUL in a comment", map[string]string{"a.conf": "drbd # \x00\n"}, []string{"drbd"}},
	{"link to a file", map[string]string{"real": "drbd early\n", "a.conf": corpusLink + "real"}, []string{"drbd early"}},
	{"path", map[string]string{"a.conf": "../../etc/passwd\n"}, nil},
	{"absolute path", map[string]string{"a.conf": "/lib/modules/x.ko early\n"}, nil},
	{"glob", map[string]string{"a.conf": "*\n"}, nil},
	{"glob flag", map[string]string{"a.conf": "drbd *\n"}, nil},
	{"file name", map[string]string{"a.conf": "drbd.ko\n"}, nil},
	{"option", map[string]string{"a.conf": "-v\n"}, nil},
	{"option 2", map[string]string{"a.conf": "--help early\n"}, nil},
	{"unknown flag", map[string]string{"a.conf": "drbd eraly\n"}, nil},
	{"flag case", map[string]string{"a.conf": "drbd EARLY\n"}, nil},
	{"flag comma", map[string]string{"a.conf": "drbd early,\n"}, nil},
	{"shell", map[string]string{"a.conf": "$(touch${IFS}/tmp/kabiguard-pwned)\n"}, nil},
	{"semicolon", map[string]string{"a.conf": "drbd;true\n"}, nil},
	{"backslash", map[string]string{"a.conf": "drb\\d\n"}, nil},
	{"quote", map[string]string{"a.conf": "'drbd'\n"}, nil},
	{"unicode space inside", map[string]string{"a.conf": "drbd\u00a0early\n"}, nil},
	{"non-ASCII name", map[string]string{"a.conf": "drbdé\n"}, nil},
	{"invalid UTF-8", map[string]string{"a.conf": "drbd \xff\n"}, nil},
	{"NUL in a name", map[string]string{"a.conf": "drbd\x00\n"}, nil},
	{"NUL in a flag", map[string]string{"a.conf": "drbd early\x00\n"}, nil},
	{"control byte", map[string]string{"a.conf": "drbd\x01\n"}, nil},
	{"bad line after good file", map[string]string{"a.conf": "drbd\n", "b.conf": "ok\nnot/ok\n"}, nil},
	{"directory", map[string]string{"a.conf": "drbd\n", "d.conf": corpusDir}, nil},
	{"dangling link", map[string]string{"a.conf": corpusLink + "missing"}, nil},
}

func writeRequired(t *testing.T, files map[string]string) (root string) {
	t.Helper()
	root = t.TempDir()
	dir := filepath.Join(root, "etc", "kabiguard", "required.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		var err error
		switch {
		case content == corpusDir:
			err = os.Mkdir(p, 0o755)
		case strings.HasPrefix(content, corpusLink):
			err = os.Symlink(strings.TrimPrefix(content, corpusLink), p)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// moduleSetup runs a function of the real module-setup.sh in bash, from an empty directory
// full of decoys for a pattern to expand to, with dracut's helpers stubbed: instmods prints
// its arguments one per line.
func moduleSetup(t *testing.T, root, fn string) (stdout, stderr string, code int) {
	t.Helper()
	cwd := t.TempDir()
	for _, decoy := range []string{"decoy1", "decoy2.ko"} {
		os.WriteFile(filepath.Join(cwd, decoy), nil, 0o644)
	}
	script := `derror() { echo "derror: $*" >&2; }
dfatal() { echo "dfatal: $*" >&2; }
instmods() { printf 'instmods %s\n' "$@"; }
. "$1" || exit 99
` + fn
	cmd := exec.Command("bash", "-c", script, "bash", filepath.Join(testkit.RepoDir(), "dracut", "90kabiguard", "module-setup.sh"))
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "KABIGUARD_CONFDIR="+filepath.Join(root, "etc", "kabiguard"), "kernel=6.1.0-test")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// merged folds "name" and "name early" declarations the way config does: once each, early if
// any declaration says so.
func merged(lines []string) []string {
	early := map[string]bool{}
	for _, l := range lines {
		name, flag, _ := strings.Cut(l, " ")
		early[name] = early[name] || flag == "early"
	}
	out := []string{}
	for name, e := range early {
		if e {
			name += " early"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestRequiredParsersAgree: module-setup.sh's kabiguard_required and config.Load accept and
// refuse the same required.d files, see the same modules in the good ones, and name the file
// and line of a bad line; the dracut module installs exactly the early ones, each as one
// argument to instmods, and installs nothing when required.d is bad.
func TestRequiredParsersAgree(t *testing.T) {
	os.Remove("/tmp/kabiguard-pwned")
	for _, c := range requiredCorpus {
		t.Run(c.name, func(t *testing.T) {
			root := writeRequired(t, c.files)
			var goGot []string
			cfg, goErr := config.Load(root)
			if goErr == nil {
				goGot = []string{}
				for _, r := range cfg.Required {
					if r.Early {
						r.Name += " early"
					}
					goGot = append(goGot, r.Name)
				}
			}
			out, stderr, code := moduleSetup(t, root, "kabiguard_required")
			var shGot []string
			if code == 0 {
				shGot = merged(strings.Split(strings.TrimSpace(out), "\n"))
				if strings.TrimSpace(out) == "" {
					shGot = []string{}
				}
			}
			switch {
			case (goGot == nil) != (shGot == nil):
				t.Fatalf("config.Load: %v %v\nmodule-setup.sh: exit %d %q %s", goGot, goErr, code, out, stderr)
			case strings.Join(goGot, ",") != strings.Join(shGot, ","):
				t.Fatalf("config.Load sees %q, module-setup.sh %q", goGot, shGot)
			case (c.want == nil) != (goGot == nil) || strings.Join(c.want, ",") != strings.Join(goGot, ","):
				t.Fatalf("both see %q (%v), want %q", goGot, goErr, c.want)
			}
			if c.want == nil {
				if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, filepath.Join(root, "etc", "kabiguard", "required.d")+"/") {
					t.Errorf("module-setup.sh: want one line naming the file, got %q", stderr)
				}
				if !strings.Contains(goErr.Error(), filepath.Join(root, "etc", "kabiguard", "required.d")+"/") {
					t.Errorf("config.Load: the error names no file: %v", goErr)
				}
			}

			// installkernel hands instmods the early modules, one argument each, or fails.
			out, stderr, code = moduleSetup(t, root, "installkernel")
			var want []string
			for _, m := range c.want {
				if name, ok := strings.CutSuffix(m, " early"); ok {
					want = append(want, "instmods "+name)
				}
			}
			if len(want) > 0 {
				want = append([]string{"instmods -c"}, want...)
			}
			got := strings.Split(strings.TrimSpace(out), "\n")
			if out == "" {
				got = nil
			}
			switch {
			case c.want == nil && (code == 0 || out != "" || !strings.Contains(stderr, "derror: kabiguard: required.d cannot be read")):
				t.Errorf("installkernel on a bad required.d: exit %d %q %q", code, out, stderr)
			case c.want != nil && (code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n")):
				t.Errorf("installkernel: exit %d\n%s\nwant\n%s\n%s", code, out, strings.Join(want, "\n"), stderr)
			}
		})
	}
	if _, err := os.Stat("/tmp/kabiguard-pwned"); err == nil {
		t.Fatalf("a line of required.d ran a command")
	}
}
