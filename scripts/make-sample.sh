#!/bin/sh
# make-sample.sh: regenerate testdata/sample, the small real sample `make demo` runs on offline.
#
# For Debian kernels 6.1.0-50, -53 and -54: the headers' Module.symvers (xz) and one small
# in-tree module (kabiguard reads vermagic and sizeof(struct module) from it), laid out as an
# installed kernel has them under /lib/modules/<release>/. For 6.1.0-50 and 6.1.0-54: the
# project's own modules (testdata/src) built with Kbuild against that kernel's headers and
# stripped of debug info as distributions ship them.
# Needs what `make test` needs (root, the Debian archive, gcc, make); run from the repo top.
set -eu
S=testdata/sample
REF=kernel/lib/crc-itu-t.ko
rm -rf "$S/kernels" "$S/modules"
for abi in 6.1.0-50 6.1.0-53 6.1.0-54; do
	dir=$(sh scripts/fetch-kernel.sh "$abi" | tail -n1)
	rel=$abi-amd64
	mkdir -p "$S/kernels/$rel/$(dirname "$REF")"
	xz -9 --check=crc32 -c "$dir/headers/usr/src/linux-headers-$rel/Module.symvers" >"$S/kernels/$rel/symvers.xz"
	xz -9 --check=crc32 -c "$dir/image/lib/modules/$rel/$REF" >"$S/kernels/$rel/$REF.xz"
done
for abi in 6.1.0-50 6.1.0-54; do
	dir=$(sh scripts/fetch-kernel.sh "$abi" | tail -n1)
	rel=$abi-amd64
	mkdir -p "$S/modules/$rel"
	for src in kabidemo kabipair; do
		b=$(mktemp -d)
		cp -a "testdata/src/$src/." "$b/"
		make -s -C "$dir/headers/usr/src/linux-headers-$rel" M="$b" modules
		for ko in "$b"/*.ko; do
			# As distributions ship modules (INSTALL_MOD_STRIP): no debug info, symbols kept.
			strip --strip-debug "$ko"
			xz -9 --check=crc32 -c "$ko" >"$S/modules/$rel/$(basename "$ko").xz"
		done
		rm -rf "$b"
	done
done
du -sh "$S"
