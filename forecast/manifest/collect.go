package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Collect reads the manifest of the host under root, named host ("" for the root's
// etc/hostname, else this machine's name when root is /). It reads what `kabiguard status`
// reads of the modules, and no kernel's exports: it takes milliseconds.
func Collect(root, host string) (*Manifest, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	r, err := rootfs.At(abs)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(abs)
	if err != nil {
		return nil, err
	}
	inv, err := inventory.Scan(abs)
	if err != nil {
		return nil, err
	}
	c := collector{root: abs, r: r}
	if host == "" {
		host = c.hostname()
	}
	m := &Manifest{Format: Format, Host: host, Root: abs, DKMS: forecast.DKMSBuilds(abs), Headers: c.headers(),
		Config: Config{Required: c.required(cfg.Required), NeverWeak: cfg.NeverWeak, ShareBuilds: cfg.ShareBuilds, OnMissingRequired: cfg.OnMissingRequired}}
	if len(m.DKMS) == 0 {
		m.DKMS = nil
	}
	for _, t := range inv.Trees {
		m.Kernels = append(m.Kernels, c.kernel(inv, t))
	}
	return m, nil
}

// required are the required modules, each named with the file:line (as the host sees it) it
// comes from.
func (c collector) required(rs []config.Required) []config.Required {
	out := make([]config.Required, len(rs))
	for i, r := range rs {
		out[i] = r
		if colon := strings.LastIndex(r.Source, ":"); colon > 0 {
			path, line := r.Source[:colon], r.Source[colon+1:]
			out[i].Source = c.rel(path) + ":" + line
		}
	}
	return out
}

// collector turns an inventory of root into manifest entries.
type collector struct {
	root string
	r    *rootfs.Root
}

// rel is host path p as the host sees it: the root's prefix removed.
func (c collector) rel(p string) string {
	if p == "" || c.root == "/" {
		return p
	}
	if rel, err := filepath.Rel(c.root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return "/" + rel
	}
	return p
}

// text is an error's text with the root's prefix removed from the paths it names.
func (c collector) text(err error) string {
	if c.root == "/" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), c.root+"/", "/")
}

func (c collector) kernel(inv *inventory.Inventory, t *inventory.Tree) Kernel {
	k := Kernel{Release: t.Release, Dir: c.rel(t.Dir), Installed: t.Installed}
	if t.Installed {
		k.Exports = c.exportsSource(t.Release)
	}
	for _, b := range t.Builds {
		mb := Build{Path: c.rel(b.Path), Sub: b.Sub, Name: b.Name}
		if b.Err != nil {
			mb.Error = c.text(b.Err)
		} else {
			mb.Module = fromModule(b.Module)
		}
		k.Builds = append(k.Builds, mb)
	}
	for _, l := range t.Links {
		k.Links = append(k.Links, c.link(inv, l))
	}
	for _, o := range t.Others {
		k.Others = append(k.Others, c.rel(o))
	}
	return k
}

// link describes a weak-updates link; the admin's own (see weakupdates.Managed) carries the
// module behind it, read as the planner reads it.
func (c collector) link(inv *inventory.Inventory, l *inventory.Link) Link {
	ml := Link{Path: c.rel(l.Path), Sub: l.Sub, Target: l.Target, Resolved: c.rel(l.Resolved), Dangling: l.Dangling, Escapes: l.Escapes}
	if l.Dangling || !kmod.IsModule(l.Sub) || weakupdates.Managed(inv.Root, l) {
		return ml
	}
	ml.Admin = true
	raw, err := c.r.ReadFile(l.Path)
	var mod *module.Module
	if err == nil {
		mod, err = module.Parse(l.Path, raw)
	}
	if err != nil {
		ml.Error = c.text(err)
	} else {
		ml.Module = fromModule(mod)
	}
	return ml
}

// exportsSource names where the host reads the exports of an installed kernel: its symvers
// file, else the image they are derived from.
func (c collector) exportsSource(release string) string {
	p, err := symvers.Find(c.root, release)
	var nf *symvers.ErrNotFound
	switch {
	case err == nil:
		return "symvers " + c.rel(p)
	case !errors.As(err, &nf):
		return fmt.Sprintf("unknown: %s", c.text(err))
	}
	img := filepath.Join(c.root, "boot", "vmlinuz-"+release)
	if fi, err := c.r.Stat(img); err == nil && fi.Mode().IsRegular() {
		return "derived from " + c.rel(img) + " and its in-tree modules"
	}
	return "none: no symvers file and no image (undecided)"
}

// headers lists the releases whose headers are installed, as forecast checks them.
func (c collector) headers() []string {
	ents, _ := c.r.ReadDir(filepath.Join(c.root, "usr", "src"))
	var out []string
	for _, e := range ents {
		release, ok := strings.CutPrefix(e.Name(), "linux-headers-")
		if !ok {
			continue
		}
		if fi, err := os.Stat(filepath.Join(c.root, "usr", "src", e.Name())); err == nil && fi.IsDir() {
			out = append(out, release)
		}
	}
	sort.Strings(out)
	return out
}

// hostname is the root's etc/hostname, else (root /) this machine's name.
func (c collector) hostname() string {
	if data, err := c.r.ReadFile(filepath.Join(c.root, "etc", "hostname")); err == nil {
		if h := strings.TrimSpace(string(data)); h != "" {
			return h
		}
	}
	if c.root == "/" {
		if h, err := os.Hostname(); err == nil {
			return h
		}
	}
	return c.root
}
