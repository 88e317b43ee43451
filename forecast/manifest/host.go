package manifest

import (
	"errors"
	"sort"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast"
	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/inventory"
	"github.com/kabiguard/kabiguard/kmod"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Rebuild rebuilds the host's inventory and configuration for forecast.Host.Forecast. Paths
// are the host's own (root /); nothing is read from the machine this runs on.
func (m *Manifest) Rebuild() *forecast.Host {
	h := &forecast.Host{
		Inventory: &inventory.Inventory{Root: "/"},
		Config: &config.Config{Required: m.Config.Required, NeverWeak: m.Config.NeverWeak,
			ShareBuilds: m.Config.ShareBuilds, OnMissingRequired: m.Config.OnMissingRequired},
		Admin:   map[string]map[string]*weakupdates.AdminLink{},
		Headers: map[string]bool{},
		DKMS:    m.DKMS,
	}
	for _, r := range m.Headers {
		h.Headers[r] = true
	}
	for _, k := range m.Kernels {
		t, admin := k.tree()
		h.Inventory.Trees = append(h.Inventory.Trees, t)
		if k.Installed { // as weakupdates.LoadKernels: only a kernel has a plan
			h.Admin[k.Release] = admin
		}
	}
	trees := h.Inventory.Trees
	sort.SliceStable(trees, func(i, j int) bool { return kabi.CompareReleases(trees[i].Release, trees[j].Release) < 0 })
	return h
}

// tree rebuilds the inventory tree of k and the admin's links in it, by module name.
func (k *Kernel) tree() (*inventory.Tree, map[string]*weakupdates.AdminLink) {
	t := &inventory.Tree{Release: k.Release, Dir: k.Dir, Installed: k.Installed, Native: map[string]string{}, Others: k.Others}
	for _, b := range k.Builds {
		ib := &inventory.Build{Path: b.Path, Kernel: k.Release, Sub: b.Sub, Name: b.Name}
		if b.Module != nil {
			ib.Module = b.Module.module(b.Path)
		} else {
			ib.Err = errors.New(b.Error)
		}
		t.Builds = append(t.Builds, ib)
		t.Native[b.Name] = b.Path
	}
	admin := map[string]*weakupdates.AdminLink{}
	for _, l := range k.Links {
		il := &inventory.Link{Path: l.Path, Sub: l.Sub, Target: l.Target, Resolved: l.Resolved, Dangling: l.Dangling, Escapes: l.Escapes}
		t.Links = append(t.Links, il)
		if !l.Admin {
			continue
		}
		a := &weakupdates.AdminLink{Link: il}
		name := kmod.ModuleName(l.Sub)
		if l.Module != nil {
			a.Module = l.Module.module(l.Path)
			if l.Module.Name != "" {
				name = l.Module.Name
			}
		} else {
			a.Err = errors.New(l.Error)
		}
		admin[name] = a
	}
	return t, admin
}
