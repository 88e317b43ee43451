// Command weak-modules is a drop-in for RHEL's /usr/sbin/weak-modules, as kmod RPM scriptlets,
// DKMS and admins call it, backed by kabiguard's planner: decisions are per module (a user
// is judged with the providers chosen for the kernel), removal re-points links to another compatible
// build whether or not the removed file still exists, .ko.zst and every symvers compression
// work, and the exit status is non-zero when anything failed.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/hooks"
	"github.com/kabiguard/kabiguard/internal/completion"
	"github.com/kabiguard/kabiguard/internal/manpage"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
	"golang.org/x/sys/unix"
)

type cli struct {
	AddModules    bool `name:"add-modules" aliases:"add-module" help:"Link the modules listed on stdin into every installed kernel where compatible."`
	RemoveModules bool `name:"remove-modules" aliases:"remove-module" help:"The modules listed on stdin are being removed: re-point their links to another compatible build, or remove them."`
	AddKernel     bool `name:"add-kernel" help:"Link compatible modules of the other kernels into KERNEL (default: the running kernel)."`
	RemoveKernel  bool `name:"remove-kernel" help:"KERNEL is being removed: drop its weak-updates, re-point other kernels' links into its tree."`

	DryRun             bool         `name:"dry-run" help:"Print what would be done; change nothing, run nothing."`
	NoInitramfs        bool         `name:"no-initramfs" help:"Do not rebuild initramfs images (depmod still runs)."`
	Verbose            bool         `short:"v" help:"Print every change and command."`
	Basedir            string       `placeholder:"DIR" default:"/" help:"Root directory (lib/modules, boot, etc below it)." type:"path"`
	Dracut             string       `placeholder:"PATH" default:"dracut" help:"Initramfs generator to run."`
	CheckInitramfsProg string       `name:"check-initramfs-prog" placeholder:"PATH" help:"Run 'PATH KERNEL' for every changed kernel instead of rebuilding the initramfs."`
	DeleteModules      bool         `name:"delete-modules" hidden:"" help:"Accepted for compatibility; does nothing."`
	Man                manpage.Flag `hidden:"" help:"Print the manual page weak-modules(8) (roff) and exit."`

	Kernel string `arg:"" optional:"" help:"Kernel release for --add-kernel/--remove-kernel (default: uname -r)."`
}

func (c *cli) Validate() error {
	n := 0
	for _, b := range []bool{c.AddModules, c.RemoveModules, c.AddKernel, c.RemoveKernel} {
		if b {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of --add-modules, --remove-modules, --add-kernel, --remove-kernel")
	}
	if c.Kernel != "" && !c.AddKernel && !c.RemoveKernel {
		return fmt.Errorf("unexpected argument %q: a kernel release goes only with --add-kernel or --remove-kernel", c.Kernel)
	}
	if c.Kernel != "" {
		if err := validRelease(c.Kernel); err != nil {
			return err
		}
	}
	// A mistyped --basedir must fail here, before anything is read or created under it.
	if _, err := rootfs.At(c.Basedir); err != nil {
		return err
	}
	return nil
}

// validRelease refuses a kernel release that is no single directory name under lib/modules:
// --remove-kernel ../../../x must not reach another directory.
func validRelease(k string) error {
	if k == "" || k == "." || strings.Contains(k, "..") || strings.ContainsAny(k, "/\x00") || strings.HasPrefix(k, "-") {
		return fmt.Errorf("invalid kernel release %q: a release is one directory name under lib/modules", k)
	}
	return nil
}

const help = `Keeps /lib/modules/*/weak-updates right when kernels or kABI-tracking modules come and go.
Module paths for --add-modules and --remove-modules are read from stdin, one per line
(.ko, .ko.xz, .ko.gz, .ko.zst; relative paths are taken from the current directory).

Exit status: 0 success, 1 something failed (every failure is printed), 2 usage error.

Examples:
  weak-modules --add-kernel 5.14.0-427.el9.x86_64
  find /lib/modules/5.14.0-70.el9.x86_64/extra/drbd -name '*.ko*' | weak-modules --add-modules
  rpm -ql kmod-drbd | grep '\.ko' | weak-modules --remove-modules --no-initramfs`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	exitCode := -1
	parser, err := kong.New(&c, kong.Name("weak-modules"), kong.Description(help),
		kong.Writers(stdout, stderr), kong.Exit(func(code int) { exitCode = code }), kong.Bind(&manPage))
	if err != nil {
		fmt.Fprintf(stderr, "weak-modules: %v\n", err)
		return 2
	}
	if completion.Requested() { // the shell's completion script runs us (completion/)
		completion.Answer(parser, stdout)
		return 0
	}
	for _, a := range args {
		if a == "" {
			fmt.Fprintln(stderr, "weak-modules: an empty argument (a kernel release must be named) (see 'weak-modules --help')")
			return 2
		}
	}
	if _, err := parser.Parse(args); exitCode >= 0 {
		return min(exitCode, 2)
	} else if err != nil {
		fmt.Fprintf(stderr, "weak-modules: %v (see 'weak-modules --help')\n", err)
		return 2
	}
	if err := c.run(stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "weak-modules: %v\n", err)
		return 1
	}
	return 0
}

