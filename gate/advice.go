package gate

import (
	"fmt"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/weakupdates"
)

// Advice is what the admin can do when the gate refuses a kernel: only the ways out that
// work on the host under root (a DKMS rebuild only where DKMS and the kernel's headers are; the
// image rebuild of the generator the host has; the package manager's removal of the kernel).
func Advice(res *Result, root, mainFile string) []string {
	k := res.Kernel
	h := hostOf(root, k)
	var out []string
	rebuild, image := false, false
	for _, m := range res.Failed() {
		loads := m.State == weakupdates.Native.String() || m.State == weakupdates.Weak.String()
		if loads && m.Early && m.Initrd == "no" {
			image = true // it loads: only its copy in the initramfs is missing
		} else {
			rebuild = true
		}
	}
	if rebuild {
		switch {
		case h.dkms && h.headers:
			out = append(out, fmt.Sprintf("rebuild the module for %s: 'dkms autoinstall -k %s'", k, k))
		case h.dkms && h.headersPkg == "":
			out = append(out, fmt.Sprintf("install the headers of %s, then rebuild the module with DKMS, if it builds for that kernel (dkms autoinstall -k %s)", k, k))
		case h.dkms:
			// Two steps, never one that fails alone: without the headers DKMS cannot build.
			out = append(out, fmt.Sprintf("install the headers of %s and rebuild the module with DKMS, if it builds for that kernel: '%s && dkms autoinstall -k %s'", k, h.headersPkg, k))
		}
		if h.akmods {
			out = append(out, fmt.Sprintf("rebuild the module for %s: 'akmods --kernels %s'", k, k))
		}
		out = append(out, fmt.Sprintf("install a kmod package built for %s", k))
	}
	if image {
		switch {
		case h.initramfsTools:
			out = append(out, fmt.Sprintf("rebuild the initramfs: 'update-initramfs -u -k %s' (kabiguard's initramfs-tools hook adds the early modules)", k))
		case h.dracut:
			out = append(out, fmt.Sprintf("rebuild the initramfs: 'dracut --force --kver %s' (kabiguard's dracut module adds the early modules)", k))
		default:
			out = append(out, fmt.Sprintf("rebuild the initramfs of %s with the early modules in it", k))
		}
	}
	if h.removeKernel != "" {
		out = append(out, fmt.Sprintf("or do not boot this kernel: remove it ('%s')", h.removeKernel))
	}
	for _, m := range res.Failed() {
		if m.Source != "" {
			line := m.Name
			if m.Early {
				line += " early"
			}
			out = append(out, fmt.Sprintf("or drop the requirement: the line %q at %s", line, m.Source))
		}
	}
	out = append(out, fmt.Sprintf("or accept the risk: on_missing_required = warn in %s", mainFile))
	out = append(out, "then install the kernel again (kernel-install add, or 'dpkg --configure -a' on Debian)")
	for i := 1; i < len(out)-2; i++ {
		if !strings.HasPrefix(out[i], "or ") {
			out[i] = "or " + out[i]
		}
	}
	return out
}

// host is what Advice may advise on the host under a root.
type host struct {
	dkms, akmods, headers, initramfsTools, dracut bool
	headersPkg, removeKernel                      string
}

func hostOf(root, k string) host {
	r, err := rootfs.At(root)
	if err != nil {
		return host{}
	}
	exists := func(rel string) bool {
		_, err := r.Stat(r.Path(rel))
		return err == nil
	}
	h := host{
		dkms:           exists("usr/sbin/dkms"),
		akmods:         exists("usr/sbin/akmods"),
		headers:        exists("lib/modules/" + k + "/build/Makefile"),
		initramfsTools: exists("usr/sbin/update-initramfs"),
		dracut:         exists("usr/bin/dracut"),
	}
	switch {
	case exists("var/lib/dpkg/status"):
		h.headersPkg = "apt-get install linux-headers-" + k
		pkg := "linux-image-" + k
		for _, p := range []string{pkg, pkg + "-unsigned"} {
			if exists("var/lib/dpkg/info/" + p + ".list") {
				pkg = p
			}
		}
		h.removeKernel = "apt-get purge " + pkg
	case exists("var/lib/rpm") || exists("usr/lib/sysimage/rpm"):
		h.headersPkg = "dnf install kernel-devel-" + k
		h.removeKernel = "dnf remove kernel-core-" + k
	}
	return h
}
