package exports

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kabi/symvers"
)

// elfRoot is imageRoot with the kernel's image replaced by the vmlinux ELF inside it, which
// Decode takes as it is: the tests below derive many times without decompressing each time.
func elfRoot(t *testing.T, k *testkit.Kernel) string {
	t.Helper()
	root := testkit.ImageRoot(t, k)
	p := filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := os.WriteFile(p, img.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// Symbols of 6.1 exported by in-tree modules (drm, usb-storage) and by vmlinux.
const (
	modSym   = "drm_dev_register"
	nsSym    = "usb_stor_sense_invalidCDB" // namespace USB_STORAGE
	otherSym = "ata_scsi_ioctl"            // libata: not wanted below
	coreSym  = "_printk"
)

func headersExport(t *testing.T, k *testkit.Kernel, name string) symvers.Export {
	t.Helper()
	s, err := symvers.Load(k.Symvers)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := s.Exports[name]
	if !ok {
		t.Fatalf("%s is not in %s", name, k.Symvers)
	}
	return e
}

// TestWantedReadsOnlyTheOwningModules: asked for a few symbols, ForKernel reads vmlinux and
// only the modules modules.symbols names for them; a lookup of a name not asked for still
// finds it, read then.
func TestWantedReadsOnlyTheOwningModules(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	root := elfRoot(t, k)
	wanted := map[string]bool{modSym: true, nsSym: true, coreSym: true}
	tab, prov, err := ForKernel(root, k.Release, wanted)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("exports derived from %s and 2 in-tree modules", filepath.Join(root, "boot", "vmlinuz-"+k.Release))
	if prov != want {
		t.Errorf("provenance %q, want %q", prov, want)
	}
	if _, ok := tab.Exports[otherSym]; ok {
		t.Errorf("%s, not wanted, was read with the wanted ones", otherSym)
	}
	for _, name := range []string{modSym, nsSym, coreSym, otherSym} {
		got, ok := tab.Lookup(name)
		if w := headersExport(t, k, name); !ok || got != w {
			t.Errorf("Lookup(%s) = %+v, %v; Module.symvers has %+v", name, got, ok, w)
		}
	}
	if e, ok := tab.Lookup("no_such_symbol_anywhere"); ok {
		t.Errorf("Lookup of a symbol nobody exports found %+v", e)
	}
}

// forge rewrites the CRC of name in the cache at path to crc, with a valid checksum, so that
// only the cache's own checks (sources) can reject it.
func forge(t *testing.T, path, name string, crc uint32, fixSum bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	found := false
	for i, l := range lines {
		if f := strings.Split(l, "\t"); len(f) == 5 && f[1] == name {
			f[0] = fmt.Sprintf("0x%08x", crc)
			lines[i] = strings.Join(f, "\t")
			found = true
		}
	}
	if !found {
		t.Fatalf("%s is not in the cache %s", name, path)
	}
	if fixSum {
		rest := strings.Join(lines[2:], "\n")
		sum := sha256.Sum256([]byte(rest))
		lines[1] = "# sum " + hex.EncodeToString(sum[:])
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCacheIsUsedOnlyWhileValid: a second derivation reads the cache (a forged CRC with a
// valid checksum comes back: the cache was used); a corrupt cache, or one whose source files
// changed (a module or vmlinuz replaced), is ignored and the true CRC derived again.
func TestCacheIsUsedOnlyWhileValid(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	root := elfRoot(t, k)
	wanted := map[string]bool{modSym: true}
	truth := headersExport(t, k, modSym)
	cache := CachePath(root, k.Release)
	derive := func() symvers.Export {
		t.Helper()
		tab, _, err := ForKernel(root, k.Release, wanted)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := tab.Lookup(modSym)
		return e
	}
	if got := derive(); got != truth {
		t.Fatalf("first derivation: %+v, want %+v", got, truth)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	forged := truth.CRC ^ 0xdeadbeef

	forge(t, cache, modSym, forged, true)
	if got := derive(); got.CRC != forged {
		t.Fatalf("a valid cache was not used: CRC %#x, the forged one is %#x", got.CRC, forged)
	}

	forge(t, cache, modSym, forged+1, false) // a byte changed, the checksum not
	if got := derive(); got != truth {
		t.Errorf("corrupt cache trusted: %+v, want %+v", got, truth)
	}

	forge(t, cache, modSym, forged, true)
	drm := filepath.Join(root, "lib", "modules", k.Release, "kernel", "drivers", "gpu", "drm", "drm.ko")
	replace(t, drm) // a hard link into the test cache: never touched in place
	if got := derive(); got != truth {
		t.Errorf("stale cache (module replaced) trusted: %+v, want %+v", got, truth)
	}

	forge(t, cache, modSym, forged, true)
	replace(t, filepath.Join(root, "boot", "vmlinuz-"+k.Release))
	if got := derive(); got != truth {
		t.Errorf("stale cache (vmlinuz replaced) trusted: %+v, want %+v", got, truth)
	}

	if err := os.WriteFile(cache, bytes.Repeat([]byte("garbage\n"), 10), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := derive(); got != truth {
		t.Errorf("garbage cache: %+v, want %+v", got, truth)
	}
}

// replace gives p a new inode with the same content, as a package upgrade does.
func replace(t *testing.T, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWithoutModulesSymbolsEveryModuleIsRead: before depmod has run there is no
// modules.symbols to say which module exports what, so every in-tree module is read.
func TestWithoutModulesSymbolsEveryModuleIsRead(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	root := elfRoot(t, k)
	dir := filepath.Join(root, "lib", "modules", k.Release)
	if err := os.Remove(filepath.Join(dir, "modules.symbols")); err != nil {
		t.Fatal(err)
	}
	n := 0
	filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			n++
		}
		return err
	})
	tab, prov, err := ForKernel(root, k.Release, map[string]bool{modSym: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(" and %d in-tree modules", n); !strings.HasSuffix(prov, want) {
		t.Errorf("provenance %q; want it to end in %q", prov, want)
	}
	if got, w := tab.Exports[otherSym], headersExport(t, k, otherSym); got != w {
		t.Errorf("%s: %+v, Module.symvers %+v", otherSym, got, w)
	}
}

// TestUnreadableModulesGiveOneLine: in-tree modules that cannot be read fail the derivation
// (their exports are unknown) with one line naming the first of them.
func TestUnreadableModulesGiveOneLine(t *testing.T) {
	k := testkit.FetchKernel(t, "6.1.0-55")
	root := elfRoot(t, k)
	kdir := filepath.Join(root, "lib", "modules", k.Release, "kernel")
	var bad []string
	for _, name := range []string{"aaa-broken.ko", "zzz-broken.ko.xz"} {
		p := filepath.Join(kdir, name)
		if err := os.WriteFile(p, []byte("not a module"), 0o644); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, p)
	}
	_, _, err := ForKernel(root, k.Release, nil)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), bad[0]) ||
		!strings.Contains(err.Error(), "1 more") {
		t.Fatalf("error %q; want one line naming %s and counting the other", err, bad[0])
	}
}
