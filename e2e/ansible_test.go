package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/internal/testkit"
)

// contrib/ansible/kabiguard-forecast.yml with the real ansible-playbook, connection local, on
// sandbox roots built from the embedded sample, with real .deb kernel packages made of the
// sample's kernels by dpkg-deb. What each node should answer is kabiguard forecast's own
// verdict on that root (run directly): the playbook passes a node whose kernel keeps every
// required module, fails one that would lose one with a message naming the kernel and the
// modules, exits non-zero when a node failed, and removes its copy of the package.
func TestAnsibleForecast(t *testing.T) {
	testkit.Slow(t, "runs the real ansible-playbook")
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Fatal("ansible-playbook not found: install ansible-core (.ci/run does)")
	}
	bin := testkit.BuildBinary(t, "kabiguard")
	roots := map[string]string{"keeps": testkit.SampleDemoRoot(t), "loses": testkit.SampleDemoRoot(t)}
	// "keeps" requires kabiprov, whose 6.1.0-50 build loads into both sample kernels; "loses"
	// requires kabidemo as the demo does, whose build does not load into 6.1.0-54.
	conf := filepath.Join(roots["keeps"], "etc/kabiguard/required.d/demo.conf")
	if err := os.WriteFile(conf, []byte("kabiprov\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb53, deb54 := sampleKernelDeb(t, testkit.SampleK53), sampleKernelDeb(t, testkit.SampleK54)
	lost := func(node, deb string) []string { l, _ := forecastLost(t, bin, roots[node], deb); return l }
	// The report names as many modules as the forecast on the node's root judges: the
	// playbook judged that root, not the controller's /.
	judged := func(node, deb string) string {
		_, n := forecastLost(t, bin, roots[node], deb)
		return fmt.Sprintf("%d modules judged", n)
	}
	if len(lost("loses", deb53)) != 0 || len(lost("keeps", deb54)) != 0 || len(lost("loses", deb54)) == 0 {
		t.Fatalf("the sample no longer gives one kernel that keeps and one that loses kabidemo: 53 %v, 54 keeps %v, loses %v",
			lost("loses", deb53), lost("keeps", deb54), lost("loses", deb54))
	}

	// One node, a kernel that keeps its required module: the play passes.
	out, code := runPlaybook(t, playbook, bin, deb53, map[string]string{"localhost": roots["loses"]})
	if code != 0 || !regexp.MustCompile(`localhost\s+: ok=\d+ .*failed=0`).MatchString(out) ||
		!strings.Contains(out, testkit.SampleK53+": gate pass, "+judged("loses", deb53)) {
		t.Errorf("a kernel that keeps every required module: exit %d\n%s", code, out)
	}

	// Two nodes, a kernel only one of them can take: that one fails, the run exits non-zero.
	out, code = runPlaybook(t, playbook, bin, deb54, map[string]string{"keeps": roots["keeps"], "loses": roots["loses"]})
	if code == 0 {
		t.Errorf("a node would lose a required module, yet ansible-playbook exits 0:\n%s", out)
	}
	if !regexp.MustCompile(`keeps\s+: ok=\d+ .*failed=0`).MatchString(out) || !regexp.MustCompile(`loses\s+: ok=\d+ .*failed=1`).MatchString(out) {
		t.Errorf("the recap does not fail exactly the losing node:\n%s", out)
	}
	fatal := regexp.MustCompile(`fatal: \[loses\]: FAILED! => .*"msg": "([^"]*)"`).FindStringSubmatch(out)
	if fatal == nil {
		t.Fatalf("no failure message for the losing node:\n%s", out)
	}
	for _, m := range lost("loses", deb54) {
		if !strings.Contains(fatal[1], testkit.SampleK54+" would boot without") || !strings.Contains(fatal[1], m+" (") {
			t.Errorf("the failure message does not name %s would boot without %s: %q", testkit.SampleK54, m, fatal[1])
		}
	}
	if !strings.Contains(out, testkit.SampleK54+": gate pass, "+judged("keeps", deb54)) ||
		!strings.Contains(out, testkit.SampleK54+": gate refuse, "+judged("loses", deb54)) {
		t.Errorf("the per-node reports are missing:\n%s", out)
	}
	if strings.Contains(out, "fatal: [keeps]") {
		t.Errorf("the node that keeps its modules failed:\n%s", out)
	}
}

// runPlaybook runs the playbook with kernel package deb against local nodes (name -> sandbox
// root) and returns its output and exit code. Ansible's own files go to a temporary home;
// the nodes' temporary directories to TMPDIR, checked empty afterwards.
func runPlaybook(t *testing.T, playbook, bin, deb string, nodes map[string]string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	var inv strings.Builder
	for name, root := range nodes {
		fmt.Fprintf(&inv, "%s ansible_connection=local ansible_python_interpreter=/usr/bin/python3 kabiguard_root=%s\n", name, root)
	}
	inventory := filepath.Join(dir, "inventory")
	if err := os.WriteFile(inventory, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(playbook, "-i", inventory, filepath.Join(testkit.RepoDir(), "contrib/ansible/kabiguard-forecast.yml"),
		"-e", "kernel_package="+deb, "-e", "kabiguard_bin="+bin)
	cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+filepath.Join(dir, "home"), "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "local"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0", "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*.kabiguard")); len(left) > 0 {
		t.Errorf("the playbook left its copies: %v", left)
	}
	return string(out), code
}

// forecastLost is what kabiguard forecast, run directly on root, says the package's kernels
// would boot without, and how many modules it judged.
func forecastLost(t *testing.T, bin, root, deb string) ([]string, int) {
	t.Helper()
	out, err := exec.Command(bin, "forecast", "--json", "--root", root, deb).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("kabiguard forecast --root %s %s: %v", root, deb, err)
	}
	var reports []struct {
		Lost    []string
		Modules []json.RawMessage
	}
	if err := json.Unmarshal(out, &reports); err != nil {
		t.Fatal(err)
	}
	var lost []string
	n := 0
	for _, r := range reports {
		lost = append(lost, r.Lost...)
		n += len(r.Modules)
	}
	return lost, n
}

// sampleKernelDeb builds with the real dpkg-deb a kernel image package of a sample kernel:
// its symvers file and in-tree module under lib/modules/RELEASE.
func sampleKernelDeb(t *testing.T, release string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "linux-image-"+release)
	src := filepath.Join(testkit.RepoDir(), "testdata/sample/kernels", release)
	dst := filepath.Join(dir, "lib/modules", release)
	if err := os.MkdirAll(filepath.Join(dir, "DEBIAN"), 0o755); err != nil || os.MkdirAll(filepath.Dir(dst), 0o755) != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	control := fmt.Sprintf("Package: linux-image-%s-sample\nVersion: 1\nArchitecture: amd64\nMaintainer: kabiguard tests <root@localhost>\nDescription: sample kernel %s\n", release, release)
	if err := os.WriteFile(filepath.Join(dir, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := dir + ".deb"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-b", dir, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -b: %v\n%s", err, out)
	}
	return deb
}
