package main

// Scenario tests on sandbox roots made of real Debian kernel trees (hard-linked from the test
// cache), real modules built with Kbuild, and the real depmod. They need root, the Debian
// archive on first use, kmod, gcc and make (.ci/run installs them).

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// The three ABIs of the admin scenario: A (where the module was built), B and C added later.
const abiA, abiB, abiC = "6.1.0-50", "6.1.0-53", "6.1.0-54"

type scenario struct {
	t       *testing.T
	root    string
	kernels map[string]*testkit.Kernel // by release
	builds  map[string]map[string]string
}

// newScenario makes a root holding the given kernels and returns it with the project's
// modules built against every kernel of abis (installed nowhere yet).
func newScenario(t *testing.T, abis ...string) *scenario {
	t.Helper()
	s := &scenario{t: t, kernels: map[string]*testkit.Kernel{}, builds: map[string]map[string]string{}}
	var ks []*testkit.Kernel
	for _, abi := range abis {
		k := testkit.FetchKernel(t, abi)
		ks = append(ks, k)
		s.kernels[k.Release] = k
		s.builds[k.Release] = map[string]string{}
		for _, src := range []string{"kabidemo", "kabipair"} {
			for name, p := range testkit.BuildModules(t, k, filepath.Join(testkit.RepoDir(), "testdata", "src", src)) {
				s.builds[k.Release][name] = p
			}
		}
	}
	s.root = testkit.NewRoot(t, ks...)
	return s
}

func rel(abi string) string { return abi + "-amd64" }

// install puts the build of name for kernel from into from's extra/name/, as a kmod package.
func (s *scenario) install(from, name, ext string) string {
	s.t.Helper()
	p := testkit.Install(s.t, s.root, from, filepath.Join("extra", name, name+".ko"), s.builds[from][name])
	if ext != "" {
		// xz and gzip replace the file; zstd keeps it unless told to remove it.
		args := map[string][]string{".xz": {"xz", "-f"}, ".zst": {"zstd", "-q", "-f", "--rm"}, ".gz": {"gzip", "-f"}}[ext]
		out, err := exec.Command(args[0], append(args[1:], p)...).CombinedOutput()
		if err != nil {
			s.t.Fatalf("compress %s: %v %s", p, err, out)
		}
		p += ext
	}
	return p
}

// weakModules runs weak-modules in-process on the scenario's root.
func (s *scenario) weakModules(stdin string, args ...string) (int, string) {
	var out bytes.Buffer
	code := run(append([]string{"--basedir", s.root, "--no-initramfs", "--verbose"}, args...), strings.NewReader(stdin), &out, &out)
	return code, out.String()
}

func (s *scenario) mustWeakModules(stdin string, args ...string) string {
	s.t.Helper()
	code, out := s.weakModules(stdin, args...)
	if code != 0 {
		s.t.Fatalf("weak-modules %v: exit %d\n%s", args, code, out)
	}
	return out
}

// links maps every weak-updates link under root, relative to lib/modules, to its target.
func links(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, "lib", "modules")
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 && strings.Contains(p, "/weak-updates/") {
			target, _ := os.Readlink(p)
			r, _ := filepath.Rel(base, p)
			out[r] = target
		}
		return nil
	})
	return out
}

// dangling lists links under root/lib/modules whose target does not exist.
func dangling(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for l := range links(t, root) {
		if _, err := os.Stat(filepath.Join(root, "lib", "modules", l)); err != nil {
			out = append(out, l)
		}
	}
	return out
}

// linkedModules returns the module names linked into release's weak-updates.
func linkedModules(t *testing.T, root, release string) map[string]bool {
	out := map[string]bool{}
	for l := range links(t, root) {
		if strings.HasPrefix(l, release+"/") {
			out[moduleName(l)] = true
		}
	}
	return out
}

func moduleName(p string) string {
	b := filepath.Base(p)
	return strings.ReplaceAll(b[:strings.Index(b, ".ko")], "-", "_")
}

var depmodWarning = regexp.MustCompile(`^depmod: WARNING: (\S+) (needs unknown symbol|disagrees about version of symbol) (\S+)$`)

