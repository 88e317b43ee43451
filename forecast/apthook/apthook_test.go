package apthook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

func TestParseVersions(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Action
		config   map[string][]string
	}{
		{
			name: "version 3",
			in: "VERSION 3\nAPT::Architecture=amd64\nDPkg::Pre-Install-Pkgs::=a%3db\nDPkg::Pre-Install-Pkgs::=c\n\n" +
				"linux-image-6.1.0-56-amd64 - - none < 6.1.192-2 amd64 same /var/cache/apt/archives/linux image.deb\n" +
				"linux-image-6.1.0-50-amd64 6.1.176-1 amd64 same > - - none **REMOVE**\n" +
				"foo 1 all foreign = 1 all foreign **CONFIGURE**\n",
			want: []Action{
				{Package: "linux-image-6.1.0-56-amd64", NewVersion: "6.1.192-2", NewArch: "amd64", Direction: "<", Kind: Unpack, File: "/var/cache/apt/archives/linux image.deb"},
				{Package: "linux-image-6.1.0-50-amd64", OldVersion: "6.1.176-1", OldArch: "amd64", Direction: ">", Kind: Remove},
				{Package: "foo", OldVersion: "1", OldArch: "all", NewVersion: "1", NewArch: "all", Direction: "=", Kind: Configure},
			},
			config: map[string][]string{"apt::architecture": {"amd64"}, "dpkg::pre-install-pkgs": {"a=b", "c"}},
		},
		{
			name: "version 2",
			in:   "VERSION 2\n\nfoo - < 2 /tmp/foo_2_all.deb\nbar 1 > - **REMOVE**\n",
			want: []Action{
				{Package: "foo", NewVersion: "2", Direction: "<", Kind: Unpack, File: "/tmp/foo_2_all.deb"},
				{Package: "bar", OldVersion: "1", Direction: ">", Kind: Remove},
			},
		},
		{
			name: "version 1",
			in:   "/var/cache/apt/archives/a.deb\n/var/cache/apt/archives/b.deb\n",
			want: []Action{{Kind: Unpack, File: "/var/cache/apt/archives/a.deb"}, {Kind: Unpack, File: "/var/cache/apt/archives/b.deb"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(req.Actions) != fmt.Sprint(tc.want) {
				t.Errorf("actions\n got %+v\nwant %+v", req.Actions, tc.want)
			}
			for k, v := range tc.config {
				if fmt.Sprint(req.Config[k]) != fmt.Sprint(v) {
					t.Errorf("config %s = %q, want %q", k, req.Config[k], v)
				}
			}
		})
	}
}

func TestParseRefusesWhatItCannotRead(t *testing.T) {
	for _, in := range []string{
		"",
		"VERSION 9\n\n",
		"VERSION 3\nno equals sign\n\n",
		"VERSION 3\nAPT::X=1\n",                  // configuration never ends
		"VERSION 3\n\nfoo - - none < 1 all\n",    // action missing
		"VERSION 2\n\nfoo 1 ? 2 **CONFIGURE**\n", // no direction
		"VERSION 3\nbad%zzkey=1\n\n",             // broken %-encoding
	} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("Parse(%q) = %v, want ErrProtocol", in, err)
		}
	}
}

// The real apt, in a Debian 12 chroot, installs, upgrades and removes a package with a hook
// asking for protocol version 3; what the hook received parses into those actions.
func TestRealAPT(t *testing.T) {
	c := testkit.NewChroot(t)
	c.WriteFile("/usr/local/bin/kg-capture", "#!/bin/sh\nn=$(ls /tmp/hook-*.txt 2>/dev/null | wc -l)\ncat > /tmp/hook-$n.txt\n")
	c.MustRun("chmod +x /usr/local/bin/kg-capture")
	c.WriteFile("/etc/apt/apt.conf.d/99kg-capture", `DPkg::Pre-Install-Pkgs:: "/usr/local/bin/kg-capture";`+"\n"+
		`DPkg::Tools::Options::/usr/local/bin/kg-capture::Version "3";`+"\n")
	for _, v := range []string{"1.0", "2.0"} {
		dir := "/tmp/src-" + v
		c.WriteFile(dir+"/DEBIAN/control", "Package: kg-hooktest\nVersion: "+v+"\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: hook test\n")
		c.WriteFile(dir+"/usr/share/kg-hooktest/v", v+"\n")
		c.MustRun("dpkg-deb --build " + dir + " /tmp/kg-hooktest_" + v + "_all.deb")
	}
	// A private archives directory: the shared .deb cache's lock may be held by another test.
	apt := "apt-get -y -q -o Dir::Cache::Archives=/tmp/archives "
	c.MustRun("mkdir -p /tmp/archives/partial")
	c.MustRun(apt + "install /tmp/kg-hooktest_1.0_all.deb")
	c.MustRun(apt + "install /tmp/kg-hooktest_2.0_all.deb")
	c.MustRun(apt + "remove kg-hooktest")
	arch := strings.TrimSpace(c.MustRun("dpkg --print-architecture"))

	read := func(n int) []Action {
		t.Helper()
		f, err := os.Open(c.Path(fmt.Sprintf("/tmp/hook-%d.txt", n)))
		if err != nil {
			t.Fatalf("apt did not run the hook a %d. time: %v", n+1, err)
		}
		defer f.Close()
		req, err := Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		if req.Version != 3 || fmt.Sprint(req.Config["apt::architecture"]) != "["+arch+"]" {
			t.Errorf("hook %d: version %d, APT::Architecture %q (dpkg says %s)", n, req.Version, req.Config["apt::architecture"], arch)
		}
		var ours []Action
		for _, a := range req.Actions {
			if a.Package == "kg-hooktest" {
				ours = append(ours, a)
			}
		}
		return ours
	}
	check := func(n int, kinds []Kind, old, new string) {
		t.Helper()
		acts := read(n)
		var got []Kind
		for _, a := range acts {
			got = append(got, a.Kind)
			if a.OldVersion != old || a.NewVersion != new {
				t.Errorf("hook %d: %+v, want old %q new %q", n, a, old, new)
			}
			if a.Kind == Unpack && filepath.Base(a.File) != "kg-hooktest_"+new+"_all.deb" {
				t.Errorf("hook %d: unpacks %q", n, a.File)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(kinds) {
			t.Errorf("hook %d: actions %v, want %v", n, got, kinds)
		}
	}
	check(0, []Kind{Unpack, Configure}, "", "1.0")
	check(1, []Kind{Unpack, Configure}, "1.0", "2.0")
	check(2, []Kind{Remove}, "2.0", "")
}
