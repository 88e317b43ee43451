package hostile

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// campaignSeed seeds the random parts of both campaigns (kill delays, odd names, mixes of
// hostile recipes). Set KABIGUARD_HOSTILE_SEED to replay another run.
func campaignSeed(t *testing.T) int64 {
	seed := int64(20261130)
	if s := os.Getenv("KABIGUARD_HOSTILE_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		must(t, err)
		seed = v
	}
	t.Logf("seed %d (replay with KABIGUARD_HOSTILE_SEED=%d)", seed, seed)
	return seed
}

// scenario is one command interrupted or failed in the fault campaign.
type scenario struct {
	name     string
	template func(t *testing.T) string  // builds the root every case starts from; returns it
	argv     func(root string) []string // the command
	owed     []string                   // kernels whose images must verify current after it
	roKernel string                     // kernel tree made read-only for the write fault ("" none)
	kills    int                        // KABIGUARD_TEST_KILL_AT=1..kills (steps past the last run to the end)
}

// reference is what a run without faults leaves.
type reference struct {
	tree, status string
	verify       map[string]string
	took         time.Duration
	wroteBoot    bool // the run changed /boot: a full /boot must make it fail
}

const (
	timedKills = 5 // SIGKILLs after random delays, per scenario
)

func scenarios() []scenario {
	all := []string{K50, K53, K54}
	// The demo's root with an image per kernel written before any link: link must link,
	// run depmod and bring every image up to date (53's needs kabidemo early: a rebuild).
	linkTemplate := func(t *testing.T) string {
		s := newSandbox(t, t.TempDir())
		baseRoot(t, s.root, all...)
		for _, k := range all {
			writeImage(t, s.root, k)
		}
		return s.root
	}
	// 50 and 53 linked with current images; then 54's packages arrive with their image.
	addKernelTemplate := func(t *testing.T) string {
		s := newSandbox(t, t.TempDir())
		baseRoot(t, s.root, K50, K53)
		writeImage(t, s.root, K50)
		writeImage(t, s.root, K53)
		if r := s.run(t, runOpts{}, bin("kabiguard"), "link", "--root", s.root); r.code != 0 {
			t.Fatalf("preparing the add-kernel root: kabiguard link: %s", r)
		}
		addKernel(t, s.root, K54)
		depmod(t, s.root, K54)
		writeImage(t, s.root, K54) // before the kmod's build for 54: it lacks kabidemo
		addKmod(t, s.root, K54, "kabidemo")
		depmod(t, s.root, K54)
		return s.root
	}
	// Links made with --no-initramfs: every image is stale and owed to `initramfs refresh`.
	refreshTemplate := func(t *testing.T) string {
		s := newSandbox(t, t.TempDir())
		baseRoot(t, s.root, all...)
		for _, k := range all {
			writeImage(t, s.root, k)
		}
		if r := s.run(t, runOpts{}, bin("kabiguard"), "link", "--no-initramfs", "--root", s.root); r.code != 0 {
			t.Fatalf("preparing the refresh root: kabiguard link --no-initramfs: %s", r)
		}
		return s.root
	}
	// Linked with --no-initramfs, then every image written from the linked tree; then
	// kabiprov's and kabiuser's builds for 54 arrive and are linked with --no-initramfs: 54's
	// image holds 50's builds, stale, which refresh replaces in place.
	staleTemplate := func(t *testing.T) string {
		s := newSandbox(t, t.TempDir())
		baseRoot(t, s.root, all...)
		if r := s.run(t, runOpts{}, bin("kabiguard"), "link", "--no-initramfs", "--root", s.root); r.code != 0 {
			t.Fatalf("preparing the stale root: kabiguard link --no-initramfs: %s", r)
		}
		for _, k := range all {
			writeImage(t, s.root, k)
		}
		addKmod(t, s.root, K54, "kabiprov", "kabiuser")
		if r := s.run(t, runOpts{}, bin("kabiguard"), "link", "--no-initramfs", "--root", s.root); r.code != 0 {
			t.Fatalf("preparing the stale root: kabiguard link --no-initramfs: %s", r)
		}
		return s.root
	}
	refresh := func(k string) func(string) []string {
		return func(root string) []string {
			return []string{bin("kabiguard"), "initramfs", "refresh", "--root", root, "-k", k, imagePath(root, k)}
		}
	}
	return []scenario{
		// 5 link changes and 2 depmod runs today: 7 fault points.
		{name: "link", template: linkTemplate, owed: all, roKernel: K53, kills: 10,
			argv: func(root string) []string { return []string{bin("kabiguard"), "link", "--root", root} }},
		{name: "weak-modules-add-kernel", template: addKernelTemplate, owed: all, roKernel: K54, kills: 8,
			argv: func(root string) []string {
				return []string{bin("weak-modules"), "--basedir", root, "--add-kernel", K54, "--dracut", fakeGen}
			}},
		// 53's image lacks the required early kabidemo: the generator rebuilds it.
		{name: "initramfs-refresh-53", template: refreshTemplate, owed: []string{K53}, argv: refresh(K53), kills: 3},
		// 54's image gets 54's kabiprov and kabiuser in place of 50's.
		{name: "initramfs-refresh-54", template: staleTemplate, owed: []string{K54}, argv: refresh(K54), kills: 3},
	}
}

