package manpage

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Page is one manual page.
type Page struct {
	Name    string // "kabiguard"
	Section int    // 8 for system administration commands, 5 for file formats
	Title   string // the NAME line's description
	Version string // shown in the footer: "kabiguard 1.2"
	// Sections follow the generated ones, in order; Body is plain text (see Text).
	Sections []Section
}

// Section is one .SH section of plain text.
type Section struct {
	Title string
	Body  string
}

// Write renders p, with the SYNOPSIS, DESCRIPTION, COMMANDS and OPTIONS that model (may be
// nil for a page without a command, such as a file format's) describes.
func (p *Page) Write(w io.Writer, model *kong.Application) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, ".TH %s %d %s %s %s\n", quote(strings.ToUpper(p.Name)), p.Section, quote(date()), quote(p.Version), quote(manual(p.Section)))
	fmt.Fprintf(bw, ".SH NAME\n%s \\- %s\n", escape(p.Name), escape(p.Title))
	if model != nil {
		writeCommand(bw, model.Node)
	}
	for _, s := range p.Sections {
		fmt.Fprintf(bw, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		Text(bw, s.Body)
	}
	return bw.Flush()
}

// writeCommand writes the sections a command's grammar gives.
func writeCommand(w io.Writer, app *kong.Node) {
	fmt.Fprintf(w, ".SH SYNOPSIS\n")
	cmds := commands(app)
	if len(cmds) == 0 {
		fmt.Fprintf(w, "%s\n", synopsis(app))
	}
	for _, c := range cmds {
		if runnable(c) {
			fmt.Fprintf(w, "%s\n.br\n", synopsis(c))
		}
	}
	fmt.Fprintf(w, ".SH DESCRIPTION\n")
	Text(w, join(app.Help, app.Detail))
	if flags := visibleFlags(app); len(flags) > 0 || len(app.Positional) > 0 {
		fmt.Fprintf(w, ".SH OPTIONS\n")
		writeArgs(w, app)
		writeFlags(w, flags)
	}
	if len(cmds) == 0 {
		return
	}
	fmt.Fprintf(w, ".SH COMMANDS\n")
	for _, c := range cmds {
		fmt.Fprintf(w, ".SS %s\n", quote(c.FullPath()))
		Text(w, join(c.Help, c.Detail))
		writeArgs(w, c)
		writeFlags(w, visibleFlags(c))
	}
}

// commands lists every visible command below n, depth first in grammar order: a group such
// as "kabiguard hook" has its own text before its subcommands'.
func commands(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range n.Children {
		if !c.Hidden && c.Type == kong.CommandNode {
			out = append(out, c)
			out = append(out, commands(c)...)
		}
	}
	return out
}

// runnable reports whether c can be run itself (not only through a subcommand).
func runnable(c *kong.Node) bool {
	for _, ch := range c.Children {
		if !ch.Hidden && ch.Type == kong.CommandNode {
			return c.DefaultCmd != nil
		}
	}
	return true
}

// synopsis is a command's usage line: bold words, italic placeholders.
func synopsis(n *kong.Node) string {
	s := bold(n.FullPath())
	if len(visibleFlags(n)) > 0 {
		s += " [\\fIOPTIONS\\fR]"
	}
	for _, p := range n.Positional {
		arg := italic(strings.ToUpper(p.Name))
		if !p.Required {
			arg = "[" + arg + "]"
		}
		if p.IsCumulative() {
			arg += "..."
		}
		s += " " + arg
	}
	return s
}

func writeArgs(w io.Writer, n *kong.Node) {
	for _, p := range n.Positional {
		if p.Help == "" {
			continue
		}
		fmt.Fprintf(w, ".TP\n%s\n", italic(strings.ToUpper(p.Name)))
		Text(w, p.Help)
	}
}

// visibleFlags are n's own flags (not its parents'), hidden ones and --help left out.
func visibleFlags(n *kong.Node) []*kong.Flag {
	var out []*kong.Flag
	for _, f := range n.Flags {
		if !f.Hidden && f.Name != "help" {
			out = append(out, f)
		}
	}
	return out
}

