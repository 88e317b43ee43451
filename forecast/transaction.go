package forecast

import (
	"bufio"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/config"
	"github.com/kabiguard/kabiguard/forecast/apthook"
	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Transaction is the verdict on a package manager's transaction before it runs.
type Transaction struct {
	Kernels []*Report          `json:"kernels"` // forecasts of the kernel packages being unpacked
	Removed map[string]string  `json:"removed"` // kernel package being removed -> its release
	Losses  []weakupdates.Loss `json:"losses"`  // required modules that kernels staying installed lose
}

// Refused reports whether the gate refuses the transaction: a kernel that
// would boot without a required module, or a removal that strips one staying installed.
func (t *Transaction) Refused() bool {
	for _, r := range t.Kernels {
		if !r.Keeps() {
			return true
		}
	}
	return len(t.Losses) > 0
}

// IsKernelPackage reports whether a package name is a Debian kernel image package (signed
// and unsigned builds of every flavour, and the -dbg ones are not).
func IsKernelPackage(name string) bool {
	return strings.HasPrefix(name, "linux-image-") && !strings.HasSuffix(name, "-dbg") && !strings.HasSuffix(name, "-dbgsym")
}

// Judge forecasts the kernels APT is about to unpack and the removals of installed kernels,
// against the host under opt.Root.
func Judge(req *apthook.Request, opt Options) (*Transaction, error) {
	tx := &Transaction{Removed: map[string]string{}}
	var removing []string
	headers := map[string]bool{} // releases whose headers the transaction unpacks
	for _, a := range req.Actions {
		if r, ok := strings.CutPrefix(a.Package, "linux-headers-"); ok && a.Kind == apthook.Unpack {
			headers[r] = true
		}
	}
	for _, a := range req.Actions {
		name := a.Package
		if name == "" { // protocol version 1: only the file
			name, _, _ = strings.Cut(filepath.Base(a.File), "_")
		}
		if !IsKernelPackage(name) {
			continue
		}
		switch a.Kind {
		case apthook.Unpack:
			reps, err := Run(a.File, opt)
			if errors.Is(err, ErrNoKernel) {
				continue // a metapackage (linux-image-amd64) or a -dbg package: no kernel in it
			}
			if err != nil {
				return nil, err
			}
			tx.Kernels = append(tx.Kernels, reps...)
		case apthook.Remove:
			release, err := installedRelease(opt.Root, name)
			if err != nil {
				return nil, err
			}
			if release != "" {
				tx.Removed[name] = release
				removing = append(removing, release)
			}
		}
	}
	for _, r := range tx.Kernels {
		if headers[r.Kernel] {
			r.ExpectDKMS(DKMSBuilds(opt.Root))
		}
	}
	if len(removing) > 0 {
		var err error
		if tx.Losses, err = RemovalLosses(opt.Root, opt.Config, removing); err != nil {
			return nil, err
		}
	}
	return tx, nil
}

// RemovalLosses are the required modules that kernels staying installed would lose if the
// installed kernels removing went: the links into their DKMS builds go with them (a kmod
// package's builds stay; weakupdates.BuildsThatStay).
func RemovalLosses(root string, cfg *config.Config, removing []string) ([]weakupdates.Loss, error) {
	res, err := weakupdates.Preview(cfg, root, removing, nil)
	if err != nil {
		return nil, err
	}
	losses := weakupdates.Losses(res, cfg, res.Policy)
	if losses == nil {
		losses = []weakupdates.Loss{} // JSON: [], not null
	}
	return losses, nil
}

// installedRelease is the kernel release an installed package holds, read from dpkg's list
// of its files (var/lib/dpkg/info/PKG.list or PKG:ARCH.list under root); "" when it holds
// none.
func installedRelease(root, pkg string) (string, error) {
	r, err := rootfs.At(root)
	if err != nil {
		return "", err
	}
	info := filepath.Join(root, "var", "lib", "dpkg", "info")
	lists, _ := r.ReadDir(info)
	var names []string
	for _, e := range lists {
		if n := e.Name(); n == pkg+".list" || strings.HasPrefix(n, pkg+":") && strings.HasSuffix(n, ".list") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := r.Open(filepath.Join(info, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimPrefix(sc.Text(), "/usr")
			if rest, ok := strings.CutPrefix(line, "/lib/modules/"); ok {
				if release, _, ok := strings.Cut(rest, "/"); ok && release != "" {
					f.Close()
					return release, nil
				}
			}
		}
		f.Close()
	}
	return "", nil
}
