// Package weakupdates decides and applies the weak-updates links of every installed kernel.
//
// Plan is a pure function of an inventory and a policy: for each installed kernel and each
// external module name it lacks natively, it picks the best build from another release
// directory that the kernel's loader would accept (kabi.Check), keeping the reason for every
// build it refuses. A build is judged with the modules the kernel will really have: its own
// (in-tree and extra/), and the builds chosen for it, whichever directory they come from. So a
// provider the kernel would load is linked whatever its users do, and a user is linked only
// when the providers chosen for that kernel export what it wants, with the CRCs it wants
// (RHEL's weak-modules drops a package's compatible provider when a sibling is incompatible,
// and judges a user with its own directory's provider only: defects not copied).
// Apply then makes the tree match.
package weakupdates
