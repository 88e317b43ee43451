package metrics

import (
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/kabiguard/kabiguard/status"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Snapshot is what Render exports.
type Snapshot struct {
	Root    string // image paths are shown relative to it ("/boot/initrd.img-K")
	Report  *status.Report
	Boot    Boot    // the default boot kernel; Kernel "" when no kernel is installed
	LastRun LastRun // the last run that keeps links and images; zero when none is recorded
}

// LastRun is the outcome of a run that keeps links and images (hooks.Run).
type LastRun struct {
	End time.Time // zero: no run recorded
	OK  bool      // it did everything it had to (exit 0, or a kernel removal's warning only)
}

// moduleStates is every state a status row can have (weakupdates.State's range).
var moduleStates = func() []weakupdates.State {
	var out []weakupdates.State
	for st := weakupdates.Native; st <= weakupdates.Undecided; st++ {
		out = append(out, st)
	}
	return out
}()

// Render writes s in the Prometheus text exposition format.
func Render(w io.Writer, s Snapshot) error {
	rep := s.Report
	var states []string
	for _, st := range moduleStates {
		states = append(states, st.String())
	}
	state := &family{name: "kabiguard_module_state", help: "State of an external or required module for an installed kernel, as 'kabiguard status' shows it: 1 for the current state, 0 for every other one (" + strings.Join(states, ", ") + ")."}
	required := &family{name: "kabiguard_module_required", help: "1 when the module is required (/etc/kabiguard/required.d), 0 when it is an external module only."}
	for _, r := range rep.Rows {
		for _, st := range moduleStates {
			state.add(flag(r.State == st), "kernel", r.Kernel, "module", r.Module, "state", st.String())
		}
		required.add(flag(r.Required), "kernel", r.Kernel, "module", r.Module)
	}
	ready := &family{name: "kabiguard_kernel_ready", help: "1 when the kernel may boot as the gate sees it: every required module native or weak, every required early one in its initramfs."}
	dangling := &family{name: "kabiguard_dangling_links", help: "Number of the kernel's weak-updates links that point at nothing (the next 'kabiguard link' removes them)."}
	for _, k := range rep.Kernels {
		ready.add(flag(rep.Ready(k)), "kernel", k)
		dangling.add(float64(len(rep.Dangling[k])), "kernel", k)
	}
	boot := &family{name: "kabiguard_boot_kernel_ready", help: "Readiness (as kabiguard_kernel_ready) of the kernel the boot loader starts by default; source says how it was found: grub-saved-entry (grubenv's saved_entry names a BLS entry), vmlinuz-symlink (/vmlinuz or /boot/vmlinuz), newest (the newest installed kernel, grub-mkconfig's first entry)."}
	if s.Boot.Kernel != "" {
		boot.add(flag(rep.Ready(s.Boot.Kernel)), "kernel", s.Boot.Kernel, "source", s.Boot.Source)
	}
	image := &family{name: "kabiguard_image_state", help: "State of the kernel's initramfs against its module tree, as 'kabiguard status' shows it: 1 for the current state, 0 for every other one (" + strings.Join(status.ImageStates, ", ") + "); image is its path in the root, empty when there is none."}
	stale := &family{name: "kabiguard_image_stale", help: "1 when the kernel's initramfs holds module copies that are not the builds its tree resolves to (the next 'kabiguard link' refreshes it)."}
	for _, im := range rep.Images {
		for _, st := range status.ImageStates {
			image.add(flag(im.State == st), "kernel", im.Kernel, "image", inRoot(s.Root, im.Image), "state", st)
		}
		stale.add(flag(im.State == status.ImageStale), "kernel", im.Kernel, "image", inRoot(s.Root, im.Image))
	}
	ok := &family{name: "kabiguard_status_ok", help: "1 when 'kabiguard status' would exit 0: every kernel ready and every module readable."}
	ok.add(flag(rep.OK()))
	lastEnd := &family{name: "kabiguard_last_run_timestamp_seconds", help: "Unix time the last run that keeps links and images (kabiguard link, the kernel hooks, weak-modules) ended; 0 when none has run since this file was first written."}
	lastOK := &family{name: "kabiguard_last_run_success", help: "1 when that run did everything it had to, 0 when it failed or none is recorded."}
	end := 0.0
	if !s.LastRun.End.IsZero() {
		end = float64(s.LastRun.End.Unix())
	}
	lastEnd.add(end)
	lastOK.add(flag(s.LastRun.OK && end != 0))
	return write(w, []*family{state, required, ready, boot, dangling, image, stale, ok, lastEnd, lastOK})
}

// inRoot is host path p as seen inside root ("/boot/initrd.img-K"): the same on every host
// and whatever --root was.
func inRoot(root, p string) string {
	if root == "" || p == "" {
		return p
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return p
	}
	return "/" + rel
}
