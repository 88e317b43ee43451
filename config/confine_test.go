package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
)

func load(t *testing.T, root string) (*Config, error) {
	t.Helper()
	type out struct {
		c   *Config
		err error
	}
	o := testkit.WithDeadline(t, 10*time.Second, "config.Load", func() out {
		c, err := Load(root)
		return out{c, err}
	})
	return o.c, o.err
}

// Finding 1: an absolute symlink at kabiguard.conf or in required.d means a file of the root,
// never the host's (which here would set warn, require a module, or, with a garbage first line,
// be printed in the error).
func TestConfigSymlinkReadInsideRoot(t *testing.T) {
	root := t.TempDir()
	dec := testkit.NewDecoys(t)
	main := dec.Write(t, "kabiguard.conf", "on_missing_required = warn\n")
	req := dec.Write(t, "host.conf", "hostmodule early\n")
	secret := dec.Write(t, "secret", "root:SECRET-HASH:0:0\n")
	dec.Seal(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, RequiredDir), 0o755))
	must(os.Symlink(main, filepath.Join(root, MainFile)))
	must(os.Symlink(req, filepath.Join(root, RequiredDir, "host.conf")))
	c, err := load(t, root)
	if err == nil {
		t.Fatalf("a required.d link to a file the root lacks: %+v, want an error", c)
	}
	if strings.Contains(err.Error(), "hostmodule") {
		t.Fatalf("the host's file was read: %v", err)
	}
	must(os.Remove(filepath.Join(root, RequiredDir, "host.conf")))
	c, err = load(t, root)
	if err != nil {
		t.Fatal(err)
	}
	if c.OnMissingRequired != "refuse" || len(c.Required) != 0 {
		t.Fatalf("the host's files were read: %+v", c)
	}
	must(os.Remove(filepath.Join(root, MainFile)))
	must(os.Symlink(secret, filepath.Join(root, MainFile)))
	if _, err := load(t, root); err != nil && strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("the host's file was read and printed: %v", err)
	}
	// Inside the root the same absolute link is followed.
	write(t, root, strings.TrimPrefix(main, "/"), "on_missing_required = warn\n")
	must(os.Remove(filepath.Join(root, MainFile)))
	must(os.Symlink(main, filepath.Join(root, MainFile)))
	if c, err := load(t, root); err != nil || c.OnMissingRequired != "warn" {
		t.Fatalf("an absolute link within the root: %+v %v", c, err)
	}
	dec.Unchanged(t)
}

// Finding 8: a FIFO or a directory as a configuration file is an error naming it, at once.
func TestConfigNonRegularFile(t *testing.T) {
	for _, at := range []string{MainFile, RequiredDir + "/fifo.conf"} {
		root := t.TempDir()
		p := filepath.Join(root, at)
		testkit.Mkfifo(t, p)
		_, err := load(t, root)
		if !errors.Is(err, rootfs.ErrNotRegular) || !strings.Contains(err.Error(), p) {
			t.Errorf("FIFO %s: %v, want %v naming it", at, err, rootfs.ErrNotRegular)
		}
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, MainFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, root); !errors.Is(err, rootfs.ErrNotRegular) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory as kabiguard.conf: %v", err)
	}
}

// Finding 13: a line over 64 KiB is an error naming the file and the line.
func TestConfigLongLine(t *testing.T) {
	root := t.TempDir()
	write(t, root, RequiredDir+"/long.conf", "kabidemo\n# "+strings.Repeat("x", 70<<10)+"\n")
	_, err := load(t, root)
	want := filepath.Join(root, RequiredDir, "long.conf") + ":2:"
	if !errors.Is(err, ErrLineTooLong) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("long line: %v, want %q and %v", err, want, ErrLineTooLong)
	}
	if strings.Contains(err.Error(), "bufio") {
		t.Errorf("long line: %v", err)
	}
}

// Finding 13: a mistyped root is an error, never a system with defaults.
func TestConfigMistypedRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nope")
	if _, err := Load(root); !errors.Is(err, rootfs.ErrNoRoot) {
		t.Fatalf("Load: %v, want %v", err, rootfs.ErrNoRoot)
	}
}
