// Package forecast answers, before anything is installed, which of a host's external and
// required modules a kernel from a package would load: the native build it ships, a weak
// link to a build of an installed kernel, or none (and why: symbol, both CRCs), and whether
// the install-time gate would refuse that kernel.
//
// The package is read once as it streams past (forecast/pkgfile; nothing is unpacked): its
// kernel image, its symvers file when it ships one (RHEL's kernel-core does), and every
// in-tree module's exports, so that a kernel without symvers (Debian's linux-image packages)
// is judged by the CRCs it really exports (kabi/exports). The kernel then joins the host's
// inventory as if installed, and the same planner that maintains weak-updates decides for
// it (weakupdates.MakePlan): a forecast and the links made after installing cannot disagree.
package forecast
