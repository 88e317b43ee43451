package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kabiguard/kabiguard/gate"
	"github.com/kabiguard/kabiguard/internal/testkit"
	"github.com/kabiguard/kabiguard/weakupdates"
)

const bootMachineID = "5f1b6c2a9e8d4b7c8a3f0e2d1c4b6a79"

// writeBLSEntry writes kernel k's entry as RHEL 9 has it (the kernel's bls.conf copied by
// 20-grubby.install, named MACHINE-ID-K.conf) and returns its root-relative path.
func writeBLSEntry(t *testing.T, root, k string) string {
	t.Helper()
	rel := "/boot/loader/entries/" + bootMachineID + "-" + k + ".conf"
	must(t, os.MkdirAll(filepath.Join(root, "boot", "loader", "entries"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, rel), []byte("title Red Hat Enterprise Linux ("+k+") 9.4 (Plow)\n"+
		"version "+k+"\nlinux /vmlinuz-"+k+"\ninitrd /initramfs-"+k+".img $tuned_initrd\n"+
		"options root=/dev/mapper/rhel-root ro $tuned_params\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class rhel\n"), 0o644))
	return rel
}

// bootRoot is the demo root after 'kabiguard link': 53 gets kabidemo weak and passes the
// gate, 54 cannot load it (CRCs differ) and is refused.
func bootRoot(t *testing.T) string {
	t.Helper()
	t.Setenv("KERNEL_INSTALL_LAYOUT", "")
	t.Setenv("KERNEL_INSTALL_BOOT_ROOT", "")
	root := testkit.SampleDemoRoot(t)
	var out, errOut bytes.Buffer
	if code := run([]string{"link", "--root", root, "--no-initramfs"}, &out, &errOut); code != exitOK {
		t.Fatalf("link: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	return root
}

func gateRun(t *testing.T, root, k string, json bool) (int, string) {
	t.Helper()
	args := []string{"gate", "--root", root, "-k", k, "--no-initrd"}
	if json {
		args = append(args, "--json")
	}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String() + errOut.String()
}

// TestGateNamesTheBootEntry: a refusal names the BLS entry that already boots the kernel
// (written before the 86 plugin ran, as RHEL's 20-grubby.install does), in text and JSON; with
// none, it says kernel-install's 90-loaderentry will write none; on a host without BLS it
// says nothing of entries.
func TestGateNamesTheBootEntry(t *testing.T) {
	root := bootRoot(t)
	k := testkit.SampleK54

	code, out := gateRun(t, root, k, false)
	if code != exitProblem || strings.Contains(out, "boot entry") {
		t.Fatalf("no BLS: exit %d, and no word of boot entries wanted:\n%s", code, out)
	}

	entry := writeBLSEntry(t, root, k)
	writeBLSEntry(t, root, testkit.SampleK53)
	code, out = gateRun(t, root, k, false)
	if code != exitProblem || !strings.Contains(out, "boot entry "+entry+" exists already") {
		t.Errorf("entry present: exit %d, want %d naming %s:\n%s", code, exitProblem, entry, out)
	}
	code, out = gateRun(t, root, k, true)
	var res gate.Result
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &res); err != nil || code != exitProblem {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	if !slices.Equal(res.BootEntries, []string{entry}) {
		t.Errorf("--json boot_entries = %q, want [%s]", res.BootEntries, entry)
	}
	if _, err := os.Stat(filepath.Join(root, entry)); err != nil {
		t.Errorf("the gate touched the entry: %v", err)
	}

	must(t, os.Remove(filepath.Join(root, entry)))
	code, out = gateRun(t, root, k, false)
	if code != exitProblem || !strings.Contains(out, "no boot entry for "+k+": kernel-install writes it in 90-loaderentry, after this gate") {
		t.Errorf("entry absent: exit %d, want the 90-loaderentry note:\n%s", code, out)
	}
	if code, out := gateRun(t, root, testkit.SampleK53, false); code != exitOK || out != "" {
		t.Errorf("53 passes silently: exit %d\n%s", code, out)
	}
}

// TestStatusNamesTheBootEntries: on a BLS host status has a BOOT ENTRY table (each kernel's
// entry, and for the refused kernel that kernel-install writes none) and boot_entries in
// --json; without entry directories neither appears.
func TestStatusNamesTheBootEntries(t *testing.T) {
	root := bootRoot(t)
	status := func(args ...string) string {
		var out, errOut bytes.Buffer
		run(append([]string{"status", "--root", root}, args...), &out, &errOut)
		return out.String()
	}
	if out := status(); strings.Contains(out, "BOOT ENTRY") || strings.Contains(status("--json"), "boot_entries") {
		t.Fatalf("no BLS, yet boot entries shown:\n%s", out)
	}
	e53 := writeBLSEntry(t, root, testkit.SampleK53)
	out := status()
	_, table, ok := strings.Cut(out, "BOOT ENTRY")
	if !ok {
		t.Fatalf("no BOOT ENTRY table:\n%s", out)
	}
	for _, want := range []string{
		testkit.SampleK53 + "  " + e53,
		testkit.SampleK54 + "  -",
		"the gate refuses this kernel: kernel-install writes no entry for it",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("BOOT ENTRY table lacks %q:\n%s", want, table)
		}
	}
	var rows []weakupdates.Row
	must(t, json.Unmarshal([]byte(status("--json")), &rows))
	for _, r := range rows {
		want := []string(nil)
		if r.Kernel == testkit.SampleK53 {
			want = []string{e53}
		}
		if !slices.Equal(r.BootEntries, want) {
			t.Errorf("--json %s/%s boot_entries = %q, want %q", r.Kernel, r.Module, r.BootEntries, want)
		}
	}
}

// TestStatusBootRootFromInstallConf: entries below the BOOT_ROOT an admin set in
// /etc/kernel/install.conf are found too, for status and the gate.
func TestStatusBootRootFromInstallConf(t *testing.T) {
	root := bootRoot(t)
	must(t, os.MkdirAll(filepath.Join(root, "etc", "kernel"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "kernel", "install.conf"), []byte("layout=bls\nBOOT_ROOT=/srv/boot\n"), 0o644))
	entry := "/srv/boot/loader/entries/" + bootMachineID + "-" + testkit.SampleK54 + ".conf"
	must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, entry)), 0o755))
	must(t, os.WriteFile(filepath.Join(root, entry), []byte("title T\nversion "+testkit.SampleK54+"\nlinux /vmlinuz-"+testkit.SampleK54+"\n"), 0o644))
	var out, errOut bytes.Buffer
	run([]string{"status", "--root", root}, &out, &errOut)
	if !strings.Contains(out.String(), testkit.SampleK54+"  "+entry+"  the gate refuses this kernel, but this entry still boots it") {
		t.Errorf("status does not name %s:\n%s", entry, out.String())
	}
	if code, out := gateRun(t, root, testkit.SampleK54, false); code != exitProblem || !strings.Contains(out, "boot entry "+entry+" exists already") {
		t.Errorf("gate: exit %d, not naming %s:\n%s", code, entry, out)
	}
}
