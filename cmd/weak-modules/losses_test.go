package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// Issue 11, point 1: a removal that strips a kernel staying installed of a required module is
// done as asked, but loudly. On the sample, 6.1.0-53 loads the required kabidemo through a
// weak link to 6.1.0-50's build, and nothing else loads into it (54's build is of another
// ABI). DKMS's prerm (--remove-modules) and the kernel's own removal (--remove-kernel) must
// each print an error-level line naming 6.1.0-53 and kabidemo, whatever the verbosity.
func TestRemovalThatStripsAKernelIsLoud(t *testing.T) {
	k50, k53 := testkit.SampleK50, testkit.SampleK53
	build := filepath.Join("lib/modules", k50, "extra/kabidemo/kabidemo.ko.xz")
	for _, tc := range []struct {
		name, stdin string
		args        []string
		why         string
	}{
		{"remove-modules", build, []string{"--remove-modules"}, "that build is being removed"},
		// DKMS removes its builds for a kernel being removed; kmod packages' builds stay
		// (TestRemoveKernelKeepsPackagedBuilds).
		{"remove-kernel", "", []string{"--remove-kernel", k50}, "kernel " + k50 + ", whose build it used, is being removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testkit.SampleDemoRoot(t)
			testkit.DKMSInstalled(t, root, "kabidemo", k50)
			if got := weakModulesIn(t, "", "--basedir", root, "--add-kernel", k53, "--no-initramfs"); got.code != 0 {
				t.Fatalf("--add-kernel: exit %d\n%s", got.code, got.out)
			}
			stdin := ""
			if tc.stdin != "" {
				stdin = filepath.Join(root, tc.stdin)
			}
			got := weakModulesIn(t, stdin, append([]string{"--basedir", root, "--no-initramfs"}, tc.args...)...)
			want := "weak-modules: ERROR: " + k53 + " stays installed but loses required module kabidemo"
			if got.code != 0 || !strings.Contains(got.out, want) || !strings.Contains(got.out, tc.why) {
				t.Fatalf("exit %d; want exit 0 with %q (%s):\n%s", got.code, want, tc.why, got.out)
			}
			// Nothing else is said to be lost: 54 never had kabidemo (incompatible).
			if strings.Count(got.out, "ERROR:") != strings.Count(got.out, "loses required module kabidemo") {
				t.Errorf("a loss was reported for something not lost:\n%s", got.out)
			}
			// Said once, and not again by the next run: the loss is done.
			if again := weakModulesIn(t, "", "--basedir", root, "--add-kernel", k53, "--no-initramfs"); strings.Contains(again.out, "ERROR:") {
				t.Errorf("the next run reports the loss again:\n%s", again.out)
			}
		})
	}
}

// RHEL's kernel-core %preun runs weak-modules --remove-kernel K while the kmod packages'
// builds in K/extra/ stay installed (the kmod package owns them): the links other kernels have
// into them stay, and no loss is reported, as RHEL's weak-modules leaves them. On the sample,
// 6.1.0-53 and 6.1.0-54 load 6.1.0-50's builds through weak links.
func TestRemoveKernelKeepsPackagedBuilds(t *testing.T) {
	k50 := testkit.SampleK50
	root := testkit.SampleDemoRoot(t)
	if got := weakModulesIn(t, "", "--basedir", root, "--add-kernel", testkit.SampleK53, "--no-initramfs"); got.code != 0 {
		t.Fatalf("--add-kernel: exit %d\n%s", got.code, got.out)
	}
	before := linksOf(t, root)
	if !strings.Contains(before, k50+"/extra/") {
		t.Fatalf("no link into %s's builds: the test exercises nothing\n%s", k50, before)
	}
	got := weakModulesIn(t, "", "--basedir", root, "--no-initramfs", "--remove-kernel", k50)
	if got.code != 0 || strings.Contains(got.out, "ERROR") {
		t.Fatalf("--remove-kernel %s: exit %d\n%s", k50, got.code, got.out)
	}
	var kept []string
	for _, l := range strings.Split(before, "\n") {
		if !strings.Contains(l, "/"+k50+"/weak-updates/") { // the removed kernel's own links go
			kept = append(kept, l)
		}
	}
	after := linksOf(t, root)
	for _, l := range kept {
		if !strings.Contains(after, l) {
			t.Errorf("link %q is gone after --remove-kernel %s; its build stays installed\nbefore:\n%s\nafter:\n%s", l, k50, before, after)
		}
	}
}
