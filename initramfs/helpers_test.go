package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it)", tool)
		}
	}
}

// run runs a command and returns its stdout; stdin may be nil.
func run(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// dracutImage builds a small image with the host's dracut, isolated from host config.
func dracutImage(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	needTools(t, "dracut", "lsinitrd")
	tmp := filepath.Join(dir, "tmp")
	conf := filepath.Join(dir, "conf.d")
	for _, d := range []string{tmp, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "initrd.img")
	args := append([]string{"-q", "--force", "--no-kernel", "-m", "base", "--tmpdir", tmp,
		"--conf", "/dev/null", "--confdir", conf, "--no-hostonly", "--kver", "0.0.0-kabiguard-test"}, extra...)
	run(t, nil, "dracut", append(args, img)...)
	return img
}

// lsinitrdLine matches one "ls -l" line of lsinitrd's listing.
var lsinitrdLine = regexp.MustCompile(`^[-dlcbps][-rwxsStT]{9}\s+\d+\s+\S+\s+\S+\s+(?:\d+|\d+,\s*\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+(.*)$`)

// lsinitrdNames returns the sorted, de-duplicated paths lsinitrd lists (early cpio included).
func lsinitrdNames(t testing.TB, img string) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, line := range strings.Split(string(run(t, nil, "lsinitrd", img)), "\n") {
		m := lsinitrdLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		if strings.HasPrefix(line, "l") {
			name, _, _ = strings.Cut(name, " -> ")
		}
		seen[name] = true
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func diffLists(a, b []string) (onlyA, onlyB []string) {
	ma, mb := map[string]bool{}, map[string]bool{}
	for _, x := range a {
		ma[x] = true
	}
	for _, x := range b {
		mb[x] = true
	}
	for _, x := range a {
		if !mb[x] {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !ma[x] {
			onlyB = append(onlyB, x)
		}
	}
	return
}
