package kabi

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kabi/exports"
	"github.com/kabiguard/kabiguard/kabi/module"
	"github.com/kabiguard/kabiguard/kabi/symvers"
	"github.com/kabiguard/kabiguard/kmod"
)

// Kernel is what the verdict needs to know about a target kernel.
type Kernel struct {
	Release string // "" when only a symvers file was given
	Dir     string // ROOT/lib/modules/RELEASE, "" when only a symvers file was given
	Symvers *symvers.Table

	// Reference is one in-tree module of the kernel: the source of the vermagic flags and of
	// sizeof(struct module) that the loader compares. nil when the kernel has no modules
	// (then those two checks are reported as skipped, never guessed).
	Reference *module.Module

	// Provenance says where Symvers came from: "symvers PATH", or "exports derived from
	// ROOT/boot/vmlinuz-K and N in-tree modules" when no symvers file is installed.
	Provenance string
}

// SymversPath is the file the kernel's exports were read from.
func (k *Kernel) SymversPath() string { return k.Symvers.Path }

// Name is the release, or the symvers path when the release is unknown.
func (k *Kernel) Name() string {
	if k.Release != "" {
		return k.Release
	}
	return k.Symvers.Path
}

// ErrNoKernel is wrapped when a release has no module directory under the root.
var ErrNoKernel = errors.New("no such kernel")

// LoadKernel loads release under root: its symvers (first found of symvers.Candidates) and a
// reference in-tree module.
func LoadKernel(root, release string) (*Kernel, error) { return loadKernel(root, release, nil) }

// loadKernel is LoadKernel whose symvers table is built for the wanted symbols (nil: all).
func loadKernel(root, release string, wanted map[string]bool) (*Kernel, error) {
	if release == "" || strings.ContainsAny(release, "/\x00") || release == "." || release == ".." {
		return nil, fmt.Errorf("invalid kernel release %q", release)
	}
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	dir := kmod.ModulesDir(root, release)
	if fi, err := r.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoKernel, dir)
	}
	t, prov, err := installedExports(r, root, release, wanted)
	if err != nil {
		return nil, err
	}
	ref, err := findReference(r, dir)
	if err != nil {
		return nil, err
	}
	return &Kernel{Release: release, Dir: dir, Symvers: t, Reference: ref, Provenance: prov}, nil
}

// installedExports reads the kernel's symvers file, or, when none is installed (Debian ships
// Module.symvers only in linux-headers), derives its exports from its image and in-tree
// modules (kabi/exports), which match the headers' file exactly. Only when both fail is the
// kernel undecidable.
func installedExports(r *rootfs.Root, root, release string, wanted map[string]bool) (*symvers.Table, string, error) {
	path, err := symvers.Find(root, release)
	var notFound *symvers.ErrNotFound
	if errors.As(err, &notFound) {
		t, prov, derr := exports.ForKernel(root, release, wanted)
		if derr != nil {
			return nil, "", fmt.Errorf("%w, and its exports cannot be derived from its image: %v", err, derr)
		}
		return t, prov, nil
	}
	if err != nil {
		return nil, "", err
	}
	t, err := symvers.LoadIn(r, path, wanted)
	if err != nil {
		return nil, "", err
	}
	return t, "symvers " + path, nil
}

// KernelFromSymvers makes a target of a bare symvers file: exports only, so the vermagic and
// struct module checks cannot run.
func KernelFromSymvers(path string) (*Kernel, error) { return kernelFromSymvers(path, nil) }

func kernelFromSymvers(path string, wanted map[string]bool) (*Kernel, error) {
	t, err := symvers.LoadWanted(path, wanted)
	if err != nil {
		return nil, err
	}
	return &Kernel{Symvers: t}, nil
}

// findReference returns the first in-tree module under dir/kernel in lexical order, skipping
// files that do not parse (or are no regular files). It reads one module, not the tree, and
// only inside the root.
func findReference(r *rootfs.Root, dir string) (*module.Module, error) {
	var ref *module.Module
	var firstErr error
	tried := 0
	err := r.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !kmod.IsModule(p) {
			return nil
		}
		m, perr := openModule(r, p)
		tried++
		if perr == nil && m.Vermagic != "" {
			ref = m
			return fs.SkipAll
		}
		if firstErr == nil {
			firstErr = perr
		}
		if tried >= 5 {
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ref, nil
}

// openModule parses the module at host path p below root r, opened inside the root.
func openModule(r *rootfs.Root, p string) (*module.Module, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return module.OpenFile(f, p)
}
