package main

// link, hook add and status on roots built from the embedded sample (testdata/sample, as
// scripts/demo.sh builds its root): no root privileges, no download; depmod is the real one.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	c50 = "6.1.0-50-amd64"
	c53 = "6.1.0-53-amd64"
	c54 = "6.1.0-54-amd64"
	c55 = "6.1.0-55-amd64" // installed without symvers (Debian without its headers package)
)

func samplePut(t *testing.T, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sampleData(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sample", rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// demoRoot holds kernels 50, 53, 54 (the sample's), 55 (no symvers), and the three sample
// modules in 50's extra/.
func demoRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, k := range []string{c50, c53, c54} {
		samplePut(t, root, "lib/modules/"+k+"/symvers.xz", sampleData(t, "kernels/"+k+"/symvers.xz"))
	}
	for _, k := range []string{c50, c53, c54, c55} {
		from := k
		if k == c55 {
			from = c54
		}
		samplePut(t, root, "lib/modules/"+k+"/kernel/lib/crc-itu-t.ko.xz", sampleData(t, "kernels/"+from+"/kernel/lib/crc-itu-t.ko.xz"))
	}
	for _, m := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		samplePut(t, root, "lib/modules/"+c50+"/extra/"+m+"/"+m+".ko.xz", sampleData(t, "modules/"+c50+"/"+m+".ko.xz"))
	}
	return root
}

// TestUndecidedKernelFails is finding 7: a kernel in scope that cannot be planned (no symvers,
// a garbage line in it) makes `hook add` and `link` say so on stderr, naming the kernel and
// the cause, and exit non-zero; the other kernels' links are made all the same. The status
// exit is 1 with the same kernel named.
func TestUndecidedKernelFails(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		modify func(t *testing.T, root string)
		want   string
	}{
		{name: "hook add, kernel without symvers", args: []string{"hook", "add", c55, "--no-initramfs"},
			want: "kernel " + c55 + ": its links cannot be planned: no symvers for kernel " + c55},
		{name: "link, garbage line in a symvers", args: []string{"link", "--no-initramfs"},
			modify: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "lib/modules", c54, "symvers.xz"))
				samplePut(t, root, "lib/modules/"+c54+"/symvers", []byte("0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\ngarbage\n"))
			},
			want: "kernel " + c54 + ": its links cannot be planned: ROOT/lib/modules/" + c54 + "/symvers:2: "},
		{name: "link, unreadable build", args: []string{"link", "--no-initramfs"},
			modify: func(t *testing.T, root string) {
				samplePut(t, root, "lib/modules/"+c50+"/extra/kabidemo/kabidemo.ko.xz", sampleData(t, "modules/"+c50+"/kabidemo.ko.xz")[:700])
			},
			want: "ROOT/lib/modules/" + c50 + "/extra/kabidemo/kabidemo.ko.xz: cannot be read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := demoRoot(t)
			if c.modify != nil {
				c.modify(t, root)
			}
			var out, errOut bytes.Buffer
			code := run(append(c.args, "--root", root), &out, &errOut)
			stderr := strings.ReplaceAll(errOut.String(), root, "ROOT")
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want non-zero and %q", code, stderr, c.want)
			}
			if strings.Contains(out.String(), "up to date") {
				t.Errorf("stdout says up to date: %s", out.String())
			}
			if _, err := os.Lstat(filepath.Join(root, "lib/modules", c53, "weak-updates/kabiprov/kabiprov.ko.xz")); err != nil {
				t.Errorf("%s got no link: %v", c53, err)
			}
			// Once the tree is as it can be, a second run still reports, never "up to date".
			out.Reset()
			errOut.Reset()
			if code := run(append(c.args, "--root", root), &out, &errOut); code == 0 || strings.Contains(out.String(), "up to date") {
				t.Errorf("second run: exit %d, %s%s", code, out.String(), errOut.String())
			}
		})
	}
}

// TestStatusShowsBlockedAndUnreadable is findings 6 and 11 as `kabiguard status` shows them: a
// file in the way of a link is named (state "blocked", not "pending"), a truncated build is
// "unreadable" with its parse error, and an admin's link is "admin".
func TestStatusShowsBlockedAndUnreadable(t *testing.T) {
	root := demoRoot(t)
	os.RemoveAll(filepath.Join(root, "lib/modules", c55))
	samplePut(t, root, "lib/modules/"+c53+"/weak-updates/kabiprov/kabiprov.ko.xz", []byte("not ours\n"))
	samplePut(t, root, "lib/modules/"+c50+"/extra/kabidemo/kabidemo.ko.xz", sampleData(t, "modules/"+c50+"/kabidemo.ko.xz")[:700])
	samplePut(t, root, "opt/kabiuser.ko.xz", sampleData(t, "modules/"+c54+"/kabiuser.ko.xz"))
	if err := os.MkdirAll(filepath.Join(root, "lib/modules", c54, "weak-updates/admin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/kabiuser.ko.xz", filepath.Join(root, "lib/modules", c54, "weak-updates/admin/kabiuser.ko.xz")); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	run([]string{"link", "--no-initramfs", "--root", root}, &out, &errOut)
	out.Reset()
	errOut.Reset()
	run([]string{"status", "--root", root}, &out, &errOut)
	got := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(out.String(), root, "ROOT"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 {
			got[f[0]+"/"+f[1]] = strings.Join(f[2:], " ")
		}
	}
	for key, want := range map[string]string{
		c53 + "/kabiprov": "blocked build from " + c50 + ": its link weak-updates/kabiprov/kabiprov.ko.xz is taken by ROOT/lib/modules/" + c53 + "/weak-updates/kabiprov/kabiprov.ko.xz, not created by kabiguard, left alone",
		c53 + "/kabiuser": "incompatible build from " + c50 + ": kabiprov_ns_value: exported by kabiprov",
		c50 + "/kabidemo": "unreadable the kernel's own build ROOT/lib/modules/" + c50 + "/extra/kabidemo/kabidemo.ko.xz cannot be read: corrupt xz data",
		c53 + "/kabidemo": "unreadable build from " + c50 + ": ROOT/lib/modules/" + c50 + "/extra/kabidemo/kabidemo.ko.xz cannot be read",
		c54 + "/kabiuser": "admin admin's link to /opt/kabiuser.ko.xz, not managed by kabiguard",
		c54 + "/kabiprov": "weak <- " + c50,
	} {
		if !strings.HasPrefix(got[key], want) {
			t.Errorf("%s: %q, want %q...", key, got[key], want)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}
