package bls

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const machineID = "5f1b6c2a9e8d4b7c8a3f0e2d1c4b6a79"

// rhelEntry is an entry as RHEL 9's kernel-install (20-grubby.install copying the kernel's
// bls.conf) writes it: grub's variables and keys beside the spec's.
func rhelEntry(k string) string {
	return "title Red Hat Enterprise Linux (" + k + ") 9.4 (Plow)\n" +
		"version " + k + "\n" +
		"linux /vmlinuz-" + k + "\n" +
		"initrd /initramfs-" + k + ".img $tuned_initrd\n" +
		"options root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M $tuned_params\n" +
		"grub_users $grub_users\n" +
		"grub_arg --unrestricted\n" +
		"grub_class rhel\n"
}

// loaderEntry is an entry as systemd 252's 90-loaderentry.install writes it: aligned keys, the
// machine id as entry token, the kernel and initrd copied into $BOOT/TOKEN/K/.
func loaderEntry(k string) string {
	return "title      Debian GNU/Linux 12 (bookworm)\n" +
		"version    " + k + "\n" +
		"machine-id " + machineID + "\n" +
		"sort-key   debian\n" +
		"options    root=UUID=0b9a2b1e-2f43-4d6c-9b51-3a7c2d9e8f10 ro quiet\n" +
		"linux      /" + machineID + "/" + k + "/linux\n" +
		"initrd     /" + machineID + "/" + k + "/initrd.img-" + k + "\n"
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseBothWriters(t *testing.T) {
	const k = "5.14.0-427.13.1.el9_4.x86_64"
	e := Parse([]byte(rhelEntry(k)))
	if e.Version != k || e.Linux != "/vmlinuz-"+k || !slices.Equal(e.Initrd, []string{"/initramfs-" + k + ".img", "$tuned_initrd"}) {
		t.Errorf("RHEL entry: %+v", e)
	}
	e = Parse([]byte(loaderEntry(k)))
	if e.Version != k || e.Title != "Debian GNU/Linux 12 (bookworm)" || e.Linux != "/"+machineID+"/"+k+"/linux" || len(e.Initrd) != 1 {
		t.Errorf("90-loaderentry entry: %+v", e)
	}
}

// TestForKernel: a kernel's entries are found by their version key or by file name (boot
// counting aside), in /boot and the ESP's /efi; other kernels' and the rescue entry are not.
func TestForKernel(t *testing.T) {
	const k, other = "5.14.0-427.13.1.el9_4.x86_64", "5.14.0-362.8.1.el9_3.x86_64"
	root := t.TempDir()
	if Used(root) {
		t.Fatal("Used: true without an entry directory")
	}
	if got, err := ForKernel(root, k, ""); err != nil || len(got) != 0 {
		t.Fatalf("no entries: %v, %v", got, err)
	}
	entries := filepath.Join(root, "boot", "loader", "entries")
	write(t, filepath.Join(entries, machineID+"-"+k+".conf"), rhelEntry(k))
	write(t, filepath.Join(entries, machineID+"-"+other+".conf"), rhelEntry(other))
	write(t, filepath.Join(entries, machineID+"-0-rescue.conf"), "# written by hand\ntitle rescue\nversion 0-rescue-"+machineID+"\nlinux /vmlinuz-0-rescue-"+machineID+"\n")
	write(t, filepath.Join(root, "efi", "loader", "entries", "custom-token-"+k+"+2-1.conf"), "title no version key\nlinux /x/linux\n")
	write(t, filepath.Join(entries, "renamed.conf"), loaderEntry(k))
	write(t, filepath.Join(entries, "notes.txt"), "version "+k+"\n")
	if !Used(root) {
		t.Fatal("Used: false with /boot/loader/entries")
	}
	got, err := ForKernel(root, k, "")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
	}
	want := []string{
		"/boot/loader/entries/" + machineID + "-" + k + ".conf",
		"/boot/loader/entries/renamed.conf",
		"/efi/loader/entries/custom-token-" + k + "+2-1.conf",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("ForKernel:\n got %q\nwant %q", paths, want)
	}
}

// TestForKernelBootRoot: kernel-install's $BOOT elsewhere (KERNEL_INSTALL_BOOT_ROOT) is one
// more place, below the root like the others.
func TestForKernelBootRoot(t *testing.T) {
	const k = "6.1.0-54-amd64"
	root := t.TempDir()
	write(t, filepath.Join(root, "srv", "esp", "loader", "entries", "testtoken-"+k+".conf"), loaderEntry(k))
	for bootRoot, want := range map[string]int{"": 0, "/srv/esp": 1, "srv/esp/": 1, "/boot": 0} {
		got, err := ForKernel(root, k, bootRoot)
		if err != nil || len(got) != want {
			t.Errorf("bootRoot %q: %v, %v; want %d entries", bootRoot, got, err, want)
		}
	}
}

// TestConfiguredBootRoot: BOOT_ROOT= of the install.conf kernel-install reads, /etc's first.
func TestConfiguredBootRoot(t *testing.T) {
	root := t.TempDir()
	if got := ConfiguredBootRoot(root); got != "" {
		t.Errorf("no install.conf: %q", got)
	}
	write(t, filepath.Join(root, "usr/lib/kernel/install.conf"), "# stock\nlayout=bls\nBOOT_ROOT=/efi\n")
	if got := ConfiguredBootRoot(root); got != "/efi" {
		t.Errorf("/usr/lib's: %q", got)
	}
	write(t, filepath.Join(root, "etc/kernel/install.conf"), "layout=bls\n#BOOT_ROOT=/nope\nBOOT_ROOT=\"/srv/boot\"\n")
	if got := ConfiguredBootRoot(root); got != "/srv/boot" {
		t.Errorf("/etc's: %q", got)
	}
}

// /boot/loader linked to the ESP's loader directory (a common layout) lists each entry once.
func TestLinkedLoaderDirListedOnce(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "efi/loader/entries")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../efi/loader", filepath.Join(root, "boot/loader")); err != nil {
		t.Fatal(err)
	}
	const k = "6.1.0-50-amd64"
	if err := os.WriteFile(filepath.Join(dir, "abc-"+k+".conf"), []byte("title Debian\nversion "+k+"\nlinux /vmlinuz-"+k+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ForKernel(root, k, "")
	if err != nil || len(got) != 1 {
		t.Fatalf("ForKernel = %+v, %v; want the one entry once", got, err)
	}
}

// ByID finds the entry GRUB's saved_entry names in any entry directory, keys separated by a
// tab as the specification allows; an id with a slash is no entry.
func TestByID(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "efi/loader/entries")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const k = "6.1.0-54-amd64"
	if err := os.WriteFile(filepath.Join(dir, machineID+"-"+k+".conf"), []byte("title\tDebian\nversion\t"+k+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, ok := ByID(root, machineID+"-"+k)
	if !ok || e.Version != k || e.Path != "/efi/loader/entries/"+machineID+"-"+k+".conf" {
		t.Errorf("ByID = %+v, %v", e, ok)
	}
	if _, ok := ByID(root, "../entries/"+machineID+"-"+k); ok {
		t.Errorf("an id with a slash was found")
	}
}
