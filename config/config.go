// Package config reads kabiguard's configuration under a root:
//
//	/etc/kabiguard/kabiguard.conf      settings, "key = value" lines
//	/etc/kabiguard/required.d/*.conf   required modules, "name [early]" lines; packages drop
//	                                   their own file here
//
// Both accept blank lines and # comments. Unknown keys and flags are errors that name the file
// and line: a typo in a boot-critical setting must not pass silently.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// Config is the effective configuration.
type Config struct {
	// NeverWeak lists module names never linked into weak-updates (DKMS's NO_WEAK_MODULES):
	// for modules without a stable kABI contract, such as ZFS on non-RHEL kernels.
	NeverWeak []string
	// ShareBuilds is "series" (default: a build is offered only to kernels of the same
	// major.minor series and flavour as the kernel it was built for) or "any".
	ShareBuilds string
	// OnMissingRequired is "refuse" (default: kernel-install add fails and the kernel gets no
	// boot entry) or "warn" (the reason is printed, the kernel is installed anyway).
	OnMissingRequired string
	// MetricsDir is where link runs keep node_exporter textfile metrics (kabiguard.prom): a
	// directory below the root, "off", or "" (default: refresh the file only where
	// `kabiguard metrics` wrote it, in node_exporter's default directory).
	MetricsDir string
	// Required are the modules every kernel must be able to load, sorted by name.
	Required []Required
}

// Required is one required module.
type Required struct {
	Name   string `json:"name"`
	Early  bool   `json:"early"`  // must also be inside the initramfs
	Source string `json:"source"` // file:line it was declared in
}

// Paths below the root.
const (
	MainFile    = "etc/kabiguard/kabiguard.conf"
	RequiredDir = "etc/kabiguard/required.d"
)

// Default is the configuration with no files present.
func Default() *Config {
	return &Config{ShareBuilds: "series", OnMissingRequired: "refuse"}
}

// Load reads the configuration under root; missing files mean defaults. The files are read
// inside the root (an absolute symlink at etc/kabiguard/kabiguard.conf means a file of the
// root, never of the host) and only if they are regular files (a FIFO never blocks). A root
// that does not exist is an error (rootfs.ErrNoRoot): a mistyped --root must not pass for an
// empty system.
func Load(root string) (*Config, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	c := Default()
	if err := c.loadMain(r, filepath.Join(root, MainFile)); err != nil {
		return nil, err
	}
	if err := c.loadRequired(r, filepath.Join(root, RequiredDir)); err != nil {
		return nil, err
	}
	return c, nil
}

// maxLine bounds a configuration line; a longer one is an error naming the file and line.
const maxLine = 64 << 10

func eachLine(r *rootfs.Root, path string, fn func(line int, text string) error) error {
	f, err := r.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if err := fn(n, text); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: %w: a line is longer than %d KiB", path, n+1, ErrLineTooLong, maxLine>>10)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Settings are the keys kabiguard.conf accepts (each documented in the shipped file, from which
// kabiguard.conf(5) is made).
var Settings = []string{"never_weak", "share_builds", "on_missing_required", "metrics_dir"}

// ErrLineTooLong is wrapped when a configuration line exceeds the bound.
var ErrLineTooLong = errors.New("line too long")

func (c *Config) loadMain(r *rootfs.Root, path string) error {
	err := eachLine(r, path, func(_ int, text string) error {
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("expected key = value, got %q", text)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "never_weak":
			c.NeverWeak = append(c.NeverWeak, strings.Fields(value)...)
		case "share_builds":
			if value != "series" && value != "any" {
				return fmt.Errorf("share_builds must be series or any, not %q", value)
			}
			c.ShareBuilds = value
		case "on_missing_required":
			if value != "refuse" && value != "warn" {
				return fmt.Errorf("on_missing_required must be refuse or warn, not %q", value)
			}
			c.OnMissingRequired = value
		case "metrics_dir":
			if value != "off" && !filepath.IsAbs(value) {
				return fmt.Errorf("metrics_dir must be off or an absolute directory, not %q", value)
			}
			c.MetricsDir = filepath.Clean(value)
		default:
			return fmt.Errorf("unknown setting %q (known: %s)", key, strings.Join(Settings, ", "))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (c *Config) loadRequired(r *rootfs.Root, dir string) error {
	files, err := confFiles(r, dir)
	if err != nil {
		return err
	}
	byName := map[string]*Required{}
	for _, f := range files {
		err := eachLine(r, f, func(line int, text string) error {
			fields := strings.Fields(text)
			if err := checkRequiredLine(text, fields); err != nil { // config/modname.go
				return err
			}
			r := Required{Name: kmod.Normalize(fields[0]), Source: fmt.Sprintf("%s:%d", f, line)}
			for _, flag := range fields[1:] {
				if flag != "early" {
					return fmt.Errorf("unknown flag %q after module %s (known: early)", flag, fields[0])
				}
				r.Early = true
			}
			if old := byName[r.Name]; old != nil {
				old.Early = old.Early || r.Early // declared twice: the stricter wins
				return nil
			}
			byName[r.Name] = &r
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, r := range byName {
		c.Required = append(c.Required, *r)
	}
	sort.Slice(c.Required, func(i, j int) bool { return c.Required[i].Name < c.Required[j].Name })
	return nil
}

// confFiles lists dir/*.conf (dir followed inside the root), sorted; no directory means none.
// Every name is returned, whatever it is: a .conf that is a FIFO or directory is an error when
// read, not a file silently skipped.
func confFiles(r *rootfs.Root, dir string) ([]string, error) {
	ents, err := r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".conf") { // what filepath.Glob("*.conf") matched
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

// RequiredNames is the set of required module names.
func (c *Config) RequiredNames() map[string]Required {
	out := map[string]Required{}
	for _, r := range c.Required {
		out[r.Name] = r
	}
	return out
}
