#!/bin/sh
# make demo: kabiguard on the embedded sample (testdata/sample), offline, in a throwaway root.
# The sample holds real Debian 6.1 kernels' Module.symvers and one in-tree module each, and
# the project's own modules built against two of those ABIs (see testdata/sample/README.md).
set -eu
BIN=${1:-bin}
S=testdata/sample
T=$(mktemp -d "${TMPDIR:-/tmp}/kabiguard-demo.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
ROOT=$T/root
OLD=6.1.0-50-amd64

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || printf '(exit status %s)\n' "$?"; }

# A kernel = its symvers and its in-tree module(s), as a kernel package installs them.
add_kernel() {
	mkdir -p "$ROOT/lib/modules/$1"
	cp -r "$S/kernels/$1/." "$ROOT/lib/modules/$1/"
}

say "A module built for $OLD, checked against three later kernels"
mkdir -p "$ROOT/lib/modules"
for k in 6.1.0-53-amd64 6.1.0-54-amd64 6.1.0-55-amd64; do add_kernel "$k"; done
run "$BIN/kabiguard" check --root "$ROOT" -k 6.1.0-53-amd64 -k 6.1.0-54-amd64 -k 6.1.0-55-amd64 \
	"$S/modules/$OLD/kabidemo.ko.xz"

say "A host running $OLD with kabidemo installed (a kmod package put it in extra/); drbd-like: required"
rm -rf "$ROOT"
add_kernel "$OLD"
mkdir -p "$ROOT/lib/modules/$OLD/extra/kabidemo" "$ROOT/etc/kabiguard/required.d" "$ROOT/etc/depmod.d"
cp "$S/modules/$OLD/kabidemo.ko.xz" "$ROOT/lib/modules/$OLD/extra/kabidemo/"
echo "kabidemo early" > "$ROOT/etc/kabiguard/required.d/demo.conf"
echo "search updates extra built-in weak-updates" > "$ROOT/etc/depmod.d/00-kabiguard.conf"
run "$BIN/kabiguard" status --root "$ROOT"

say "Kernels 6.1.0-53 and 6.1.0-54 are installed"
add_kernel 6.1.0-53-amd64
add_kernel 6.1.0-54-amd64
run "$BIN/kabiguard" status --root "$ROOT"
run "$BIN/kabiguard" link --root "$ROOT"
run "$BIN/kabiguard" status --root "$ROOT"
printf '$ ls -l %s\n' "lib/modules/6.1.0-53-amd64/weak-updates/kabidemo/"
ls -l "$ROOT/lib/modules/6.1.0-53-amd64/weak-updates/kabidemo/" | sed 1d
if command -v depmod >/dev/null; then
	printf '$ grep kabidemo lib/modules/6.1.0-53-amd64/modules.dep   (written by the real depmod)\n'
	grep kabidemo "$ROOT/lib/modules/6.1.0-53-amd64/modules.dep" || true
fi

say "$OLD is removed with its extra/: no link may dangle"
rm -rf "$ROOT/lib/modules/$OLD"
run "$BIN/kabiguard" link --root "$ROOT"
run "$BIN/kabiguard" status --root "$ROOT"
