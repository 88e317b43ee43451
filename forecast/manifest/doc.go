// Package manifest describes what a forecast needs of one host, as JSON a host prints
// (`kabiguard manifest`) and a central machine reads (`kabiguard forecast --manifest`), so
// that one kernel package is judged against a whole fleet without touching any host.
//
// A manifest holds exactly the facts the weak-updates planner reads when the package's kernel
// joins a host's inventory (forecast.Host): every external build of every release directory
// with what the loader checks of it (its __versions or extended table, undefined symbols,
// exports with CRCs and namespaces, imported namespaces, licence, vermagic, sizeof(struct
// module)), the links in each kernel's weak-updates/ (and the module behind each link the
// admin made), regular files there, the configuration (required modules, never_weak,
// share_builds, on_missing_required), the releases whose headers are installed and what DKMS
// builds automatically. It holds no kernel's exports: the kernel judged is the package's, and
// the installed kernels' exports never decide for it. Each installed kernel's exports source
// is named for the reader only.
//
// Paths are as the host sees them (the --root prefix removed), so a forecast over a manifest
// names the files an admin of that host finds. Rebuilding gives the planner the same
// inventory, and so the same verdicts, module by module, as a forecast run on the host.
//
// The format is versioned ("format": 1); a reader refuses a format it does not know.
package manifest
