#!/bin/sh
# make demo: kabiguard on the embedded sample (testdata/sample), offline, in a throwaway root.
# The sample holds three real Debian 6.1 kernels' Module.symvers (6.1.0-50, -53, -54) and the
# project's own modules built with Kbuild against the 6.1.0-50 and 6.1.0-54 headers
# (scripts/make-sample.sh). Links are made by kabiguard, module indexes by the real depmod;
# the initramfs of step 4 by scripts/demo-initrd (dracut's layout, without dracut).
set -eu
BIN=${1:-bin}
S=testdata/sample
T=$(mktemp -d "${TMPDIR:-/tmp}/kabiguard-demo.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
ROOT=$T/root
K50=6.1.0-50-amd64 K53=6.1.0-53-amd64 K54=6.1.0-54-amd64

if ! command -v depmod >/dev/null; then
	echo "demo: depmod (kmod) is missing; installing it" >&2
	apt-get install -y -q kmod >/dev/null
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$ROOT#ROOT#g"; "$@" 2>&1 | sed "s#$ROOT#ROOT#g"; }
# A kernel package's files: its symvers and its in-tree module(s).
add_kernel() {
	mkdir -p "$ROOT/lib/modules/$1"
	cp -r "$S/kernels/$1/." "$ROOT/lib/modules/$1/"
}
# A kmod package's files: the module's build for one kernel in its extra/.
add_kmod() { # add_kmod KERNEL MODULE...
	k=$1; shift
	for m in "$@"; do
		mkdir -p "$ROOT/lib/modules/$k/extra/$m"
		cp "$S/modules/$k/$m.ko.xz" "$ROOT/lib/modules/$k/extra/$m/"
		echo "$ROOT/lib/modules/$k/extra/$m/$m.ko.xz"
	done
}

say "1. kabiguard check: a module built for $K50 against two later kernels"
mkdir -p "$ROOT/lib/modules"
add_kernel $K53
add_kernel $K54
run "$BIN/kabiguard" check --root "$ROOT" -k $K53 -k $K54 "$S/modules/$K50/kabidemo.ko.xz" || true
rm -rf "$ROOT"

say "2. A host runs $K50 with two kmod packages: kabidemo (required, early) and kabiprov+kabiuser"
add_kernel $K50
mkdir -p "$ROOT/etc/kabiguard/required.d" "$ROOT/etc/depmod.d"
echo "kabidemo early" >"$ROOT/etc/kabiguard/required.d/demo.conf"
cp depmod.d/kabiguard.conf "$ROOT/etc/depmod.d/"
add_kmod $K50 kabidemo kabiprov kabiuser >"$T/files"
printf '$ (the kmod packages'"'"' scriptlets) weak-modules --add-modules --no-initramfs < file list\n'
"$BIN/weak-modules" --basedir "$ROOT" --add-modules --no-initramfs --verbose <"$T/files" 2>&1 | sed "s#$ROOT#ROOT#g"
run "$BIN/kabiguard" status --root "$ROOT"

say "3. Kernels $K53 and $K54 are installed: status before and after the kernel hook"
add_kernel $K53
add_kernel $K54
run "$BIN/kabiguard" status --root "$ROOT" || true
run "$BIN/weak-modules" --basedir "$ROOT" --add-kernel $K53 --no-initramfs --verbose
run "$BIN/weak-modules" --basedir "$ROOT" --add-kernel $K54 --no-initramfs --verbose
run "$BIN/kabiguard" status --root "$ROOT" || true
printf '$ ls -l ROOT/lib/modules/%s/weak-updates/*\n' $K53
(cd "$ROOT/lib/modules/$K53/weak-updates" && ls -l */ | grep -- '->')
printf '$ grep weak-updates ROOT/lib/modules/%s/modules.dep   (written by the real depmod)\n' $K53
grep weak-updates "$ROOT/lib/modules/$K53/modules.dep"

say "4. A kmod for $K54 arrives, and $K54 gets its initramfs"
add_kmod $K54 kabidemo >"$T/files"
printf '$ (its scriptlet) depmod -a %s; weak-modules --add-modules --no-initramfs < file list\n' $K54
# The sample has no modules.order or modules.builtin: depmod's warnings about them are noise.
depmod -b "$ROOT" -a $K54 2>"$T/depmod.err" || { cat "$T/depmod.err" >&2; exit 1; }
grep -v 'could not open modules\.' "$T/depmod.err" >&2 || true
"$BIN/weak-modules" --basedir "$ROOT" --add-modules --no-initramfs --verbose <"$T/files" 2>&1 | sed "s#$ROOT#ROOT#g"
IMG=$ROOT/boot/initramfs-$K54.img
printf '$ (dracut, here scripts/demo-initrd) writes ROOT/boot/initramfs-%s.img with the modules of %s\n' $K54 $K54
"$BIN/demo-initrd" "$ROOT" $K54
run "$BIN/kabiguard" initramfs verify --root "$ROOT" -k $K54 "$IMG"

say "5. $K50 and its extra/ are removed: links go, and $K54's image drops the copies it held of them"
run "$BIN/weak-modules" --basedir "$ROOT" --remove-kernel $K50 --verbose
rm -rf "${ROOT:?}/lib/modules/$K50"
run "$BIN/kabiguard" link --root "$ROOT"
run "$BIN/kabiguard" status --root "$ROOT" || true
run "$BIN/kabiguard" initramfs verify --root "$ROOT" -k $K54 "$IMG"
printf '$ kabiguard initramfs ls --root ROOT -k %s ROOT/boot/initramfs-%s.img | grep .ko\n' $K54 $K54
"$BIN/kabiguard" initramfs ls --root "$ROOT" -k $K54 "$IMG" | grep '\.ko' | sed "s#$ROOT#ROOT#g"
printf '\nNo link dangles: '
find "$ROOT/lib/modules" -xtype l | wc -l
