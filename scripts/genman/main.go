// Command genman renders kabiguard's file-format manual pages (section 5); the commands'
// pages come from the binaries themselves (kabiguard --man, weak-modules --man).
//
//	genman conf etc/kabiguard.conf            kabiguard.conf(5), from the shipped file's comments
//	genman text NAME SECTION FILE.txt         a page from plain text: the first line is the NAME
//	                                          description, "## Title" starts a section
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kabiguard/kabiguard/internal/manpage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "genman: %v\n", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	page, err := pageFor(args)
	if err != nil {
		return err
	}
	return page.Write(os.Stdout, nil)
}

func pageFor(args []string) (*manpage.Page, error) {
	switch {
	case len(args) == 2 && args[0] == "conf":
		return confPage(args[1])
	case len(args) == 4 && args[0] == "text":
		return textPage(args[1], args[2], args[3])
	}
	return nil, fmt.Errorf("usage: genman conf FILE | genman text NAME SECTION FILE")
}

// confPage reads the shipped kabiguard.conf: its first comment block describes the file, and
// each later block of comments followed by a commented-out "key = default" line documents
// that setting. So the file an admin edits and the manual cannot say different things.
func confPage(path string) (*manpage.Page, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var intro, settings strings.Builder
	var comment []string
	inIntro := true
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" && inIntro:
			inIntro = false
		case line == "":
			comment = nil
		case !strings.HasPrefix(line, "#"):
			return nil, fmt.Errorf("%s:%d: an active setting in the shipped file: every default is commented out", path, n)
		case inIntro:
			intro.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
		default:
			text := strings.TrimPrefix(line, "#")
			if key, value, ok := strings.Cut(text, "="); ok && !strings.HasPrefix(text, " ") && len(comment) > 0 {
				fmt.Fprintf(&settings, "%s = %s\n", strings.TrimSpace(key), strings.TrimSpace(value))
				for _, c := range comment {
					settings.WriteString("  " + c + "\n")
				}
				settings.WriteString("\n")
				comment = nil
				continue
			}
			comment = append(comment, strings.TrimPrefix(text, " "))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &manpage.Page{
		Name: "kabiguard.conf", Section: 5, Title: "settings of kabiguard and weak-modules",
		Sections: []manpage.Section{
			{Title: "Synopsis", Body: "/etc/kabiguard/kabiguard.conf"},
			{Title: "Description", Body: intro.String()},
			{Title: "Settings", Body: settings.String()},
			{Title: "See also", Body: "kabiguard(8), weak-modules(8), kabiguard-required(5)"},
		},
	}, nil
}

// textPage reads a page written as plain text.
func textPage(name, section, path string) (*manpage.Page, error) {
	sec, err := strconv.Atoi(section)
	if err != nil {
		return nil, fmt.Errorf("section %q: %w", section, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	title, rest, _ := strings.Cut(string(data), "\n")
	page := &manpage.Page{Name: name, Section: sec, Title: strings.TrimSpace(title)}
	for _, part := range strings.Split("\n"+rest, "\n## ")[1:] {
		head, body, _ := strings.Cut(part, "\n")
		page.Sections = append(page.Sections, manpage.Section{Title: head, Body: body})
	}
	if len(page.Sections) == 0 {
		return nil, fmt.Errorf("%s: no \"## Title\" section", path)
	}
	return page, nil
}
