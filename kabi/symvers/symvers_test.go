package symvers

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Lines in each layout modpost has written, for the same three exports.
var layouts = map[string]string{
	"5.6+ (namespace last)": "0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n" +
		"0x1bc3edc2\tusb_stor_sense_invalidCDB\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL\tUSB_STORAGE\n" +
		"0x037a0cba\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n",
	"5.4 (namespace third)": "0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\n" +
		"0x1bc3edc2\tusb_stor_sense_invalidCDB\tUSB_STORAGE\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL\n" +
		"0x037a0cba\tkfree\tvmlinux\tEXPORT_SYMBOL\n",
	"4 columns": "0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\n" +
		"0x1bc3edc2\tusb_stor_sense_invalidCDB\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL\n" +
		"0x037a0cba\tkfree\tvmlinux\tEXPORT_SYMBOL\n",
	"3 columns": "0x9060323f\tmodule_layout\tvmlinux\n" +
		"0x1bc3edc2\tusb_stor_sense_invalidCDB\tdrivers/usb/storage/usb-storage\n" +
		"0x037a0cba\tkfree\tvmlinux\n",
}

func TestParseLayouts(t *testing.T) {
	for name, text := range layouts {
		t.Run(name, func(t *testing.T) {
			tab, err := Parse("test", strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.Exports) != 3 {
				t.Fatalf("got %d exports, want 3", len(tab.Exports))
			}
			e, ok := tab.Lookup("usb_stor_sense_invalidCDB")
			if !ok || e.CRC != 0x1bc3edc2 || e.Module != "drivers/usb/storage/usb-storage" {
				t.Fatalf("usb_stor_sense_invalidCDB = %+v, %v", e, ok)
			}
			hasKind := name != "3 columns"
			if hasKind && !e.GPLOnly {
				t.Errorf("EXPORT_SYMBOL_GPL not recognised as GPL-only")
			}
			hasNS := strings.Contains(name, "namespace")
			if hasNS && e.Namespace != "USB_STORAGE" || !hasNS && e.Namespace != "" {
				t.Errorf("namespace = %q", e.Namespace)
			}
			if k, _ := tab.Lookup("kfree"); k.CRC != 0x037a0cba || k.GPLOnly || k.Module != "vmlinux" {
				t.Errorf("kfree = %+v", k)
			}
		})
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	for name, text := range map[string]string{
		"bad crc":      "0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\nzz\tkfree\tvmlinux\tEXPORT_SYMBOL\t\n",
		"no 0x":        "9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n",
		"two fields":   "0x9060323f\tmodule_layout\n",
		"six fields":   "0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\textra\n",
		"bad kind":     "0x9060323f\tmodule_layout\tvmlinux\tSYMBOL\t\n",
		"empty":        "",
		"spaces only":  "\n \n",
		"empty symbol": "0x9060323f\t\tvmlinux\tEXPORT_SYMBOL\t\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("/x/Module.symvers", strings.NewReader(text))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "/x/Module.symvers") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q does not name the file on one line", err)
			}
		})
	}
}

// TestLoadCompressed compresses a symvers with the real gzip, xz and zstd tools, as RHEL's
// kernel.spec and CachyOS do, and reads each back.
func TestLoadCompressed(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "Module.symvers")
	if err := os.WriteFile(plain, []byte(layouts["5.6+ (namespace last)"]), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tool := range [][]string{{"gzip", "-9"}, {"xz", "--check=crc32"}, {"xz"}, {"zstd", "-q", "-19"}} {
		out := filepath.Join(dir, strings.Join(tool, "")+".symvers")
		cmd := exec.Command(tool[0], append(tool[1:], "-c", plain)...)
		data, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", tool, err)
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := Load(out)
		if err != nil {
			t.Fatalf("%v: %v", tool, err)
		}
		if e, _ := tab.Lookup("module_layout"); e.CRC != 0x9060323f || tab.Path != out {
			t.Fatalf("%v: module_layout = %+v, path %s", tool, e, tab.Path)
		}
	}
	// A truncated xz file is an error naming the file, not a short table.
	data, _ := exec.Command("xz", "-c", plain).Output()
	bad := filepath.Join(dir, "truncated.xz")
	os.WriteFile(bad, data[:len(data)/2], 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("truncated xz: err = %v", err)
	}
}

