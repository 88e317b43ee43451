package main

import (
	"bufio"
	"fmt"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
)

type symbolsCmd struct {
	JSON    bool     `help:"Print JSON: [{module, name, extended, symbols: [{symbol, crc}]}]."`
	Modules []string `arg:"" name:"module" help:"Module files (.ko, .ko.gz, .ko.xz, .ko.zst)." type:"path"`
}

func (symbolsCmd) Help() string {
	return `Prints one line per symbol version in the module, "0x%08x<TAB>symbol", in the
module's own order, exactly as 'modprobe --dump-modversions' does, so the two can be
diffed. Modules with extended modversions (Linux 6.14+) print the extended table, which
is the one the loader checks. With several modules, each block starts with "# PATH".
A module without symbol versions (no __versions section, built without CONFIG_MODVERSIONS)
is named on stderr and the exit status is 1, as modprobe's "could not get modversions".

Example:
  kabiguard symbols /lib/modules/$(uname -r)/extra/drbd.ko.xz
  diff <(kabiguard symbols drbd.ko) <(modprobe --dump-modversions drbd.ko)`
}

type symbolsJSON struct {
	Module   string          `json:"module"`
	Name     string          `json:"name"`
	Extended bool            `json:"extended"`
	Symbols  []symbolVersion `json:"symbols"`
}

type symbolVersion struct {
	Symbol string `json:"symbol"`
	CRC    string `json:"crc"`
}

func (c *symbolsCmd) Run(e *env) error {
	mods := make([]*module.Module, 0, len(c.Modules))
	for _, p := range c.Modules {
		m, err := module.Open(p)
		if err != nil {
			return err
		}
		mods = append(mods, m)
	}
	if err := c.print(e, mods); err != nil {
		return err
	}
	return reportUnversioned(e, mods)
}

func (c *symbolsCmd) print(e *env, mods []*module.Module) error {
	if c.JSON {
		out := make([]symbolsJSON, 0, len(mods))
		for _, m := range mods {
			j := symbolsJSON{Module: m.Path, Name: m.Name, Extended: m.ExtVersions != nil, Symbols: []symbolVersion{}}
			for _, s := range m.Modversions() {
				j.Symbols = append(j.Symbols, symbolVersion{s.Name, kabi.FormatCRC(s.CRC)})
			}
			out = append(out, j)
		}
		return writeJSON(e.stdout, out)
	}
	w := bufio.NewWriter(e.stdout)
	for _, m := range mods {
		if len(mods) > 1 {
			fmt.Fprintf(w, "# %s\n", m.Path)
		}
		for _, s := range m.Modversions() {
			fmt.Fprintf(w, "0x%08x\t%s\n", s.CRC, s.Name)
		}
	}
	return w.Flush()
}

// reportUnversioned names, on stderr, each module that has no symbol version table at all,
// and then fails with exit 1: modprobe --dump-modversions exits 1 with "could not get
// modversions" on such a module, where an empty table prints nothing and succeeds. Printing
// nothing and exiting 0 would read as "depends on no versioned symbol".
func reportUnversioned(e *env, mods []*module.Module) error {
	none := false
	for _, m := range mods {
		if m.Versions == nil && m.ExtVersions == nil {
			fmt.Fprintf(e.stderr, "kabiguard: could not get modversions of %s: it has no symbol versions (no __versions section; built without CONFIG_MODVERSIONS?)\n", m.Path)
			none = true
		}
	}
	if none {
		return problemError{}
	}
	return nil
}
