package gate

import (
	"fmt"
	"strings"

	"github.com/kabiguard/kabiguard/bls"
)

// bootEntries are the BLS entries of the kernel under root (package bls), by path.
func bootEntries(root, kernel, bootRoot string) ([]string, error) {
	entries, err := bls.ForKernel(root, kernel, bootRoot)
	if err != nil {
		return nil, fmt.Errorf("reading the boot entries: %w", err)
	}
	paths := []string{}
	for _, e := range entries {
		paths = append(paths, e.Path)
	}
	return paths, nil
}

// BootEntryNote says, for a refused kernel, what becomes of its boot entry: an entry that
// exists already (grubby's 20-grubby.install on RHEL, or an earlier install, wrote it before
// the gate ran) still boots the kernel and is named, since kabiguard never removes one; with
// none, kernel-install's 90-loaderentry, which runs after the gate's 86 plugin, writes none.
// On a host without BLS entries (usesBLS false, no entry found) there is nothing to say: "".
func BootEntryNote(res *Result, usesBLS bool) string {
	switch {
	case len(res.BootEntries) > 0:
		return fmt.Sprintf("boot entry %s exists already (written before this gate ran): the boot loader still offers %s; kabiguard leaves it alone",
			strings.Join(res.BootEntries, ", "), res.Kernel)
	case usesBLS:
		return fmt.Sprintf("no boot entry for %s: kernel-install writes it in 90-loaderentry, after this gate (86-kabiguard-gate), so the refusal keeps it from being written", res.Kernel)
	}
	return ""
}
