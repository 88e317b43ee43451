package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// makeDeb builds the package with `make deb` into a private bin directory, with the given
// Debian version, and returns its path.
func makeDeb(t *testing.T, version string) string {
	t.Helper()
	return makePackage(t, "deb", t.TempDir(), "DEB_VERSION="+version)
}

// makePackage runs `make TARGET` (deb, rpm) with BIN=bin and the environment variable env set
// (its version), and returns the package's path, which the target prints last.
func makePackage(t *testing.T, target, bin, env string) string {
	t.Helper()
	cmd := exec.Command("make", "-s", "-C", repoDir(), target, "BIN="+bin, "GO="+testkit.GoTool())
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// tree lists a chroot's paths (directories with a trailing /), leaving out what dpkg and apt
// keep about themselves and what runs write (logs, caches).
func tree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	skip := []string{"var/lib/dpkg/", "var/log/", "var/cache/", "tmp/", "proc/", "sys/", "dev/", "run/"}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			rel += "/"
		}
		for _, s := range skip {
			if strings.HasPrefix(rel, s) {
				if d.IsDir() && rel == s {
					return filepath.SkipDir
				}
				return nil
			}
		}
		out[rel] = true
		return nil
	})
	return out
}

func diffTrees(before, after map[string]bool) (added, removed []string) {
	for p := range after {
		if !before[p] {
			added = append(added, p)
		}
	}
	for p := range before {
		if !after[p] {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// The Debian package, built by `make deb`, passes lintian with no error or warning, and in a
// Debian 12 chroot the real dpkg installs, upgrades, removes and purges it leaving exactly the
// files it lists: an admin's change to a conffile survives the upgrade and the removal, the
// removal says that the weak-updates links stay, and the purge leaves the tree as before.
func TestDebPackage(t *testing.T) {
	testkit.NeedsRoot(t, "dpkg installs the package in a Debian chroot")
	v1, v2 := makeDeb(t, "0.1~test1"), makeDeb(t, "0.1~test2")
	if out, err := exec.Command("lintian", "--tag-display-limit", "0", "--fail-on", "error,warning", v1).CombinedOutput(); err != nil {
		t.Errorf("lintian %s: %v\n%s", filepath.Base(v1), err, out)
	}
	c := testkit.NewChroot(t)
	for _, deb := range []string{v1, v2} {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteFile("/tmp/"+filepath.Base(deb), string(data))
	}
	// kabiguard depends on kmod, which minbase lacks: the real apt installs what it needs.
	const aptInstall = "apt-get install -y -q --no-install-recommends "
	c.MustRun(aptInstall + "kmod")
	before := tree(t, c.Dir)

	c.MustRun(aptInstall + "/tmp/" + filepath.Base(v1))
	listed := map[string]bool{}
	for _, p := range strings.Fields(c.MustRun("dpkg -L kabiguard")) {
		if p != "/." {
			listed[strings.TrimPrefix(p, "/")] = true
		}
	}
	added, removed := diffTrees(before, tree(t, c.Dir))
	for _, p := range added {
		if !listed[strings.TrimSuffix(p, "/")] {
			t.Errorf("installing made %s, which the package does not list", p)
		}
	}
	if len(removed) > 0 {
		t.Errorf("installing removed %v", removed)
	}
	if out := c.MustRun("/usr/sbin/kabiguard --version"); strings.TrimSpace(out) == "" {
		t.Error("the installed kabiguard prints no version")
	}
	c.MustRun("kabiguard status") // no kernel in the chroot: nothing required, exit 0

	conf := "/etc/kabiguard/kabiguard.conf"
	c.MustRun("echo 'share_builds = any' >> " + conf)
	c.MustRun(aptInstall + "/tmp/" + filepath.Base(v2))
	if got := c.MustRun("dpkg-query -W -f '${Version}' kabiguard"); got != "0.1~test2" {
		t.Errorf("after the upgrade dpkg has version %q", got)
	}
	if !strings.Contains(c.MustRun("cat "+conf), "share_builds = any") {
		t.Error("the upgrade lost the admin's change to " + conf)
	}

	// A weak-updates link that kabiguard made stays after the removal, which says so.
	c.MustRun("mkdir -p /lib/modules/6.1.0-99-amd64/weak-updates && ln -s ../../6.1.0-98-amd64/extra/x.ko /lib/modules/6.1.0-99-amd64/weak-updates/x.ko")
	out := c.MustRun("dpkg -r kabiguard")
	if !strings.Contains(out, "1 weak-updates link(s) under /lib/modules stay") {
		t.Errorf("dpkg -r did not say that the link stays:\n%s", out)
	}
	if !strings.Contains(c.MustRun("cat "+conf), "share_builds = any") {
		t.Error("dpkg -r removed the modified conffile " + conf)
	}
	c.MustRun("rm -r /lib/modules/6.1.0-99-amd64 && rmdir --ignore-fail-on-non-empty /lib/modules") // the test made them
	c.MustRun("dpkg -P kabiguard")
	added, removed = diffTrees(before, tree(t, c.Dir))
	if len(added) > 0 || len(removed) > 0 {
		t.Errorf("after the purge the tree differs from before the installation: added %v, removed %v", added, removed)
	}
}