// rejectedByDepmod is the independent oracle: it links every given build into a hard-linked
// copy of release's tree (weak-updates/, as kabiguard would) and returns the names of the
// modules the real `depmod -e -E Module.symvers` warns about.
func (s *scenario) rejectedByDepmod(release string, builds map[string]string) map[string]bool {
	s.t.Helper()
	k := s.kernels[release]
	root := s.t.TempDir()
	tree := filepath.Join(root, "lib", "modules", release)
	testkit.HardlinkTree(s.t, k.ModulesDir(), tree)
	for name, p := range builds {
		testkit.Install(s.t, root, release, filepath.Join("weak-updates", name, name+".ko"), p)
	}
	cmd := exec.Command("depmod", "-n", "-e", "-E", k.Symvers, "-b", root, release)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("depmod: %v %s", err, stderr.String())
	}
	out := map[string]bool{}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if m := depmodWarning.FindStringSubmatch(line); m != nil && strings.Contains(m[1], "/weak-updates/") {
			out[moduleName(m[1])] = true
		}
	}
	return out
}

// depmodIndexes reports whether release's modules.dep (written by the real depmod) lists p.
func depmodIndexes(t *testing.T, root, release, p string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "lib", "modules", release, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(p) + `:`).Match(data)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestAdminScenario is the case admins hit: a DKMS-style module set lives in kernel A's extra/;
// kernels B and C are added (linked where compatible, not where a CRC changed, as the real
// depmod judges); A and its extra/ are removed: no link dangles, a compatible build of another
// kernel replaces A's, and status shows a required module missing where none is left.
func TestAdminScenario(t *testing.T) {
	s := newScenario(t, abiA, abiB, abiC)
	A, B, C := rel(abiA), rel(abiB), rel(abiC)
	// B and C are "added later": their trees exist (the package unpacked) before the hook runs.
	for _, name := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		s.install(A, name, ".xz")
	}
	os.MkdirAll(filepath.Join(s.root, "etc", "kabiguard", "required.d"), 0o755)
	os.WriteFile(filepath.Join(s.root, "etc", "kabiguard", "required.d", "t.conf"), []byte("kabidemo early\n"), 0o644)

	for _, k := range []string{B, C} {
		s.mustWeakModules("", "--add-kernel", k)
		fromA := map[string]string{}
		for _, name := range []string{"kabidemo", "kabiprov", "kabiuser"} {
			fromA[name] = s.builds[A][name]
		}
		rejected := s.rejectedByDepmod(k, fromA)
		got := linkedModules(t, s.root, k)
		for name := range fromA {
			if got[name] == rejected[name] {
				t.Errorf("%s: %s linked=%v but depmod rejects it=%v", k, name, got[name], rejected[name])
			}
		}
		for name := range got {
			if !depmodIndexes(t, s.root, k, "weak-updates/"+name+"/"+name+".ko.xz") {
				t.Errorf("%s: modules.dep does not list the link for %s", k, name)
			}
		}
		t.Logf("%s: linked %v, depmod rejects %v", k, sortedKeys(got), sortedKeys(rejected))
	}
	if len(linkedModules(t, s.root, B))+len(linkedModules(t, s.root, C)) == 0 {
		t.Fatal("nothing linked: the scenario exercises nothing")
	}

	// B got its own build of the pair (a DKMS build for B); then A goes away.
	s.install(B, "kabiprov", ".xz")
	s.install(B, "kabiuser", ".xz")
	s.mustWeakModules(filepath.Join(s.root, "lib/modules", B, "extra/kabiprov/kabiprov.ko.xz")+"\n"+
		filepath.Join(s.root, "lib/modules", B, "extra/kabiuser/kabiuser.ko.xz")+"\n", "--add-modules")
	s.mustWeakModules("", "--remove-kernel", A)
	if err := os.RemoveAll(filepath.Join(s.root, "lib", "modules", A)); err != nil {
		t.Fatal(err)
	}
	s.mustWeakModules("", "--add-kernel", C) // a later hook run sees A gone
	if d := dangling(t, s.root); len(d) > 0 {
		t.Fatalf("dangling links after A's removal: %v", d)
	}
	// C's pair now comes from B where B's build is compatible with C (depmod decides).
	rejected := s.rejectedByDepmod(C, map[string]string{"kabiprov": s.builds[B]["kabiprov"], "kabiuser": s.builds[B]["kabiuser"]})
	for l, target := range links(t, s.root) {
		if strings.HasPrefix(l, C+"/") && strings.Contains(l, "kabiprov") {
			if rejected["kabiprov"] || !strings.Contains(target, "/"+B+"/") {
				t.Errorf("%s -> %s: want B's build (depmod rejects it: %v)", l, target, rejected["kabiprov"])
			}
		}
	}
	if !rejected["kabiprov"] && !linkedModules(t, s.root, C)["kabiprov"] {
		t.Errorf("C has no kabiprov link although B's build is compatible")
	}
	// kabidemo: required, its only build is gone: status says missing, exit 1.
	var out bytes.Buffer
	code := runKabiguard(t, &out, "status", "--root", s.root)
	if code != 1 || !regexp.MustCompile(`(?m)^`+B+`\s+kabidemo\*\s+missing`).MatchString(out.String()) {
		t.Fatalf("status exit %d, want kabidemo missing in %s:\n%s", code, B, out.String())
	}
}