// TestFaultInjection kills each scenario's command at every fault point and after random
// delays, and fails its writes (read-only kernel tree, full /boot); each time, the same command
// run again must finish the owed work and leave exactly what a run without faults leaves:
// no dangling link, every owed image current, no temporary file, nothing changed outside the
// root.
func TestFaultInjection(t *testing.T) {
	testkit.NeedsRoot(t, "runs every command in a private mount namespace (unshare -m)")
	rng := rand.New(rand.NewSource(campaignSeed(t)))
	for _, sc := range scenarios() {
		delays := make([]time.Duration, timedKills)
		fractions := make([]float64, timedKills)
		for i := range fractions {
			fractions[i] = rng.Float64() * 1.2
		}
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			tmpl := sc.template(t)
			ref := referenceRun(t, sc, tmpl)
			for i, f := range fractions {
				delays[i] = time.Duration(f * float64(ref.took))
			}
			t.Logf("%s: a run without faults takes %v; timed kills after %v", sc.name, ref.took.Round(time.Millisecond), delays)
			for n := 1; n <= sc.kills; n++ {
				t.Run(fmt.Sprintf("kill-at-%d", n), func(t *testing.T) {
					t.Parallel()
					faultCase(t, sc, tmpl, ref, runOpts{env: []string{"KABIGUARD_TEST_KILL_AT=" + strconv.Itoa(n)}}, false)
				})
			}
			for i, d := range delays {
				t.Run(fmt.Sprintf("kill-after-%d-%v", i, d.Round(time.Microsecond)), func(t *testing.T) {
					t.Parallel()
					faultCase(t, sc, tmpl, ref, runOpts{killAfter: d}, false)
				})
			}
			if sc.roKernel != "" {
				t.Run("read-only-"+sc.roKernel, func(t *testing.T) {
					t.Parallel()
					dir := filepath.Join("ROOTDIR", "lib", "modules", sc.roKernel)
					faultCase(t, sc, tmpl, ref, runOpts{prelude: fmt.Sprintf(
						"mount --bind %[1]s %[1]s && mount -o remount,bind,ro %[1]s", dir)}, true)
				})
			}
			t.Run("enospc-boot", func(t *testing.T) {
				t.Parallel()
				faultCase(t, sc, tmpl, ref, runOpts{prelude: "ENOSPC"}, true)
			})
		})
	}
}

// referenceRun runs the scenario's command without faults on a copy of tmpl.
func referenceRun(t *testing.T, sc scenario, tmpl string) reference {
	t.Helper()
	s := fromTemplate(t, tmpl)
	boot := bootContent(s.root)
	r := s.run(t, runOpts{}, sc.argv(s.root)...)
	if r.code != 0 {
		t.Fatalf("the run without faults fails, nothing to compare with: %v\n%s", sc.argv("ROOT"), r)
	}
	ref := reference{took: r.took, tree: treeState(t, s.root), status: status(t, s), verify: map[string]string{},
		wroteBoot: bootContent(s.root) != boot}
	if !ref.wroteBoot {
		t.Fatalf("%v writes nothing in /boot: the scenario tests no image work\n%s", sc.argv("ROOT"), r)
	}
	for _, k := range sc.owed {
		v, vr := verify(t, s, k)
		if vr.code != 0 {
			t.Fatalf("after the run without faults, %s's image does not verify current:\n%s", k, vr)
		}
		ref.verify[k] = v
	}
	if lo := s.leftovers(); len(lo) > 0 {
		t.Errorf("the run without faults leaves temporary files: %q", lo)
	}
	return ref
}

// faultCase runs the command once with the fault of o, then again without, and checks the
// invariants. mustFail: the faulty run cannot have done its work and must say so.
func faultCase(t *testing.T, sc scenario, tmpl string, ref reference, o runOpts, mustFail bool) {
	s := fromTemplate(t, tmpl)
	decoy := decoyDir(t)
	before := snapshot(t, s.outside) + snapshot(t, s.cwd) + snapshot(t, decoy)
	o.prelude = strings.ReplaceAll(o.prelude, "ROOTDIR", s.root)
	if o.prelude == "ENOSPC" {
		o.prelude, o.post = fullBoot(t, s)
	}
	argv := sc.argv(s.root)
	show := strings.ReplaceAll(strings.Join(argv, " "), s.root, "ROOT")
	r := s.run(t, o, argv...)
	t.Logf("faulty run: %s (env %q, fault %q): %s", show, o.env, strings.ReplaceAll(o.prelude, s.root, "ROOT"), firstLine(r))
	noCrash(t, "the faulty run", r)
	if mustFail && r.code == 0 {
		t.Errorf("%s exited 0 although its writes failed (%s)\n%s", show, strings.ReplaceAll(o.prelude, s.root, "ROOT"), r)
	}
	again := s.run(t, runOpts{}, argv...)
	if again.code != 0 {
		t.Errorf("the next run, without the fault, fails: %s\n%s", show, again)
	}
	checkInvariants(t, s, sc, ref, before)
}

