package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/bls"
	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/gate"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// gateCmd is the install-time gate: kernel-install's 86-kabiguard-gate.install and the Debian
// postinst.d hooks run it before the kernel gets a boot entry.
type gateCmd struct {
	Kernel   string   `required:"" short:"k" placeholder:"RELEASE" help:"The kernel being installed."`
	Root     string   `default:"/" placeholder:"DIR" help:"Root directory holding lib/modules, boot, etc and usr/src." type:"path"`
	Initrd   []string `placeholder:"IMAGE" help:"An initramfs the kernel will boot with (repeatable). Default: the initrd* files of $$KERNEL_INSTALL_STAGING_AREA, else /boot/initrd.img-RELEASE and the like." type:"path"`
	Staging  string   `placeholder:"DIR" env:"KERNEL_INSTALL_STAGING_AREA" help:"kernel-install's staging area; its initrd* files are looked into."`
	NoInitrd bool     `help:"Do not look into any initramfs (the Debian hook that runs before the initramfs generator)."`
	BootRoot string   `placeholder:"DIR" env:"KERNEL_INSTALL_BOOT_ROOT" help:"kernel-install's $$BOOT: its loader/entries is looked into for the kernel's boot entry, besides /boot's. Default: BOOT_ROOT= of etc/kernel/install.conf."`
	JSON     bool     `help:"Print the verdict as JSON: {kernel, ok, action, initrds, modules: [{name, early, source, state, from, path, depends, initrd, ok, reason, problems}]}."`
	Verbose  bool     `short:"v" help:"Also say what passed."`
}

func (gateCmd) Help() string {
	return `Every module listed in /etc/kabiguard/required.d/*.conf must load into the kernel: its own
build or a weak-updates link to a kABI-compatible one, indexed by depmod, with every module
it depends on. A module marked 'early' must also be inside the initramfs the kernel boots
with. If one does not, the reason (module, symbol, wanted and found CRC) and the ways out
are printed and the exit status is 1, so kernel-install writes no boot entry and a Debian
kernel package's postinst stops before the initramfs and boot loader are updated.
With on_missing_required = warn in /etc/kabiguard/kabiguard.conf the reason is printed as
a warning and the exit status is 0.

Exit status: 0 the kernel may boot (or warn), 1 refused, 2 the gate could not decide.

Examples:
  kabiguard gate --kernel 6.1.0-54-amd64
  kabiguard gate -k 6.1.0-54-amd64 --initrd /boot/initrd.img-6.1.0-54-amd64 --json
  kabiguard gate -k 6.1.0-54-amd64 --no-initrd --root /srv/image`
}

func (c *gateCmd) Run(e *env) error {
	cfg, err := config.Load(c.Root)
	if err != nil {
		return err
	}
	if c.Staging != "" {
		if fi, err := os.Stat(c.Staging); err != nil || !fi.IsDir() {
			c.Staging = "" // a stale variable from an outer kernel-install run
		}
	}
	if len(cfg.Required) > 0 {
		// A kernel that is not there is a mistake to report (exit 2), not a kernel to refuse
		// with advice to rebuild modules for it. Nothing required: nothing to decide.
		if err := kernelInstalled(c.Root, c.Kernel); err != nil {
			return err
		}
	}
	if c.BootRoot == "" {
		c.BootRoot = bls.ConfiguredBootRoot(c.Root)
	}
	res, err := gate.Check(gate.Options{
		Root: c.Root, Kernel: c.Kernel, Config: cfg,
		Initrds: c.Initrd, StagingArea: c.Staging, NoInitrd: c.NoInitrd, BootRoot: c.BootRoot,
	})
	if err != nil {
		return fmt.Errorf("gate for %s could not decide: %w", c.Kernel, err)
	}
	if c.JSON {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else {
		printGate(e, res, c.Verbose, c.Root, filepath.Join(c.Root, config.MainFile))
	}
	if res.Action == gate.Refuse {
		return problemError{}
	}
	return nil
}

func printGate(e *env, res *gate.Result, verbose bool, root, mainFile string) {
	switch res.Action {
	case gate.Pass:
		if !verbose {
			return
		}
		if len(res.Modules) == 0 {
			fmt.Fprintf(e.stdout, "kabiguard: %s: no module is required\n", res.Kernel)
			return
		}
		for _, m := range res.Modules {
			how := m.State
			if m.From != "" {
				how += " from " + m.From
			}
			if m.Early {
				how += ", in the initramfs"
			}
			fmt.Fprintf(e.stdout, "kabiguard: %s: %s loads (%s: %s)\n", res.Kernel, m.Name, how, m.Path)
		}
	case gate.Refuse:
		fmt.Fprintf(e.stderr, "kabiguard: refusing kernel %s: it would boot without a required module\n", res.Kernel)
		for _, m := range res.Failed() {
			fmt.Fprintf(e.stderr, "  %s\n", m.Reason)
		}
		fmt.Fprintln(e.stderr, "Ways out:")
		for _, a := range gate.Advice(res, root, mainFile) {
			fmt.Fprintf(e.stderr, "  - %s\n", a)
		}
		if note := gate.BootEntryNote(res, bls.Used(root) || len(res.BootEntries) > 0 || os.Getenv("KERNEL_INSTALL_LAYOUT") == "bls"); note != "" {
			fmt.Fprintf(e.stderr, "Note: %s\n", note)
		}
	case gate.Warn:
		fmt.Fprintf(e.stderr, "kabiguard: warning: kernel %s will boot without a required module (on_missing_required = warn):\n", res.Kernel)
		for _, m := range res.Failed() {
			fmt.Fprintf(e.stderr, "  %s\n", m.Reason)
		}
	}
}

// kernelInstalled fails unless release names a module tree under root.
func kernelInstalled(root, release string) error {
	if release == "" || release == "." || release == ".." || strings.ContainsAny(release, "/\x00") || strings.HasPrefix(release, "-") {
		return fmt.Errorf("invalid kernel release %q", release)
	}
	r, err := rootfs.At(root)
	if err != nil {
		return err
	}
	dir := kmod.ModulesDir(root, release)
	if fi, err := r.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not an installed kernel: %s does not exist", release, dir)
	}
	return nil
}
