package kmod

import (
	"testing"

	"github.com/kabiguard/kabiguard/internal/compression"
)

func TestModuleName(t *testing.T) {
	for _, c := range []struct {
		file     string
		name     string
		isModule bool
		format   compression.Format
	}{
		{"xfs.ko", "xfs", true, compression.None},
		{"kernel/fs/xfs/xfs.ko.xz", "xfs", true, compression.XZ},
		{"/lib/modules/K/extra/kabi-demo.ko.zst", "kabi_demo", true, compression.Zstd},
		{"updates/dkms/nvidia-drm.ko.gz", "nvidia_drm", true, compression.Gzip},
		{"a_b-c.ko", "a_b_c", true, compression.None},
		// Not module files: kmod still names them (up to the first '.'), IsModule says no.
		{"foo.ko.bz2", "foo", false, ""},
		{"foo.ko.bak", "foo", false, ""},
		{"kernel/README", "README", false, ""},
		{".ko", "", false, ""},
		{".ko.xz", "", false, ""},
		{"modules.dep", "modules", false, ""},
		// kmod's modname_normalize stops at the first '.'.
		{"a.b.ko", "a", true, compression.None},
	} {
		if got := ModuleName(c.file); got != c.name {
			t.Errorf("ModuleName(%q) = %q, want %q", c.file, got, c.name)
		}
		if got := IsModule(c.file); got != c.isModule {
			t.Errorf("IsModule(%q) = %v, want %v", c.file, got, c.isModule)
		}
		if got := Compression(c.file); got != c.format {
			t.Errorf("Compression(%q) = %q, want %q", c.file, got, c.format)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"kabi-demo": "kabi_demo", "a_b": "a_b", "--": "__", "": ""} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModulesDir(t *testing.T) {
	for _, c := range []struct{ root, kernel, want string }{
		{"/", "6.1.0-54-amd64", "/lib/modules/6.1.0-54-amd64"},
		{"/srv/root", "6.1.0-54-amd64", "/srv/root/lib/modules/6.1.0-54-amd64"},
		{"/srv/root/", "K", "/srv/root/lib/modules/K"},
		{"/srv/root", "", "/srv/root/lib/modules"},
		{"rel", "K", "rel/lib/modules/K"},
	} {
		if got := ModulesDir(c.root, c.kernel); got != c.want {
			t.Errorf("ModulesDir(%q, %q) = %q, want %q", c.root, c.kernel, got, c.want)
		}
	}
}

func TestDepmodAdvice(t *testing.T) {
	for _, c := range []struct{ root, want string }{
		{"/", "depmod -a K"},
		{"//", "depmod -a K"},
		{"/srv/root", "depmod -b /srv/root -a K"},
	} {
		if got := DepmodAdvice(c.root, "K"); got != c.want {
			t.Errorf("DepmodAdvice(%q) = %q, want %q", c.root, got, c.want)
		}
	}
}
