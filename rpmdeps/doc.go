// Package rpmdeps turns what a kernel module needs and what a kernel exports into RPM
// dependencies, in the form RHEL's kmod packages and kernel packages carry them:
//
//	kernel(SYMBOL) = 0xCRC   a symbol the kernel exports, with the CRC of its prototype
//	ksym(SYMBOL) = 0xCRC     a symbol some other module package exports
//
// so a kmod package built with kabiguard's generator (rpm/kabiguard.attr) installs only
// beside a kernel whose exports carry the CRCs its modules were built against, and dnf can
// tell which kernels keep it.
//
// The rules follow find-requires.ksyms of Red Hat's kernel-srpm-macros (formerly
// redhat-rpm-config; read in fedora-riscv/kernel-srpm-macros, the RHEL 8/9 form with the
// ksym split and compressed modules), re-stated here rather than copied:
//
//  1. A module's requirements are its symbol versions, the table the loader checks
//     (`modprobe --dump-modversions`), as (symbol, CRC) pairs.
//  2. A requirement that a module of the same package exports with that same CRC is dropped:
//     the package brings it along. The package is the modules handed over together, as
//     find-requires.ksyms gets the file list rpm hands it for one (sub)package; never what
//     else lies in the buildroot, which holds every subpackage's files.
//  3. A requirement whose symbol and CRC are both in the exports of the kernel the module was
//     built for (vermagic's release; find-requires.ksyms reads that kernel's Module.symvers
//     from kernel-devel) becomes kernel(SYMBOL) = 0xCRC; any other becomes ksym(SYMBOL) =
//     0xCRC, to be provided by another kmod package.
//  4. The result is sorted and unique, the CRC printed as 0x and eight hex digits.
//
// module_layout gets no special case, as in find-requires.ksyms: vmlinux exports it, so it
// becomes kernel(module_layout) = 0xCRC. That is the loader's own check of struct module's
// layout (a mismatch refuses the module), and RHEL's kernel-core provides it: rpm's kabi.sh
// turns every vmlinux line of /boot/symvers-K.gz into kernel(SYMBOL) = CRC.
//
// How many modules rpm hands over together depends on rpm: the legacy %__find_requires
// interface and, from rpm 4.20, a file attribute of the multifile protocol (MultifileProtocol)
// give a whole subpackage; older rpm runs a file attribute's generator once per file. Then
// rule 2 sees one module only: a symbol another module of the same package exports is
// required as ksym() and provided by the package itself, which rpm resolves within it.
// Requiring too much there is safe; dropping a sibling subpackage's symbol would not be.
//
// Provides are the other half: every export of a kernel as kernel(SYMBOL) = 0xCRC, the
// union of what kernel-core (kabi.sh, vmlinux exports) and the kernel's module packages
// (find-provides.ksyms, in-tree modules) provide; and, for a kmod package, ksym(SYMBOL) =
// 0xCRC for each symbol its modules export with a CRC (ModuleProvides), which another
// package's ksym() requirements ask for.
package rpmdeps
