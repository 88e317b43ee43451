// Package status is what `kabiguard status` reports and `kabiguard metrics` exports, computed
// once for both: Collect runs the planner against the tree on disk (weakupdates.Preview), makes
// one Row per installed kernel and external or required module (weakupdates.Status), verifies
// each kernel's initramfs against its tree as `kabiguard initramfs verify` does (Images), and
// marks in the rows the state of each module's copy there (Annotate). Report.Ready tells, per
// kernel, what the boot gate checks: every required module native or weak, and every required
// early one with a copy in the kernel's image.
package status