// fullBoot is the prelude and post of a run whose /boot is a tmpfs with no free page: the
// images are copied into it first, and what the command leaves is copied back after.
func fullBoot(t *testing.T, s *sandbox) (prelude, post string) {
	var used int64
	ents, err := os.ReadDir(filepath.Join(s.root, "boot"))
	must(t, err)
	for _, e := range ents {
		fi, err := e.Info()
		must(t, err)
		used += (fi.Size() + 4095) / 4096 * 4096
	}
	if used == 0 {
		used = 4096
	}
	side := filepath.Join(s.dir, "boot.real")
	boot := filepath.Join(s.root, "boot")
	must(t, os.MkdirAll(side, 0o755))
	prelude = fmt.Sprintf("mount --bind %[1]s %[2]s && mount -t tmpfs -o size=%[3]d tmpfs %[1]s && cp -a %[2]s/. %[1]s/",
		shq(boot), shq(side), used)
	post = fmt.Sprintf("find %[2]s -mindepth 1 -delete && cp -a %[1]s/. %[2]s/", shq(boot), shq(side))
	return prelude, post
}

// checkInvariants checks the state after a faulty run and a complete one.
func checkInvariants(t *testing.T, s *sandbox, sc scenario, ref reference, outsideBefore string) {
	t.Helper()
	if d := danglingLinks(s.root); len(d) > 0 {
		t.Errorf("dangling links: %q", d)
	}
	for _, k := range sc.owed {
		got, r := verify(t, s, k)
		if r.code != 0 {
			t.Errorf("%s's image is not current:\n%s", k, r)
		} else if got != ref.verify[k] {
			t.Errorf("%s's image differs from a run without faults:\n--- got\n%s\n--- want\n%s", k, got, ref.verify[k])
		}
	}
	if lo := s.leftovers(); len(lo) > 0 {
		t.Errorf("temporary files left: %q", lo)
	}
	if after := snapshot(t, s.outside) + snapshot(t, s.cwd) + snapshot(t, decoyDir(t)); after != outsideBefore {
		t.Errorf("files outside the root changed:\n--- before\n%s--- after\n%s", outsideBefore, after)
	}
	if got := treeState(t, s.root); got != ref.tree {
		t.Errorf("the tree differs from a run without faults:\n%s", diffLines(ref.tree, got))
	}
	if got := status(t, s); got != ref.status {
		t.Errorf("status --json differs from a run without faults:\n%s", diffLines(ref.status, got))
	}
}

// bootContent names the regular files of root's /boot with their content hashes.
func bootContent(root string) string {
	var b strings.Builder
	ents, _ := os.ReadDir(filepath.Join(root, "boot"))
	for _, e := range ents {
		if e.Type().IsRegular() {
			fmt.Fprintf(&b, "%s %s\n", e.Name(), hashFile(filepath.Join(root, "boot", e.Name())))
		}
	}
	return b.String()
}

func status(t *testing.T, s *sandbox) string {
	t.Helper()
	r := s.run(t, runOpts{}, bin("kabiguard"), "status", "--json", "--root", s.root)
	noCrash(t, "status", r)
	return strings.ReplaceAll(r.stdout, s.root, "ROOT") + fmt.Sprintf("(exit %d)", r.code)
}

func verify(t *testing.T, s *sandbox, k string) (string, result) {
	t.Helper()
	r := s.run(t, runOpts{}, bin("kabiguard"), "initramfs", "verify", "--json", "--root", s.root, "-k", k, imagePath(s.root, k))
	noCrash(t, "verify", r)
	return strings.ReplaceAll(r.stdout, s.root, "ROOT"), r
}

// noCrash fails t when r shows a Go runtime crash or a hang.
func noCrash(t *testing.T, what string, r result) {
	t.Helper()
	if r.timedOut {
		t.Errorf("%s hangs:\n%s", what, r)
	} else if crashed(r) {
		t.Errorf("%s crashed:\n%s", what, r)
	}
}

// crashed tells a Go runtime crash (panic, fatal error such as a stack overflow: exit 2 with
// a goroutine dump) from an ordinary exit 2.
func crashed(r result) bool {
	for _, marker := range []string{"panic:", "goroutine ", "fatal error:", "runtime: "} {
		if strings.Contains(r.stderr, marker) || strings.Contains(r.stdout, marker) {
			return true
		}
	}
	return false
}

func firstLine(r result) string {
	st := fmt.Sprintf("exit %d", r.code)
	if r.timedOut {
		st = "hung"
	} else if r.killed {
		st = "killed"
	}
	return st
}

// diffLines shows the lines only in want (-) and only in got (+).
func diffLines(want, got string) string {
	in := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
