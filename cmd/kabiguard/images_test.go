package main

// Issue 10, findings 3, 4, 5, 9 and the image parts of 13, and issue 11 point 2: the images
// that link changes make stale stay owed until refreshed, every refresh runs under the tree
// lock, a symlinked image is refreshed where it leads, killed runs leave nothing for good, and
// an image that is empty or not a regular file is an error at once. On the embedded sample
// (offline, seconds); killed and concurrent runs are real processes of the built binary.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/internal/testkit/sample"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// imgRoot is a sample root where link has run and 53 and 54 have current images.
type imgRoot struct {
	t    *testing.T
	root string
}

func newImgRoot(t *testing.T) *imgRoot {
	t.Helper()
	s := &imgRoot{t: t, root: sample.Root(t)}
	s.mustKG(0, "link", "--root", s.root)
	for _, k := range []string{sample.K53, sample.K54} {
		sample.Image(t, s.root, k, s.img(k))
		s.mustCurrent(k)
	}
	return s
}

func (s *imgRoot) img(k string) string {
	return filepath.Join(s.root, "boot", "initramfs-"+k+".img")
}

// kg runs kabiguard in-process and returns its exit status and output (stdout, then stderr).
func (s *imgRoot) kg(args ...string) (int, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String() + errOut.String()
}

func (s *imgRoot) mustKG(want int, args ...string) string {
	s.t.Helper()
	code, out := s.kg(args...)
	if code != want {
		s.t.Fatalf("kabiguard %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
	}
	return out
}

// verify is imagesync.Verify of k's image.
func (s *imgRoot) verify(k string) (*imagesync.VerifyReport, error) {
	cfg, err := config.Load(s.root)
	if err != nil {
		s.t.Fatal(err)
	}
	return imagesync.Verify(s.root, k, s.img(k), cfg)
}

func (s *imgRoot) mustCurrent(k string) {
	s.t.Helper()
	rep, err := s.verify(k)
	if err != nil {
		s.t.Fatalf("verify %s: %v", k, err)
	}
	if !rep.OK() {
		s.t.Fatalf("the image of %s is not current: %+v", k, rep.Modules)
	}
}

// dropKabiuser removes kabiuser's only build: link removes its links in 53 and 54, whose
// images then hold a copy of a module their trees no longer have.
func (s *imgRoot) dropKabiuser() {
	s.t.Helper()
	if err := os.Remove(filepath.Join(s.root, "lib/modules", sample.K50, "extra/kabiuser/kabiuser.ko.xz")); err != nil {
		s.t.Fatal(err)
	}
}

func (s *imgRoot) owed() []string {
	s.t.Helper()
	ks, err := weakupdates.ImagesOwed(s.root)
	if err != nil {
		s.t.Fatal(err)
	}
	return ks
}

// temps lists the temporary files under dir (any naming kabiguard ever used).
func temps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (rootfs.IsTemp(p) || strings.Contains(d.Name(), ".tmp-") || strings.HasSuffix(p, ".kabiguard-new")) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// binary builds kabiguard for the tests that need real processes (killed, concurrent).
func binary(t *testing.T) string {
	t.Helper()
	return testkit.BuildBinary(t, "kabiguard")
}

// kgProc runs the kabiguard binary with extra environment; killed reports a SIGKILL death.
func kgProc(t *testing.T, bin string, env []string, args ...string) (code int, killed bool, out string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, false, b.String()
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return -1, true, b.String()
		}
		return ee.ExitCode(), false, b.String()
	}
	t.Fatal(err)
	return 0, false, ""
}

