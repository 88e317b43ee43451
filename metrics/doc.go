// Package metrics exports `kabiguard status` to Prometheus through node_exporter's textfile
// collector: Render writes a status.Report (the one computation status prints, so the two
// cannot disagree) in the Prometheus text exposition format (version 0.0.4), and Write puts it
// in DIR/kabiguard.prom atomically (a temporary file that does not end in .prom, fsynced,
// renamed over the old file), so node_exporter never reads half a file.
//
// Every series of the state sets is emitted whether or not anything is wrong: a module's state
// is one sample per possible state, 1 for the current one and 0 for the others, so an alert
// such as kabiguard_module_state{state="missing"} == 1 has a series to compare before anything
// goes missing, and a vanished series means a vanished kernel or module, not a healthy one.
//
// Labels are written sorted by name, as Prometheus exposes them (so the file reads as
// node_exporter's /metrics shows it); image paths are the paths inside the root
// ("/boot/initrd.img-K"), the same whatever --root was.
//
// The default boot kernel (kabiguard_boot_kernel_ready) is found the way the boot loader
// would pick it, since kabiguard itself writes no boot entry: GRUB's saved_entry naming a Boot
// Loader Specification entry (RHEL: grubby --set-default), else the /vmlinuz or /boot/vmlinuz
// symlink Debian's linux-update-symlinks keeps at the newest installed kernel, else the
// newest installed kernel by version (grub-mkconfig's first entry). The source label says
// which.
//
// kabiguard_last_run_* describe the last run that keeps links and images (kabiguard link,
// the kernel hooks, weak-modules: hooks.Run), which refreshes the file when it exists or when
// metrics_dir in kabiguard.conf names a directory (Target). The file is the only record of it:
// `kabiguard metrics` (the kabiguard-metrics.timer) carries the values over from the file it
// replaces.
//
// The renderer is written here rather than taken from github.com/prometheus/common/expfmt:
// that package needs client_model and google.golang.org/protobuf, which grow a binary by about
// 6 MB (a hello world with expfmt: 8.3 MB, without: 2.4 MB), for about sixty lines of text
// formatting; the tests check the output with the real promtool and node_exporter instead.
package metrics
