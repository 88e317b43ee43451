package main

import (
	"github.com/kabiguard/kabiguard/internal/manpage"
)

// manPage is kabiguard(8), made from this grammar's help by the hidden --man flag: `make man`
// and the packages install its output, so --help and man never drift apart.
var manPage = manpage.Page{
	Name: "kabiguard", Section: 8,
	Title:    "keep out-of-tree kernel modules loadable across kernel updates",
	Sections: manSections,
}

// manSections are what the grammar cannot say.
var manSections = []manpage.Section{
	{Title: "Exit status", Body: `0 success; 1 the command ran and found a problem (an incompatible or missing required
module, a kernel the gate refuses, a change that could not be made); 2 error (bad input,
a missing file, a usage error).`},
	{Title: "Environment", Body: `KERNEL_INSTALL_VERBOSE=1 makes the hook commands print every change, as --verbose does.

SOURCE_DATE_EPOCH, when set, dates this page.`},
	{Title: "Files", Body: `/etc/kabiguard/kabiguard.conf
  settings (kabiguard.conf(5))

/etc/kabiguard/required.d/*.conf
  modules every kernel must load, and those that must be in its initramfs
  (kabiguard-required(5))

/lib/modules/RELEASE/weak-updates/
  the links kabiguard maintains

/usr/lib/kernel/install.d/45-kabiguard.install, 86-kabiguard-gate.install
  the kernel-install plugins

/etc/kernel/postinst.d/dkms-kabiguard, zx-kabiguard-initrd, /etc/kernel/postrm.d/dkms-kabiguard
  the Debian kernel hooks`},
	{Title: "See also", Body: `weak-modules(8), kabiguard.conf(5), kabiguard-required(5), depmod(8), modprobe(8),
kernel-install(8), dracut(8), initramfs-tools(7)`},
}
