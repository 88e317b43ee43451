#!/bin/sh
# make bench: kabiguard against the real tools on the same input, side by side, with ratios.
# Real Debian kernels come from the test cache (scripts/fetch-kernel.sh; root, the archive on
# first use). Goals are from the issues; a miss is printed, never an error.
set -eu
export PATH=$PATH:/usr/local/go/bin
out=$(mktemp)
trap 'rm -f "$out"' EXIT

bench() { # bench PKG REGEXP BENCHTIME
	echo "running go test -bench '$2' $1 ..." >&2
	go test -run '^$' -bench "$2" -benchtime "$3" "$1" | grep '^Benchmark' >>"$out"
}
bench ./kabi/module 'ParseTree' 1x
bench ./kabi 'Check50x6' 20x
bench ./weakupdates 'Plan|AddKernel' 5x
bench ./initramfs 'List' 3x
bench ./imagesync 'RefreshVsDracut' 1x
bench ./forecast/pkgfile 'ReadKernelDeb' 1x
bench ./forecast 'Forecast' 1x
bench ./forecast/manifest 'Fleet' 1x

# Lines look like "BenchmarkX/sub-2   N   123 ns/op ..."; pairs are .../kabiguard (or
# .../weak-modules) against .../<real tool>.
awk '
function ms(ns) { return sprintf("%.1f ms", ns / 1e6) }
{ name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
  for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") ns[name] = $i }
function pair(title, ours, theirs, goal,   r, ok) {
	if (!(ours in ns) || !(theirs in ns)) { printf "%-48s not measured\n", title; return }
	r = ns[theirs] / ns[ours]
	ok = (goal > 0 ? r >= goal : 1 / r <= -goal) ? "PASS" : "MISS"
	if (goal == "") printf "%-48s %12s %12s %8.1fx faster  (no goal)\n", title, ms(ns[ours]), ms(ns[theirs]), r
	else if (goal > 0) printf "%-48s %12s %12s %8.1fx faster  goal >= %sx  %s\n", title, ms(ns[ours]), ms(ns[theirs]), r, goal, ok
	else printf "%-48s %12s %12s %8.2fx the time goal <= %sx  %s\n", title, ms(ns[ours]), ms(ns[theirs]), 1 / r, -goal, ok
}
function limit(title, name, maxms) {
	if (!(name in ns)) { printf "%-48s not measured\n", title; return }
	printf "%-48s %12s %12s %8s         goal < %d ms   %s\n", title, ms(ns[name]), "-", "", maxms, (ns[name] / 1e6 < maxms ? "PASS" : "MISS")
}
function info(title, name) {
	if (!(name in ns)) { printf "%-48s not measured\n", title; return }
	printf "%-48s %12s %12s %8s         (no goal)\n", title, ms(ns[name]), "-", ""
}
END {
	printf "%-48s %12s %12s\n", "measurement", "kabiguard", "real tool"
	pair("parse 4023 modules vs modprobe --dump-modversions", "ParseTree/kabiguard", "ParseTree/modprobe", 10)
	limit("check 50 modules x 6 kernels (incl. symvers)", "Check50x6/with-load", 50)
	limit("check 50 modules x 6 kernels (verdict only)", "Check50x6/verdict", 50)
	limit("plan 6 kernels x 20 external modules", "Plan", 50)
	pair("weak-modules --add-kernel vs depmod -a K", "AddKernel/weak-modules", "AddKernel/depmod", -1.3)
	pair("initramfs ls vs lsinitrd (uncompressed)", "List/none/kabiguard-cli", "List/none/lsinitrd", 10)
	pair("initramfs ls vs lsinitrd (gzip)", "List/gzip/kabiguard-cli", "List/gzip/lsinitrd", 10)
	pair("initramfs ls vs lsinitrd (zstd)", "List/zstd/kabiguard-cli", "List/zstd/lsinitrd", 10)
	pair("initramfs ls vs lsinitrd (xz)", "List/xz/kabiguard-cli", "List/xz/lsinitrd", 10)
	pair("initramfs refresh vs dracut --force (zstd)", "RefreshVsDracut/zstd/kabiguard-cli", "RefreshVsDracut/zstd/dracut", 20)
	# The issue sets the refresh goal on zstd; gzip (the dracut default) and xz are shown.
	pair("initramfs refresh vs dracut --force (gzip)", "RefreshVsDracut/gzip/kabiguard-cli", "RefreshVsDracut/gzip/dracut", "")
	pair("initramfs refresh vs dracut --force (xz)", "RefreshVsDracut/xz/kabiguard-cli", "RefreshVsDracut/xz/dracut", "")
	pair("read a kernel .deb through vs dpkg-deb -x", "ReadKernelDeb/kabiguard", "ReadKernelDeb/dpkg-deb", "")
	pair("forecast of a kernel .deb (20 modules) vs dpkg-deb -x", "Forecast/kabiguard", "Forecast/dpkg-deb", 1)
	# One process: read the .deb once, read and judge 1000 manifests, write the JSON.
	limit("forecast 1 kernel .deb x 1000 host manifests", "Fleet/kabiguard", 2000)
	info("  its parts: read the .deb once", "Fleet/read")
	info("  its parts: read and judge 1000 manifests", "Fleet/judge")
}' "$out"