// Finding 3: a link killed at any point after its first link change (each link change, each
// depmod, the image write) leaves the images owed; the next link does that work, says so, and
// leaves every image current, no marker and no temporary file.
func TestImageOwedAfterKilledLink(t *testing.T) {
	bin := binary(t)
	points := []string{"KABIGUARD_TEST_KILL_POINT=image-written"}
	for at := 1; at <= 5; at++ { // two link changes and two depmods, then beyond them
		points = append(points, "KABIGUARD_TEST_KILL_AT="+strconv.Itoa(at))
	}
	killedAfterChange := 0
	for _, p := range points {
		t.Run(p, func(t *testing.T) {
			s := newImgRoot(t)
			s.dropKabiuser()
			_, killed, _ := kgProc(t, bin, []string{p}, "link", "--root", s.root)
			changed := false
			for _, k := range []string{sample.K53, sample.K54} {
				if _, err := os.Lstat(filepath.Join(s.root, "lib/modules", k, "weak-updates/kabiuser/kabiuser.ko.xz")); err != nil {
					changed = true
				}
			}
			if killed && changed {
				killedAfterChange++
				if len(s.owed()) == 0 {
					t.Errorf("killed after a link change, and no image is owed")
				}
			}
			out := s.mustKG(0, "link", "--root", s.root)
			if killed && changed && !strings.Contains(out, "owed") {
				t.Errorf("the next link does not report the owed work:\n%s", out)
			}
			for _, k := range []string{sample.K53, sample.K54} {
				s.mustCurrent(k)
			}
			if o := s.owed(); len(o) != 0 {
				t.Fatalf("still owed after the repair run: %v", o)
			}
			if tt := temps(t, filepath.Join(s.root, "boot")); len(tt) != 0 {
				t.Fatalf("temporary files left: %v", tt)
			}
			if out := s.mustKG(0, "link", "--root", s.root); !strings.Contains(out, "up to date") || strings.Contains(out, "owed") {
				t.Fatalf("a third run still has work:\n%s", out)
			}
		})
	}
	if killedAfterChange < 3 {
		t.Fatalf("only %d runs were killed after a link change", killedAfterChange)
	}
}