func TestFindSearchOrder(t *testing.T) {
	root := t.TempDir()
	const rel = "6.1.0-54-amd64"
	if _, err := Find(root, rel); err == nil {
		t.Fatal("found a symvers in an empty root")
	} else {
		var nf *ErrNotFound
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), rel) {
			t.Fatalf("err = %v", err)
		}
	}
	// Create every candidate from last to first; Find must always return the earliest.
	c := Candidates(root, rel)
	for i := len(c) - 1; i >= 0; i-- {
		if err := os.MkdirAll(filepath.Dir(c[i]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c[i], nil, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Find(root, rel)
		if err != nil || got != c[i] {
			t.Fatalf("after creating %s: Find = %s, %v", c[i], got, err)
		}
	}
	for _, want := range []string{"boot/symvers-" + rel + ".xz", "usr/src/linux-headers-" + rel + "/Module.symvers"} {
		found := false
		for _, p := range c {
			found = found || p == filepath.Join(root, want)
		}
		if !found {
			t.Errorf("candidates lack %s", want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, text := range layouts {
		f.Add([]byte(text))
	}
	f.Add([]byte("0x0\tx\ty\tEXPORT_SYMBOL_GPL\tNS\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse("fuzz", bytes.NewReader(data))
		if (err == nil) == (tab == nil) {
			t.Fatalf("err = %v, table = %v", err, tab)
		}
		if err == nil && len(tab.Exports) == 0 {
			t.Fatal("a table without exports was accepted")
		}
	})
}

// A table loaded for some names holds those alone, yet answers any lookup as the whole
// table does; every line is still checked.
func TestLoadWanted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Module.symvers")
	if err := os.WriteFile(path, []byte(layouts["5.6+ (namespace last)"]), 0o644); err != nil {
		t.Fatal(err)
	}
	full, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	some, err := LoadWanted(path, map[string]bool{"kfree": true, "not_exported": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(some.Exports) != 1 {
		t.Errorf("wanted table holds %d exports, want 1 (kfree)", len(some.Exports))
	}
	for _, name := range []string{"kfree", "not_exported", "module_layout", "usb_stor_sense_invalidCDB", "other"} {
		e1, ok1 := full.Lookup(name)
		e2, ok2 := some.Lookup(name)
		if e1 != e2 || ok1 != ok2 {
			t.Errorf("Lookup(%q): whole table %+v %v, wanted table %+v %v", name, e1, ok1, e2, ok2)
		}
	}
	bad := filepath.Join(dir, "bad.symvers")
	os.WriteFile(bad, []byte("0x037a0cba\tkfree\tvmlinux\tEXPORT_SYMBOL\t\nzz\tother\tvmlinux\tEXPORT_SYMBOL\t\n"), 0o644)
	if _, err := LoadWanted(bad, map[string]bool{"kfree": true}); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("a bad line outside the wanted names: %v, want an error at %s:2", err, bad)
	}
}

func TestParseCRC(t *testing.T) {
	for in, want := range map[string]int64{
		"0x037a0cba":          0x037a0cba,
		"0X037A0CBA":          0x037a0cba,
		"0x1":                 1,
		"0xffffffff00000002":  2, // wider than 32 bits: the low 32, as before
		"0x":                  -1,
		"037a0cba":            -1,
		"0x037g0cba":          -1,
		"0x1ffffffff00000002": -1,
		"":                    -1,
	} {
		got, ok := parseCRC(in)
		if ok != (want >= 0) || ok && int64(got) != want {
			t.Errorf("parseCRC(%q) = %#x, %v; want %#x", in, got, ok, want)
		}
	}
}