func (c *cli) run(stdin io.Reader, stdout, stderr io.Writer) error {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	log := func(s string) {
		if c.Verbose || c.DryRun {
			fmt.Fprintln(w, s)
		}
	}
	cfg, err := config.Load(c.Basedir)
	if err != nil {
		return err
	}
	opt := hooks.Options{Root: c.Basedir, Config: cfg, DryRun: c.DryRun, NoInitramfs: c.NoInitramfs,
		Generator: c.Dracut, CheckProg: c.CheckInitramfsProg, Log: log, Progress: progress(w),
		// Loud whatever the verbosity: DKMS's prerm and a kernel's removal call us, and a
		// kernel that stays installed must not silently lose a required module.
		Losses: stderr, Prefix: "weak-modules: ",
		// Deferred, not cancelled (Debian's DKMS always passes --no-initramfs): the images of
		// the kernels whose links changed stay owed until the next run without it, link or
		// kernel hook.
		Deferred: func(owed []string) {
			if c.Verbose || c.DryRun {
				fmt.Fprintf(w, "initramfs of %s owed a refresh (--no-initramfs): the next kabiguard hook, 'kabiguard link' or weak-modules run without --no-initramfs refreshes it\n", strings.Join(owed, ", "))
			}
		}}
	switch {
	case c.AddKernel || c.RemoveKernel:
		k := c.Kernel
		if k == "" {
			var u unix.Utsname
			if err := unix.Uname(&u); err != nil {
				return err
			}
			k = unix.ByteSliceToString(u.Release[:])
			if err := validRelease(k); err != nil {
				return err
			}
		}
		if c.AddKernel {
			opt.Only = []string{k}
		} else {
			opt.Removing = []string{k} // its image is not refreshed: it goes
		}
	case c.AddModules, c.RemoveModules:
		paths, err := readModuleList(stdin, c.Basedir, c.AddModules)
		if err != nil {
			return err
		}
		if c.RemoveModules {
			opt.Gone = paths
		}
	}
	// The image step runs also after a failed Sync: what did change, and what earlier runs
	// left owed, is done now. The caller's --check-initramfs-prog replaces the whole step;
	// else existing images are refreshed in place, the generator only when that cannot do.
	res, err := hooks.Run(opt)
	// A removal (--remove-*) is done as asked and exits 0 so the package manager can finish
	// it; an addition that strips a kernel is a problem found.
	var lost error
	if n := res.Lost(); n > 0 && !c.RemoveKernel && !c.RemoveModules {
		lost = fmt.Errorf("%d required module(s) lost by kernels staying installed (see above)", n)
	}
	return errors.Join(err, lost)
}

// progress prints initramfs progress whatever the verbosity: a rebuild takes a minute and the
// admin should see why the command is slow.
func progress(w io.Writer) func(string) {
	return func(s string) { fmt.Fprintln(w, s) }
}

// readModuleList reads module paths from stdin. Every path must lie in a release directory
// under BASEDIR/lib/modules (outside weak-updates); with mustExist, it must also be a
// readable module.
func readModuleList(r io.Reader, root string, mustExist bool) ([]string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	rt, err := rootfs.At(root)
	if err != nil {
		return nil, err
	}
	base := kmod.ModulesDir(root, "")
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		p = filepath.Clean(p)
		rel, err := filepath.Rel(base, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if err != nil || strings.HasPrefix(rel, "..") || len(parts) < 3 || parts[1] == "weak-updates" {
			return nil, fmt.Errorf("%s: not a module file in a kernel's directory under %s", p, base)
		}
		if !kmod.IsModule(p) {
			return nil, fmt.Errorf("%s: not a module file name (.ko, .ko.xz, .ko.gz, .ko.zst)", p)
		}
		if mustExist {
			// Inside the root: a symlink on the path means the root's file, never the host's.
			if _, err := rt.Stat(p); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, sc.Err()
}