// runKabiguard runs the kabiguard binary, built once per test binary.
func runKabiguard(t *testing.T, out *bytes.Buffer, args ...string) int {
	t.Helper()
	cmd := exec.Command(kabiguardBinary(t), args...)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

var kabiguardBin string

func kabiguardBinary(t *testing.T) string {
	t.Helper()
	if kabiguardBin == "" {
		dir, err := os.MkdirTemp("", "kabiguard-bin")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "kabiguard")
		if out, err := exec.Command("go", "build", "-o", p, "../kabiguard").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v %s", err, out)
		}
		kabiguardBin = p
	}
	return kabiguardBin
}

// treeState is what a root's module trees look like to the loader: every weak-updates link and
// every kernel's modules.dep.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	ls := links(t, root)
	var names []string
	for l := range ls {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		b.WriteString(l + " -> " + ls[l] + "\n")
	}
	deps, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*", "modules.dep"))
	for _, d := range deps {
		data, _ := os.ReadFile(d)
		b.WriteString("== " + d[len(root):] + "\n")
		b.Write(data)
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*", ".kabiguard-*"))
	for _, l := range leftovers {
		b.WriteString("leftover " + l[len(root):] + "\n")
	}
	return b.String()
}

// setupEquivalence builds the input of the equivalence and crash tests: A's extra/ holds the
// module set, B's extra/ its own build of the pair, C nothing.
func setupEquivalence(t *testing.T) *scenario {
	s := newScenario(t, abiA, abiB, abiC)
	for _, name := range []string{"kabidemo", "kabiprov", "kabiuser"} {
		s.install(rel(abiA), name, "")
	}
	s.install(rel(abiB), "kabiprov", ".zst")
	s.install(rel(abiB), "kabiuser", ".zst")
	return s
}

// TestWeakModulesEqualsLink: `weak-modules --basedir DIR` (once per kernel, as kernel
// packages call it) and one `kabiguard link --root DIR` give the same tree on the same input.
func TestWeakModulesEqualsLink(t *testing.T) {
	s1 := setupEquivalence(t)
	for _, abi := range []string{abiA, abiB, abiC} {
		s1.mustWeakModules("", "--add-kernel", rel(abi))
	}
	s2 := setupEquivalence(t)
	var out bytes.Buffer
	if code := runKabiguard(t, &out, "link", "--root", s2.root); code != 0 {
		t.Fatalf("kabiguard link: exit %d\n%s", code, out.String())
	}
	a := strings.ReplaceAll(treeState(t, s1.root), s1.root, "ROOT")
	b := strings.ReplaceAll(treeState(t, s2.root), s2.root, "ROOT")
	if a != b {
		t.Fatalf("weak-modules and kabiguard link differ:\n--- weak-modules\n%s\n--- link\n%s", a, b)
	}
	if n := len(links(t, s1.root)); n < 3 {
		t.Fatalf("only %d links: the comparison is too weak\n%s", n, a)
	}
}

