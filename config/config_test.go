package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, root, rel, text string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsWithoutFiles(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("got %+v", c)
	}
}

func TestLoad(t *testing.T) {
	root := t.TempDir()
	write(t, root, MainFile, "# comment\nnever_weak = zfs spl\nshare_builds = any # inline comment\non_missing_required = warn\nmetrics_dir = /srv/prom/\n")
	write(t, root, RequiredDir+"/drbd.conf", "drbd early\ndrbd_transport_tcp\n")
	write(t, root, RequiredDir+"/moxa.conf", "npreal2\n\n# twice, once early: early wins\ndrbd\n")
	write(t, root, RequiredDir+"/ignored.txt", "not_a_conf\n")
	c, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.NeverWeak, []string{"zfs", "spl"}) || c.ShareBuilds != "any" || c.OnMissingRequired != "warn" || c.MetricsDir != "/srv/prom" {
		t.Fatalf("settings: %+v", c)
	}
	var got []string
	for _, r := range c.Required {
		got = append(got, r.Name+map[bool]string{true: " early", false: ""}[r.Early])
	}
	if !reflect.DeepEqual(got, []string{"drbd early", "drbd_transport_tcp", "npreal2"}) {
		t.Fatalf("required: %v", got)
	}
	if !strings.HasSuffix(c.Required[0].Source, "drbd.conf:1") {
		t.Fatalf("source: %s", c.Required[0].Source)
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	for name, tc := range map[string][2]string{
		"unknown key":  {MainFile, "\nshare = any\n"},
		"bad share":    {MainFile, "share_builds = sometimes\n"},
		"no equals":    {MainFile, "never_weak zfs\n"},
		"bad on_miss":  {MainFile, "on_missing_required = maybe\n"},
		"relative dir": {MainFile, "metrics_dir = var/lib/prom\n"},
		"unknown flag": {RequiredDir + "/x.conf", "drbd eraly\n"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tc[0], tc[1])
			_, err := Load(root)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(root, tc[0])+":") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