// Finding 3: /boot full (a tiny tmpfs): the refresh fails, link exits non-zero, the image
// stays owed and status says so; the next link fails again rather than saying "up to date";
// once there is room, link refreshes it. No temporary file is left in /boot at any point.
func TestImageOwedAfterENOSPC(t *testing.T) {
	testkit.NeedsRoot(t, "mounts a tiny tmpfs on boot/")
	s := newImgRoot(t)
	boot := filepath.Join(s.root, "boot")
	saved := map[string][]byte{}
	for _, k := range []string{sample.K53, sample.K54} {
		data, err := os.ReadFile(s.img(k))
		if err != nil {
			t.Fatal(err)
		}
		saved[k] = data
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "kabiguard-test", boot).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", boot).Run() })
	for k, data := range saved {
		if err := os.WriteFile(s.img(k), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	filler := filepath.Join(boot, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()

	s.dropKabiuser()
	code, out := s.kg("link", "--root", s.root)
	if code == 0 || !strings.Contains(out, "no space left") {
		t.Fatalf("link with /boot full: exit %d\n%s", code, out)
	}
	if o := s.owed(); len(o) != 2 {
		t.Errorf("owed after the failed refresh: %v, want 53 and 54", o)
	}
	if _, out := s.kg("status", "--root", s.root); !strings.Contains(out, "owed") {
		t.Errorf("status does not say the images are owed:\n%s", out)
	}
	if tt := temps(t, boot); len(tt) != 0 {
		t.Fatalf("temporary files left in /boot: %v", tt)
	}
	code, out = s.kg("link", "--root", s.root)
	if code == 0 || !strings.Contains(out, "owed") {
		t.Fatalf("the next link, /boot still full: exit %d\n%s", code, out)
	}
	os.Remove(filler)
	out = s.mustKG(0, "link", "--root", s.root)
	if !strings.Contains(out, "refreshed") {
		t.Fatalf("link with room again refreshed nothing:\n%s", out)
	}
	for _, k := range []string{sample.K53, sample.K54} {
		s.mustCurrent(k)
	}
	if o := s.owed(); len(o) != 0 {
		t.Fatalf("still owed: %v", o)
	}
	if _, out := s.kg("status", "--root", s.root); strings.Contains(out, "owed") {
		t.Fatalf("status still says owed:\n%s", out)
	}
}

// Finding 3: a link that fails on a read-only kernel tree (53's) still refreshes the image
// of the kernel whose links it did change (54), and once 53's tree is writable again the next
// link changes it and refreshes its image.
func TestImageOwedAfterReadOnlyTree(t *testing.T) {
	testkit.NeedsRoot(t, "bind-mounts a kernel tree read-only")
	s := newImgRoot(t)
	dir53 := filepath.Join(s.root, "lib/modules", sample.K53)
	for _, args := range [][]string{{"--bind", dir53, dir53}, {"-o", "remount,bind,ro", dir53}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", dir53).Run() })
	s.dropKabiuser()
	code, out := s.kg("link", "--root", s.root)
	if code == 0 {
		t.Fatalf("link on a read-only tree exited 0:\n%s", out)
	}
	s.mustCurrent(sample.K54)
	if out, err := exec.Command("umount", dir53).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	s.mustKG(0, "link", "--root", s.root)
	for _, k := range []string{sample.K53, sample.K54} {
		s.mustCurrent(k)
	}
	if o := s.owed(); len(o) != 0 {
		t.Fatalf("still owed: %v", o)
	}
}

// Issue 11 point 2: --no-initramfs (Debian's DKMS passes it always) defers the image work, it
// does not cancel it: the images stay owed, status says so, and the next kernel hook does it.
func TestNoInitramfsDefers(t *testing.T) {
	s := newImgRoot(t)
	s.dropKabiuser()
	out := s.mustKG(0, "link", "--root", s.root, "--no-initramfs")
	if !strings.Contains(out, "owed") {
		t.Errorf("link --no-initramfs does not say the images are owed:\n%s", out)
	}
	if _, out := s.kg("status", "--root", s.root); !strings.Contains(out, sample.K53) || !strings.Contains(out, "owed") {
		t.Errorf("status does not say the images are owed:\n%s", out)
	}
	// The hook of the kernel being installed (53, whose image its installation builds next)
	// refreshes the other kernel's owed image.
	out = s.mustKG(0, "hook", "add", sample.K53, "--root", s.root)
	if !strings.Contains(out, sample.K54+": its initramfs is owed") || !strings.Contains(out, "refreshed") {
		t.Fatalf("hook add does not do and report the owed work:\n%s", out)
	}
	s.mustCurrent(sample.K54)
	// 53's own debt stays until a later run finds its image current: its generator may yet
	// fail or never run. The next link does that and settles it.
	if o := s.owed(); len(o) != 1 || o[0] != sample.K53 {
		t.Fatalf("owed after the hook: %v, want 53 alone", o)
	}
	s.mustKG(0, "link", "--root", s.root)
	s.mustCurrent(sample.K53)
	if o := s.owed(); len(o) != 0 {
		t.Fatalf("still owed after the next link: %v", o)
	}
}

// Finding 4: `initramfs refresh` runs under the tree lock. It computes its image from the tree
// as it is, and is held (a test pause point) before it replaces the image; meanwhile a link
// changes the tree. Without the lock the link finishes first and the refresh then puts an
// image of the old tree over the link's; with it the link waits, and the image ends current.
func TestRefreshUnderLock(t *testing.T) {
	bin := binary(t)
	s := newImgRoot(t)
	// 53's image holds 54's build of kabiprov: the refresh has a copy to replace.
	img := s.img(sample.K53)
	k53 := filepath.Join(s.root, "lib/modules", sample.K53)
	link := filepath.Join(k53, "weak-updates/kabiprov/kabiprov.ko.xz")
	target, _ := os.Readlink(link)
	os.Remove(link)
	os.Symlink(sample.Module(sample.K54, "kabiprov"), link)
	sample.Image(t, s.root, sample.K53, img)
	os.Remove(link)
	os.Symlink(target, link)
	if rep, _ := s.verify(sample.K53); rep == nil || rep.OK() {
		t.Fatal("the image is not stale")
	}

	gate := filepath.Join(t.TempDir(), "go")
	refresh := exec.Command(bin, "initramfs", "refresh", "--root", s.root, "-k", sample.K53, img)
	refresh.Env = append(os.Environ(), "KABIGUARD_TEST_PAUSE_POINT=image-written:"+gate)
	var refreshOut bytes.Buffer
	refresh.Stdout, refresh.Stderr = &refreshOut, &refreshOut
	if err := refresh.Start(); err != nil {
		t.Fatal(err)
	}
	defer refresh.Process.Kill()
	waitFor(t, gate+".reached", 20*time.Second)

	s.dropKabiuser()
	linkCmd := exec.Command(bin, "link", "--root", s.root)
	var linkOut bytes.Buffer
	linkCmd.Stdout, linkCmd.Stderr = &linkOut, &linkOut
	if err := linkCmd.Start(); err != nil {
		t.Fatal(err)
	}
	linkDone := make(chan error, 1)
	go func() { linkDone <- linkCmd.Wait() }()
	finishedFirst := false
	select {
	case err := <-linkDone:
		finishedFirst = true
		linkDone <- err
	case <-time.After(3 * time.Second):
	}
	os.WriteFile(gate, nil, 0o644)
	if err := refresh.Wait(); err != nil {
		t.Fatalf("refresh: %v\n%s", err, refreshOut.String())
	}
	if err := <-linkDone; err != nil {
		t.Fatalf("link: %v\n%s", err, linkOut.String())
	}
	if finishedFirst {
		t.Errorf("link finished while a refresh was between reading the tree and replacing the image")
	}
	s.mustCurrent(sample.K53)
	s.mustCurrent(sample.K54)
}

func waitFor(t *testing.T, path string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear within %v", path, d)
}

func sum(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// Finding 5: an image path that is a symlink (relative or absolute, inside the root) is
// refreshed where it leads: the link stays a link, the file it names becomes current. One
// that leads outside the root is refused with an error naming it, and the file outside is
// never touched.
func TestSymlinkedImage(t *testing.T) {
	s := newImgRoot(t)
	real := filepath.Join(s.root, "boot", "real")
	os.MkdirAll(real, 0o755)
	links := map[string]string{ // kernel → link target as stored
		sample.K53: "real/initramfs-" + sample.K53 + ".img",
		sample.K54: "/boot/real/initramfs-" + sample.K54 + ".img",
	}
	for k, target := range links {
		if err := os.Rename(s.img(k), filepath.Join(real, filepath.Base(s.img(k)))); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, s.img(k)); err != nil {
			t.Fatal(err)
		}
	}
	s.dropKabiuser()
	out := s.mustKG(0, "link", "--root", s.root)
	if strings.Count(out, "refreshed") != 2 {
		t.Fatalf("link did not refresh both images:\n%s", out)
	}
	for k, target := range links {
		if got, err := os.Readlink(s.img(k)); err != nil || got != target {
			t.Fatalf("%s is no longer the symlink to %s: %q %v", s.img(k), target, got, err)
		}
		s.mustCurrent(k)
	}
	if tt := temps(t, s.root); len(tt) != 0 {
		t.Fatalf("temporary files left: %v", tt)
	}

	// A link that leaves the root.
	outside := filepath.Join(filepath.Dir(s.root), "outside")
	os.MkdirAll(outside, 0o755)
	escaped := filepath.Join(outside, "initramfs-"+sample.K54+".img")
	if err := os.Rename(filepath.Join(real, "initramfs-"+sample.K54+".img"), escaped); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.img(sample.K54))
	if err := os.Symlink("../../outside/initramfs-"+sample.K54+".img", s.img(sample.K54)); err != nil {
		t.Fatal(err)
	}
	before := sum(t, escaped)
	for _, args := range [][]string{
		{"initramfs", "refresh", "--root", s.root, "-k", sample.K54, s.img(sample.K54)},
		{"initramfs", "verify", "--root", s.root, "-k", sample.K54, s.img(sample.K54)},
	} {
		code, out := s.kg(args...)
		if code != 2 || !strings.Contains(out, "leads outside the root") || !strings.Contains(out, s.img(sample.K54)) {
			t.Fatalf("%s of an image leading outside the root: exit %d\n%s", args[1], code, out)
		}
	}
	// link owes the image and refuses it the same way.
	if err := weakupdates.MarkImageOwed(s.root, sample.K54); err != nil {
		t.Fatal(err)
	}
	if code, out := s.kg("link", "--root", s.root); code != 2 || !strings.Contains(out, "leads outside the root") {
		t.Fatalf("link with an image leading outside the root: exit %d\n%s", code, out)
	}
	if sum(t, escaped) != before {
		t.Fatal("the file outside the root was changed")
	}
}

// deadPid returns the pid of a process that has ended.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// Finding 9: a refresh killed while writing the image, or while its depmod scratch tree
// exists, leaves them under names that carry rootfs.TempMarker and its pid; the next run
// removes them (and only those of dead processes) and says so.
func TestImageLeftoversRemoved(t *testing.T) {
	bin := binary(t)
	for _, point := range []string{"image-written", "depmod-scratch"} {
		t.Run(point, func(t *testing.T) {
			s := newImgRoot(t)
			s.dropKabiuser()
			s.mustKG(0, "link", "--root", s.root, "--no-initramfs")
			shmBefore := scratchDirs(t)
			_, killed, out := kgProc(t, bin, []string{"KABIGUARD_TEST_KILL_POINT=" + point},
				"initramfs", "refresh", "--root", s.root, "-k", sample.K53, s.img(sample.K53))
			if !killed {
				t.Fatalf("the refresh was not killed at %s:\n%s", point, out)
			}
			var left []string
			if point == "image-written" {
				left = temps(t, filepath.Join(s.root, "boot"))
			} else {
				for d := range scratchDirs(t) {
					if !shmBefore[d] && rootfs.IsTemp(d) { // not another test binary's
						left = append(left, d)
					}
				}
			}
			if len(left) != 1 || !rootfs.IsTemp(left[0]) {
				t.Fatalf("a killed refresh left %v; want one name carrying %s", left, rootfs.TempMarker)
			}
			out = s.mustKG(0, "link", "--root", s.root)
			_, statErr := os.Stat(left[0])
			// /dev/shm is shared with the test packages running beside this one, whose kabiguard
			// runs remove dead runs' scratch trees too: one of them may have got there first.
			sharedGone := point == "depmod-scratch" && os.IsNotExist(statErr)
			if !strings.Contains(out, "removed "+left[0]) && !sharedGone {
				t.Fatalf("the next run does not report removing %s:\n%s", left[0], out)
			}
			if _, err := os.Stat(left[0]); err == nil {
				t.Fatalf("%s is still there", left[0])
			}
			s.mustCurrent(sample.K53)
		})
	}
	t.Run("only-dead-runs", func(t *testing.T) {
		s := newImgRoot(t)
		boot := filepath.Join(s.root, "boot")
		dead := filepath.Join(boot, ".initramfs-"+sample.K53+".img"+rootfs.TempMarker+strconv.Itoa(deadPid(t)))
		sleeper := exec.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		defer sleeper.Process.Kill()
		live := filepath.Join(boot, ".initramfs-"+sample.K54+".img"+rootfs.TempMarker+strconv.Itoa(sleeper.Process.Pid))
		notOurs := filepath.Join(boot, "notes"+rootfs.TempMarker+strconv.Itoa(deadPid(t)))
		old := filepath.Join(boot, ".initrd.img-"+sample.K53+".tmp-123456789") // the older naming, an hour old
		young := filepath.Join(boot, ".initrd.img-"+sample.K54+".tmp-987654321")
		for _, p := range []string{dead, live, notOurs, old, young} {
			if err := os.WriteFile(p, []byte("partial image"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		hourAgo := time.Now().Add(-time.Hour)
		os.Chtimes(old, hourAgo, hourAgo)
		out := s.mustKG(0, "initramfs", "refresh", "--root", s.root, "-k", sample.K53, s.img(sample.K53))
		for p, gone := range map[string]bool{dead: true, old: true, live: false, notOurs: false, young: false} {
			_, err := os.Stat(p)
			if gone != (err != nil) {
				t.Errorf("%s: removed %v, want %v\n%s", filepath.Base(p), err != nil, gone, out)
			}
		}
	})
}

// scratchDirs lists the depmod scratch trees in /dev/shm.
func scratchDirs(t *testing.T) map[string]bool {
	ents, _ := os.ReadDir("/dev/shm")
	out := map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "kabiguard-depmod") {
			out[filepath.Join("/dev/shm", e.Name())] = true
		}
	}
	return out
}

// Finding 13 (images): an empty image is an error naming it, never "0 modules, all current";
// a FIFO given as the image is an error at once, never a hang, under the root or outside it.
func TestImageEmptyOrNotRegular(t *testing.T) {
	s := newImgRoot(t)
	img := s.img(sample.K53)
	if err := os.Truncate(img, 0); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"verify", "refresh", "ls"} {
		code, out := s.kg("initramfs", sub, "--root", s.root, "-k", sample.K53, img)
		if code != 2 || !strings.Contains(out, img) || !strings.Contains(out, "empty") {
			t.Errorf("%s of an empty image: exit %d\n%s", sub, code, out)
		}
	}
	fifoIn := filepath.Join(s.root, "boot", "fifo.img")
	fifoOut := filepath.Join(t.TempDir(), "fifo.img")
	for _, f := range []string{fifoIn, fifoOut} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"verify", "refresh", "ls"} {
			args := []string{"initramfs", sub, "--root", s.root, "-k", sample.K53, f}
			done := make(chan string, 1)
			go func() {
				code, out := s.kg(args...)
				done <- fmt.Sprintf("exit %d\n%s", code, out)
			}()
			select {
			case got := <-done:
				if !strings.HasPrefix(got, "exit 2") || !strings.Contains(got, "not a regular file") {
					t.Errorf("%s of a FIFO (%s): %s", sub, f, got)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s of a FIFO (%s) hangs", sub, f)
			}
		}
	}
}

// A build removed behind kabiguard's back leaves its weak-updates links dangling while
// modules.dep still lists them: status shows the dangling links (not silence: the module has
// no build anywhere any more), the images that hold a copy are stale (not "unreadable": the
// tree simply has no such module now), verify says so without an error, and the next link
// removes the links and refreshes the images.
func TestDanglingLinkMakesImageStale(t *testing.T) {
	s := newImgRoot(t)
	s.dropKabiuser()
	rep, err := s.verify(sample.K53)
	if err != nil {
		t.Fatalf("verify with a dangling link in the tree: %v", err)
	}
	for _, m := range rep.Modules {
		if m.Name == "kabiuser" && m.State != imagesync.ModNotInTree {
			t.Errorf("kabiuser's copy is %s, want %s", m.State, imagesync.ModNotInTree)
		}
	}
	var rows []weakupdates.Row
	var stdout, stderr bytes.Buffer
	run([]string{"status", "--root", s.root, "--json"}, &stdout, &stderr)
	out := stdout.String()
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s%s", err, out, stderr.String())
	}
	dangling := map[string]bool{}
	for _, r := range rows {
		if r.Module == "kabiuser" && r.State == weakupdates.Dangling {
			dangling[r.Kernel] = true
		}
	}
	for _, k := range []string{sample.K53, sample.K54} {
		if _, err := os.Readlink(filepath.Join(s.root, "lib/modules", k, "weak-updates/kabiuser/kabiuser.ko.xz")); err == nil && !dangling[k] {
			t.Errorf("status shows no dangling kabiuser row for %s, whose link dangles:\n%s", k, out)
		}
	}
	_, text := s.kg("status", "--root", s.root)
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s.img(sample.K53)) && !strings.Contains(line, " stale ") {
			t.Errorf("the image line of %s is not stale:\n%s", sample.K53, text)
		}
	}
	// Refreshing the image from that tree would drop kabiuser (a required early module the
	// same way): refused, naming the link, until link has removed or re-pointed it.
	if code, out := s.kg("initramfs", "refresh", "--root", s.root, "-k", sample.K53, s.img(sample.K53)); code == 0 ||
		!strings.Contains(out, "weak-updates/kabiuser/kabiuser.ko.xz: points at nothing") {
		t.Errorf("initramfs refresh with a dangling link: exit %d\n%s", code, out)
	}
	s.mustKG(0, "link", "--root", s.root)
	s.mustCurrent(sample.K53)
	s.mustCurrent(sample.K54)
}
