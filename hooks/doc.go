// Package hooks is the one flow the host runs when kernels or kABI-tracking modules come and
// go (kabiguard link, the kernel-install plugin and Debian kernel hooks, weak-modules): Run
// makes the weak-updates links (weakupdates.Sync), says which required modules kernels
// staying installed lose, then, under the tree lock, brings the images of the kernels whose
// links changed, and of those an earlier run left owed, up to date (imagesync), skipping a
// kernel being removed or being installed; last, it refreshes the Prometheus textfile if one
// is kept (metrics.Target). The CLIs differ only in Options.
package hooks