func writeFlags(w io.Writer, flags []*kong.Flag) {
	for _, f := range flags {
		head := bold("--" + f.Name)
		if f.Short != 0 {
			head = bold("-"+string(f.Short)) + ", " + head
		}
		if !f.IsBool() && !f.IsCounter() {
			head += "=" + italic(f.FormatPlaceHolder())
		}
		fmt.Fprintf(w, ".TP\n%s\n", head)
		help := f.Help
		if f.HasDefault && f.Default != "" && !f.IsBool() {
			help += " (default: " + f.Default + ")"
		}
		Text(w, help)
	}
}

// Text writes plain text as roff. Paragraphs are separated by blank lines. A paragraph of one
// unindented line followed by indented lines is a definition (the line a term, the rest its
// filled description: FILES, settings, flags); otherwise unindented lines are filled and
// lines that start with two spaces (examples, tables) are kept as they are.
func Text(w io.Writer, text string) {
	for i, para := range paragraphs(text) {
		if i > 0 && !isDefinition(para) {
			fmt.Fprint(w, ".PP\n")
		}
		if isDefinition(para) {
			fmt.Fprintf(w, ".TP\n%s\n", escapeLine(para[0]))
			for _, line := range para[1:] {
				fmt.Fprintln(w, escapeLine(strings.TrimSpace(line)))
			}
			continue
		}
		pre := false
		for _, line := range para {
			indented := strings.HasPrefix(line, "  ")
			switch {
			case indented && !pre:
				fmt.Fprint(w, ".nf\n.RS 4\n")
			case !indented && pre:
				fmt.Fprint(w, ".RE\n.fi\n")
			}
			pre = indented
			fmt.Fprintln(w, escapeLine(strings.TrimPrefix(line, "  ")))
		}
		if pre {
			fmt.Fprint(w, ".RE\n.fi\n")
		}
	}
}

// paragraphs splits text at blank lines, trailing spaces removed.
func paragraphs(text string) [][]string {
	var out [][]string
	var cur []string
	for _, line := range strings.Split(strings.Trim(text, "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			if cur != nil {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

func isDefinition(para []string) bool {
	if len(para) < 2 || strings.HasPrefix(para[0], " ") {
		return false
	}
	for _, line := range para[1:] {
		if !strings.HasPrefix(line, "  ") {
			return false
		}
	}
	return true
}

func join(a, b string) string {
	if b == "" || b == a {
		return a
	}
	if a == "" {
		return b
	}
	return a + "\n\n" + b
}

// escape makes text safe inside a roff line: backslashes and hyphens (a hyphen is \- so that
// options copy and paste as ASCII).
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// escapeLine is escape for a whole output line: a line starting with '.' or '\” would be a
// request.
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func bold(s string) string   { return `\fB` + escape(s) + `\fR` }
func italic(s string) string { return `\fI` + escape(s) + `\fR` }

// quote makes s one argument of a request.
func quote(s string) string { return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"` }

func manual(section int) string {
	switch section {
	case 5:
		return "File Formats"
	case 8:
		return "System Administration"
	}
	return "kabiguard"
}

// date is the page's date: SOURCE_DATE_EPOCH when set (reproducible builds), else none, so
// the same grammar always renders the same page.
func date() string {
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(s, 0).UTC().Format("2006-01-02")
	}
	return ""
}

// Flag is a hidden --man flag for a kong grammar: it prints the page bound with
// kong.Bind(&page) for the grammar it is part of, and exits 0.
type Flag bool

// BeforeReset is kong's hook: it runs before anything else is parsed or validated.
// The footer names the grammar's version variable when the page has none.
func (Flag) BeforeReset(app *kong.Kong, vars kong.Vars, p *Page) error {
	page := *p
	if page.Version == "" && vars["version"] != "" {
		page.Version = p.Name + " " + vars["version"]
	}
	if err := page.Write(app.Stdout, app.Model); err != nil {
		return err
	}
	app.Exit(0)
	return nil
}
