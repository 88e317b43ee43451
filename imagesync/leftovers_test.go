package imagesync

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A depmod scratch tree whose name carries a dead pid is kept while a process holds its lock:
// in /dev/shm, shared by every pid namespace, the pid of a run in a container looks dead from
// the host. Once the lock is released it is removed, and the removal is said.
func TestScratchKeptWhileLocked(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	shm := "/dev/shm"
	if fi, err := os.Stat(shm); err != nil || !fi.IsDir() {
		shm = os.TempDir()
	}
	tree, err := os.MkdirTemp(shm, depmodScratchName(dead.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tree) })
	hold, err := lockScratch(tree, false) // the owner, running in "another namespace"
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	log := func(s string) { said = append(said, s) }
	RemoveLeftovers(t.TempDir(), log)
	if _, err := os.Stat(tree); err != nil {
		t.Fatalf("a locked scratch tree was removed (%v); said %q", err, said)
	}
	hold.Close()
	RemoveLeftovers(t.TempDir(), log)
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Fatalf("an unlocked scratch tree of a dead pid is still there: %v", err)
	}
	if !strings.Contains(strings.Join(said, "\n"), "removed "+tree) {
		t.Errorf("the removal was not said: %q", said)
	}
}
