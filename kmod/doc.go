// Package kmod holds the conventions kmod's tools (depmod, modprobe, modinfo) follow, in one
// place: the name of a module file (ModuleName, and the compression its suffix means), the
// module directory of a kernel under a root (ModulesDir), the reading of a kernel's
// modules.dep (ReadDep, ParseDep), running depmod and the command an admin runs instead
// (Depmod, DepmodAdvice), and the names of the markers kabiguard leaves beside depmod's files.
//
// Its model is kmod's shared/util.c: one module-name normaliser and one modules.dep reader,
// used by the inventory, the weak-updates planner, the initramfs steps and the gate alike.
// The boot gate binary (cmd/kabiguard-gate) keeps a small copy of the reader, see its comment.
package kmod
