package forecast

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDKMSBuilds(t *testing.T) {
	root := t.TempDir()
	reg := func(name, version, conf string) {
		src := filepath.Join(root, "usr/src", name+"-"+version)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "dkms.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "var/lib/dkms", name, version)
		os.MkdirAll(dir, 0o755)
		// DKMS's own absolute link: followed inside the root.
		if err := os.Symlink("/usr/src/"+name+"-"+version, filepath.Join(dir, "source")); err != nil {
			t.Fatal(err)
		}
	}
	reg("v4l2loopback", "0.12.7", "PACKAGE_NAME=\"v4l2loopback\"\nBUILT_MODULE_NAME[0]=\"$PACKAGE_NAME\"\nAUTOINSTALL=\"yes\"\n")
	reg("drbd", "9.2.12", "PACKAGE_NAME=drbd\nBUILT_MODULE_NAME[0]=drbd\nBUILT_MODULE_NAME[1]=drbd_transport_tcp\nAUTOINSTALL=yes\n")
	reg("manual", "1", "PACKAGE_NAME=manual\nBUILT_MODULE_NAME[0]=manual\n") // no AUTOINSTALL
	reg("plain", "2", "PACKAGE_NAME=plain-mod\nAUTOINSTALL=yes\n")           // default name
	got := DKMSBuilds(root)
	want := map[string]string{"v4l2loopback": "v4l2loopback/0.12.7", "drbd": "drbd/9.2.12", "drbd_transport_tcp": "drbd/9.2.12", "plain_mod": "plain/2"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}
