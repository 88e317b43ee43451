// Package hostile runs the two campaigns of issue 10 ("Beyond the findings") against the real
// binaries on sandbox roots built like scripts/demo.sh builds its root:
//
//   - fault injection (fault_test.go): kill -9 of `kabiguard link`, `weak-modules --add-kernel`
//     and `kabiguard initramfs refresh` at every fault point (KABIGUARD_TEST_KILL_AT) and after
//     seeded random delays, and write failures (a read-only bind mount of a kernel tree, a tiny
//     tmpfs on /boot); then the next run must finish the owed work and leave the tree exactly
//     as a run without faults does.
//   - hostile trees (trees_test.go): symlinks out of the root, FIFOs, loops, hard links, odd
//     names, a cyclic modules.dep, a truncated module, a zero-length image, directories where
//     files belong, each against every command: no hang, no panic, no write outside the root,
//     no exit 0 after an error line.
//
// Every command runs in a private mount namespace (unshare -m) whose /dev/shm is a directory
// of the case, so leftovers are seen per case and nothing is left on the host; the faults'
// mounts live and die in that namespace. The tests need root and util-linux's unshare, kmod's
// depmod: what the e2e tests already need. The binaries are built once per run.
package hostile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/initramfs"
	"github.com/kabiguard/kabiguard/internal/compression"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/kmod"
)

const (
	K50 = "6.1.0-50-amd64"
	K53 = "6.1.0-53-amd64"
	K54 = "6.1.0-54-amd64"

	// fakeGenEnv makes the test binary act as the initramfs generator (dracut's command line):
	// the campaigns never run the host's dracut, which would take a minute per image.
	fakeGenEnv = "KABIGUARD_HOSTILE_FAKE_GENERATOR"
	// harnessFail is the wrapper script's exit status when setting up a case failed.
	harnessFail = 97
)

var (
	binDir  string // kabiguard, weak-modules, kabiguard-gate, built once in TestMain
	fakeGen string // this test binary, run as the generator
	// cmdSlots bounds the commands running at once: the machine has 2 cores, and a command
	// slowed by too many neighbours would look like a hang.
	cmdSlots = make(chan struct{}, 4)
)