// TestKill9Repair kills `kabiguard link` with SIGKILL at every step in turn (each link change,
// each depmod start) and checks that the next run leaves the tree exactly as an uninterrupted
// run does: no leftover temporary link, no dangling link, depmod's indexes current.
func TestKill9Repair(t *testing.T) {
	ref := setupEquivalence(t)
	var out bytes.Buffer
	if code := runKabiguard(t, &out, "link", "--root", ref.root); code != 0 {
		t.Fatalf("reference run: exit %d\n%s", code, out.String())
	}
	want := strings.ReplaceAll(treeState(t, ref.root), ref.root, "ROOT")
	steps := strings.Count(out.String(), "\n") // one line per change; depmod runs follow
	killed := 0
	for at := 1; at <= steps+3; at++ {
		s := setupEquivalence(t)
		cmd := exec.Command(kabiguardBinary(t), "link", "--root", s.root)
		cmd.Env = append(os.Environ(), "KABIGUARD_TEST_KILL_AT="+strconv.Itoa(at))
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok && ee.String() == "signal: killed" {
			killed++
		} else if err != nil {
			t.Fatalf("kill at %d: %v", at, err)
		}
		out.Reset()
		if code := runKabiguard(t, &out, "link", "--root", s.root); code != 0 {
			t.Fatalf("repair after kill at step %d: exit %d\n%s", at, code, out.String())
		}
		if got := strings.ReplaceAll(treeState(t, s.root), s.root, "ROOT"); got != want {
			t.Fatalf("after kill at step %d and a repair run the tree differs:\n--- got\n%s\n--- want\n%s", at, got, want)
		}
	}
	if killed < 3 {
		t.Fatalf("only %d runs were killed: the fault points are not reached", killed)
	}
	t.Logf("%d kill points, each repaired by the next run", killed)
}

// TestGroupLinkedWholeWithLeftoverFiles: a kernel's extra/ holding both foo.ko and foo.ko.zst
// (an unpacked leftover next to a package's file) is one build of foo, not two; the pair
// kabiprov/kabiuser is still linked whole, both links from the same kernel.
func TestGroupLinkedWholeWithLeftoverFiles(t *testing.T) {
	s := setupEquivalence(t)
	B, C := rel(abiB), rel(abiC)
	testkit.Install(t, s.root, B, "extra/kabiuser/kabiuser.ko", s.builds[B]["kabiuser"])
	testkit.Install(t, s.root, B, "extra/kabiprov/kabiprov.ko", s.builds[B]["kabiprov"])
	s.mustWeakModules("", "--add-kernel", C)
	from := map[string]string{}
	for l, target := range links(t, s.root) {
		if strings.HasPrefix(l, C+"/") {
			from[moduleName(l)] = strings.Split(strings.TrimPrefix(target, "../../../"), "/")[0]
		}
	}
	if from["kabiprov"] == "" || from["kabiprov"] != from["kabiuser"] {
		t.Fatalf("the pair is not linked whole from one kernel into %s: %v", C, from)
	}
}

// TestConcurrentRunsSerialize starts several `kabiguard link` and `weak-modules --add-kernel`
// processes on one root at once: the lock serializes them, none fails, and the tree ends as
// one run leaves it.
func TestConcurrentRunsSerialize(t *testing.T) {
	ref := setupEquivalence(t)
	var out bytes.Buffer
	if code := runKabiguard(t, &out, "link", "--root", ref.root); code != 0 {
		t.Fatalf("reference run: exit %d\n%s", code, out.String())
	}
	want := strings.ReplaceAll(treeState(t, ref.root), ref.root, "ROOT")

	s := setupEquivalence(t)
	var cmds []*exec.Cmd
	outs := make([]bytes.Buffer, 4)
	for i := range outs {
		cmd := exec.Command(kabiguardBinary(t), "link", "--root", s.root)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("run %d: %v\n%s", i, err, outs[i].String())
		}
	}
	if got := strings.ReplaceAll(treeState(t, s.root), s.root, "ROOT"); got != want {
		t.Fatalf("concurrent runs left a different tree:\n--- got\n%s\n--- want\n%s", got, want)
	}
	made := 0
	for i := range outs {
		if strings.Contains(outs[i].String(), ": create ") {
			made++
		}
	}
	if made != 1 {
		t.Fatalf("%d runs created links; with the lock exactly one does the work", made)
	}
}
