// Package completion answers shell completion requests for a kong grammar: the shipped bash,
// zsh and fish scripts run the command itself with COMP_LINE (and COMP_POINT) set, and it
// prints the candidates. Subcommands and flags come from the grammar, so completion never
// lags behind it; values are predicted from each flag's or argument's placeholder: RELEASE
// completes the kernel releases under /lib/modules, MODULE module files (named by kmod's
// rule), DIR directories, IMAGE and FILE files, an enum its values.
//
// The protocol and matching are github.com/posener/complete's (v1), which the scripts speak.
package completion

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/posener/complete"
)

// Requested reports whether the process was started by a shell to complete a command line.
func Requested() bool { return os.Getenv("COMP_LINE") != "" }

// Answer prints the candidates for the command line in COMP_LINE to out, for the grammar of
// parser. It returns false when no completion was requested.
func Answer(parser *kong.Kong, out io.Writer) bool {
	c := complete.New(parser.Model.Name, command(parser.Model.Node))
	c.Out = out
	return c.Complete()
}

// command converts one node of the grammar.
func command(n *kong.Node) complete.Command {
	cmd := complete.Command{Sub: complete.Commands{}, Flags: complete.Flags{}}
	for _, ch := range n.Children {
		if !ch.Hidden && ch.Type == kong.CommandNode {
			cmd.Sub[ch.Name] = command(ch)
		}
	}
	// A command accepts its ancestors' flags too (kong: --help, --version after a command).
	for _, f := range slices.Concat(n.AllFlags(true)...) {
		p := complete.PredictNothing
		if !f.IsBool() && !f.IsCounter() {
			p = predictor(f.Value, f.FormatPlaceHolder())
		}
		cmd.Flags["--"+f.Name] = p
		if f.Short != 0 {
			cmd.Flags["-"+string(f.Short)] = p
		}
	}
	var args []complete.Predictor
	for _, p := range n.Positional {
		args = append(args, predictor(p, strings.ToUpper(p.Name)))
	}
	if len(args) > 0 {
		cmd.Args = complete.PredictOr(args...)
	}
	return cmd
}

// predictor picks what to offer for a value from its enum or placeholder.
func predictor(v *kong.Value, placeholder string) complete.Predictor {
	if v.Enum != "" {
		var set []string
		for k := range v.EnumMap() {
			set = append(set, k)
		}
		sort.Strings(set)
		return complete.PredictSet(set...)
	}
	switch strings.TrimSuffix(placeholder, ",...") {
	case "RELEASE", "KERNEL":
		return complete.PredictFunc(releases)
	case "MODULE":
		return complete.PredictFunc(modules)
	case "DIR":
		return complete.PredictDirs("*")
	case "IMAGE", "FILE", "PATH", "PACKAGE":
		return complete.PredictFiles("*")
	}
	return complete.PredictNothing
}

// modules are the module files (named by kmod's rule: .ko, .ko.gz, .ko.xz, .ko.zst) and
// the directories, to descend into, that match the word being completed.
func modules(a complete.Args) []string {
	var out []string
	for _, f := range complete.PredictFiles("*").Predict(a) {
		if strings.HasSuffix(f, "/") || kmod.IsModule(f) {
			out = append(out, f)
		}
	}
	return out
}

// releases are the kernel release directories under ROOT/lib/modules, ROOT the value of a
// --root (kabiguard) or --basedir (weak-modules) already on the line, else /.
func releases(a complete.Args) []string {
	ents, err := os.ReadDir(filepath.Join(rootOf(a.Completed), "lib", "modules"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func rootOf(words []string) string {
	root := "/"
	for i, w := range words {
		for _, flag := range []string{"--root", "--basedir"} {
			if v, ok := strings.CutPrefix(w, flag+"="); ok {
				root = v
			} else if w == flag && i+1 < len(words) {
				root = words[i+1]
			}
		}
	}
	return root
}