const slotHold = 2 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(fakeGenEnv) == "1" {
		os.Exit(fakeGenerator(os.Args[1:]))
	}
	if flag.Parse(); testing.Short() { // both campaigns need root: nothing to build for -short
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kabiguard-hostile-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, name := range []string{"kabiguard", "weak-modules", "kabiguard-gate"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = testkit.RepoDir()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/%s: %v\n%s", name, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	binDir = dir
	if fakeGen, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Most of the campaigns' time is spent waiting (on a hang's timeout, on a kill's delay):
	// more parallel subtests than cores, unless -parallel was given; cmdSlots bounds the CPU.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "16")
	}
	code := m.Run()
	os.RemoveAll(dir)
	if d, err := globalDecoy(); err == nil {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// fakeGenerator writes the image a dracut run would make, as scripts/demo-initrd does, from
// the command line kabiguard gives a generator: --force --kver K [--kmoddir DIR] OUT.
func fakeGenerator(args []string) int {
	var kver, kmoddir string
	for len(args) > 1 {
		switch args[0] {
		case "--kver":
			kver, args = args[1], args[2:]
		case "--kmoddir":
			kmoddir, args = args[1], args[2:]
		default:
			args = args[1:]
		}
	}
	if kver == "" || len(args) != 1 {
		fmt.Fprintln(os.Stderr, "fake generator: usage: --force --kver K [--kmoddir DIR] OUT")
		return 1
	}
	if kmoddir == "" {
		kmoddir = filepath.Join("/lib/modules", kver)
	}
	data, err := imageOf(kmoddir, kver)
	if err == nil {
		err = os.WriteFile(args[0], data, 0o600) // dracut writes its output in place too
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake generator:", err)
		return 1
	}
	return 0
}

// imageOf is scripts/demo-initrd's image of a kernel's module tree dir: every module file
// (weak-updates links followed) and the modules.* files, zstd-compressed. Only regular files
// are read, so a hostile tree cannot hang the generator (a hang must be kabiguard's own).
func imageOf(dir, release string) ([]byte, error) {
	files := []initramfs.File{
		initramfs.Symlink("lib", "usr/lib"),
		initramfs.Regular("init", 0o755, []byte("#!/bin/sh\n")),
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !kmod.IsModule(rel) && !strings.HasPrefix(rel, "modules.") {
			return nil
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, initramfs.Regular("usr/lib/modules/"+release+"/"+filepath.ToSlash(rel), 0o644, data))
		return nil
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := (initramfs.Writer{Compression: compression.Zstd}).Encode(&buf, files); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeImage writes root's image of release as scripts/demo-initrd does.
func writeImage(t testing.TB, root, release string) {
	t.Helper()
	data, err := imageOf(kmod.ModulesDir(root, release), release)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(root, "boot"), 0o755))
	must(t, os.WriteFile(imagePath(root, release), data, 0o600))
}

func imagePath(root, release string) string {
	return filepath.Join(root, "boot", "initramfs-"+release+".img")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------------
// Sandbox roots.

// addKernel installs a sample kernel's files (its symvers and in-tree module), as demo.sh does.
func addKernel(t testing.TB, root, release string) {
	t.Helper()
	copyTree(t, filepath.Join(testkit.RepoDir(), "testdata", "sample", "kernels", release), kmod.ModulesDir(root, release))
}

// addKmod installs the sample build of module for kernel in its extra/MODULE/, as demo.sh does.
func addKmod(t testing.TB, root, kernel string, modules ...string) {
	t.Helper()
	for _, m := range modules {
		src := filepath.Join(testkit.RepoDir(), "testdata", "sample", "modules", kernel, m+".ko.xz")
		copyFile(t, src, filepath.Join(kmod.ModulesDir(root, kernel), "extra", m, m+".ko.xz"))
	}
}

// baseRoot is demo.sh's root: kernels (each indexed by depmod, as its package does), the kmod
// packages' files, `kabidemo early` required, kabiguard's depmod.d file.
func baseRoot(t testing.TB, root string, kernels ...string) {
	t.Helper()
	for _, k := range kernels {
		addKernel(t, root, k)
	}
	must(t, os.MkdirAll(filepath.Join(root, "etc", "kabiguard", "required.d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "kabiguard", "required.d", "demo.conf"), []byte("kabidemo early\n"), 0o644))
	copyFile(t, filepath.Join(testkit.RepoDir(), "depmod.d", "kabiguard.conf"), filepath.Join(root, "etc", "depmod.d", "kabiguard.conf"))
	for _, k := range kernels {
		switch k {
		case K50:
			addKmod(t, root, K50, "kabidemo", "kabiprov", "kabiuser")
		case K54:
			addKmod(t, root, K54, "kabidemo") // demo.sh step 4: a kmod for 6.1.0-54 arrives
		}
		depmod(t, root, k)
	}
}

// depmod indexes root's tree of release as a kernel or kmod package's scriptlet does.
func depmod(t testing.TB, root, release string) {
	t.Helper()
	cmd := exec.Command("depmod", "-C", filepath.Join(root, "etc", "depmod.d"), "-b", root, release)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("depmod -b %s %s: %v\n%s", root, release, err, out)
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	must(t, os.WriteFile(dst, data, 0o644))
}

// copyTree copies src to dst with cp -a: symlinks stay symlinks, modes and times are kept.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	must(t, os.MkdirAll(dst, 0o755))
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// ---------------------------------------------------------------------------------------------
// One case: a directory holding the root and the scratch of the commands run on it.
//
//	dir/root     the sandbox root (--root, --basedir)
//	dir/shm      bind-mounted on /dev/shm for each command
//	dir/tmp      $TMPDIR of each command
//	dir/cwd      each command's working directory
//	dir/outside  decoys beside the root (and the targets of hostile symlinks)

type sandbox struct {
	dir, root, shm, tmp, cwd, outside string
}

func newSandbox(t testing.TB, dir string) *sandbox {
	t.Helper()
	s := &sandbox{dir: dir, root: filepath.Join(dir, "root"), shm: filepath.Join(dir, "shm"),
		tmp: filepath.Join(dir, "tmp"), cwd: filepath.Join(dir, "cwd"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{s.root, s.shm, s.tmp, s.cwd, s.outside} {
		must(t, os.MkdirAll(d, 0o755))
	}
	// Decoys a stray write would change: beside the root, and in the commands' cwd.
	must(t, os.WriteFile(filepath.Join(s.outside, "decoy"), []byte("decoy beside the root\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(s.cwd, "decoy.ko"), []byte("decoy in the working directory\n"), 0o644))
	return s
}

// fromTemplate makes a sandbox in a new temporary directory whose root is a copy of tmpl.
func fromTemplate(t testing.TB, tmpl string) *sandbox {
	t.Helper()
	s := newSandbox(t, t.TempDir())
	copyTree(t, tmpl, s.root)
	return s
}

// runOpts are one command's circumstances.
type runOpts struct {
	stdin     string
	env       []string
	prelude   string        // shell run in the command's mount namespace first (faults)
	post      string        // shell run after it in the namespace (its status is kept)
	userns    bool          // run in a new user namespace too (kabiguard-gate: no module loads)
	timeout   time.Duration // default 20 s; then the process group is killed
	killAfter time.Duration // > 0: SIGKILL the process group after this delay
}

type result struct {
	stdout, stderr string
	code           int  // exit status; -1 when killed by a signal
	killed         bool // ended by SIGKILL (its own fault point, ours, or the timeout's)
	timedOut       bool
	took           time.Duration
}

func (r result) String() string {
	st := fmt.Sprintf("exit %d", r.code)
	if r.timedOut {
		st = "HUNG (killed after the timeout)"
	} else if r.killed {
		st = "killed"
	}
	return fmt.Sprintf("%s in %v\n--- stdout\n%s--- stderr\n%s", st, r.took.Round(time.Millisecond), clip(r.stdout), clip(r.stderr))
}

// clip keeps a report readable when a command dumps a whole goroutine trace.
func clip(s string) string {
	const max = 2000
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("\n[... %d more bytes]\n", len(s)-max)
}

// run runs argv on the sandbox in a private mount namespace whose /dev/shm is s.shm.
func (s *sandbox) run(t testing.TB, o runOpts, argv ...string) result {
	t.Helper()
	// A command holds a slot for at most slotHold: one still running then is most likely
	// hung (blocked, using no CPU), and must not keep the others waiting until its timeout.
	cmdSlots <- struct{}{}
	var release sync.Once
	free := func() { release.Do(func() { <-cmdSlots }) }
	defer free()
	slotTimer := time.AfterFunc(slotHold, free)
	defer slotTimer.Stop()
	script := fmt.Sprintf("mount --bind %s /dev/shm || exit %d\n", shq(s.shm), harnessFail)
	if o.prelude != "" {
		script += "{ " + o.prelude + "\n} || exit " + fmt.Sprint(harnessFail) + "\n"
	}
	if o.post == "" {
		script += `exec "$@"` + "\n" // the command is the process a kill hits
	} else {
		script += "\"$@\"\nrc=$?\n{ " + o.post + "\n} || exit " + fmt.Sprint(harnessFail) + "\nexit $rc\n"
	}
	wrap := []string{"unshare", "-m", "--propagation", "private"}
	if o.userns {
		wrap = []string{"unshare", "-U", "-r", "-m", "--propagation", "private"}
	}
	args := append(append(wrap, "sh", "-c", script, "sh"), argv...)
	timeout := o.timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	// Its own process group, so a hang's timeout kills its children too; killed with the test
	// binary, so a test timeout leaves no hung command behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = s.cwd
	cmd.Env = append(os.Environ(), "TMPDIR="+s.tmp, "LC_ALL=C", fakeGenEnv+"=1",
		"KERNEL_INSTALL_INITRD_GENERATOR="+fakeGen)
	cmd.Env = append(cmd.Env, o.env...)
	cmd.Stdin = strings.NewReader(o.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	if o.killAfter > 0 {
		tm := time.AfterFunc(o.killAfter, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		defer tm.Stop()
	}
	err := cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start), code: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.killed = ws.Signal() == syscall.SIGKILL
	}
	r.timedOut = ctx.Err() != nil
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", argv, err)
	}
	if r.code == harnessFail {
		t.Fatalf("setting up the namespace of %v failed:\n%s", argv, r)
	}
	return r
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ---------------------------------------------------------------------------------------------
// Observations.

// snapshot describes every entry under dir without following symlinks or opening anything
// but regular files: path, type, mode, size, mtime, content hash, link target. Two equal
// snapshots mean nothing was written there.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(&b, "%q error %v\n", p, err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			fmt.Fprintf(&b, "%q error %v\n", p, err)
			return nil
		}
		fmt.Fprintf(&b, "%q %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %q", target)
		case fi.Mode().IsRegular():
			fmt.Fprintf(&b, " %s", hashFile(p))
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func hashFile(p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// depmodTemp names the temporary index that depmod writes (FILE.PID.SEC.USEC) before its
// rename: a depmod killed with the kabiguard that ran it leaves one. depmod never reads it and
// kabiguard never deletes what it did not create, so the equality invariant leaves it out.
var depmodTemp = regexp.MustCompile(`^lib/modules/[^/]+/modules\.[a-z.]+\.[0-9]+\.[0-9]+\.[0-9]+$`)

// treeState is the root's content as the equality invariant sees it: every entry's path, type
// and link target, regular files' content except the images (whose bytes depend on the
// order of work; their modules are compared through verify), with the root written ROOT.
func treeState(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			lines = append(lines, fmt.Sprintf("%q error %v", p, err))
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if depmodTemp.MatchString(rel) {
			return nil // depmod's own, see depmodTemp
		}
		line := fmt.Sprintf("%q %v", rel, d.Type())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case d.Type().IsRegular() && !strings.HasPrefix(rel, "boot/"):
			line += " " + hashFile(p)
		}
		lines = append(lines, line)
		return nil
	})
	sort.Strings(lines)
	return strings.ReplaceAll(strings.Join(lines, "\n"), root, "ROOT")
}

// leftovers lists temporary files under root and in the case's /dev/shm and $TMPDIR.
func (s *sandbox) leftovers() []string {
	var out []string
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if strings.Contains(name, ".kabiguard-tmp-") || strings.Contains(name, ".tmp-") ||
			strings.Contains(name, ".kabiguard-new") {
			out = append(out, p)
		}
		return nil
	})
	for _, d := range []string{s.shm, s.tmp} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	return out
}

// danglingLinks lists the links under every weak-updates of root that resolve to nothing, or
// out of the root. Absolute targets are taken as meaning the root (chroot semantics).
func danglingLinks(root string) []string {
	var out []string
	wus, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*", "weak-updates"))
	for _, wu := range wus {
		// A symlinked weak-updates (the admin's, not a link kabiguard made) is walked where
		// it leads within the root; one leading out is the write check's business.
		if target, err := os.Readlink(wu); err == nil {
			if filepath.IsAbs(target) {
				wu = filepath.Join(root, target)
			} else {
				wu = filepath.Join(filepath.Dir(wu), target)
			}
			if fi, err := os.Lstat(wu); err != nil || !fi.IsDir() || !within(root, wu) {
				continue
			}
		}
		filepath.WalkDir(wu, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			target, _ := os.Readlink(p)
			var abs string
			if filepath.IsAbs(target) {
				abs = filepath.Join(root, target)
			} else {
				abs = filepath.Join(filepath.Dir(p), target)
			}
			if !within(root, abs) {
				out = append(out, p+" -> "+target+" (out of the root)")
			} else if _, err := os.Stat(abs); err != nil {
				out = append(out, p+" -> "+target+" (dangling)")
			}
			return nil
		})
	}
	return out
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// globalDecoy is a directory in /tmp, outside every sandbox, whose files no case may change.
var globalDecoy = sync.OnceValues(func() (string, error) {
	d, err := os.MkdirTemp("/tmp", "kabiguard-hostile-decoy-")
	if err != nil {
		return "", err
	}
	for i, name := range []string{"passwd", "kabiguard.conf", "x.ko"} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(fmt.Sprintf("HOSTILE-DECOY-%d\n", i)), 0o644); err != nil {
			return "", err
		}
	}
	return d, nil
})

func decoyDir(t testing.TB) string {
	t.Helper()
	d, err := globalDecoy()
	must(t, err)
	return d
}
