#!/bin/sh
# fetch-kernel.sh ABI [image|headers|all]
#
# Puts a real Debian kernel into the test cache, once, and prints its directory:
#   $KABIGUARD_TEST_CACHE/kernels/ABI/image    dpkg -x of linux-image-ABI-amd64-unsigned
#   $KABIGUARD_TEST_CACHE/kernels/ABI/headers  dpkg -x of linux-headers-ABI-{amd64,common} and
#                                              the matching linux-kbuild, ready for `make -C`
# ABI is "6.1.0-54" or "6.12.107+deb12". Downloads come from the configured apt sources with
# `apt-get download` (reference/host-interfaces.md R1, R2); .debs are kept in .../debs.
# Concurrent callers serialize on a lock; a half-done extraction is redone.
set -eu
abi=$1
what=${2:-all}
cache=${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test}
mkdir -p "$cache/debs" "$cache/kernels"
exec 9>"$cache/.lock"
flock 9

case $abi in
6.1.0-*) kbuild=linux-kbuild-6.1 ;;
*+deb*) kbuild=linux-kbuild-$abi ;;
*) echo "fetch-kernel: unknown ABI form '$abi' (want 6.1.0-NN or 6.12.N+debNN)" >&2; exit 2 ;;
esac
dir=$cache/kernels/$abi

# deb PKG: path of PKG's .deb in the cache, downloading it when absent.
deb() {
	f=$(ls "$cache/debs/$1"_*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$f" ]; then
		(cd "$cache/debs" && apt-get download -q "$1" >&2) || {
			apt-get update -qq >&2
			(cd "$cache/debs" && apt-get download -q "$1" >&2)
		}
		f=$(ls "$cache/debs/$1"_*.deb | head -n1)
	fi
	echo "$f"
}

extract() { # extract NAME PKG...: a fresh dpkg -x of every PKG into $dir/NAME
	name=$1; shift
	rm -rf "$dir/$name"
	mkdir -p "$dir/$name"
	for p in "$@"; do dpkg -x "$(deb "$p")" "$dir/$name"; done
}

if [ "$what" = image ] || [ "$what" = all ]; then
	if [ ! -e "$dir/image.done" ]; then
		extract image "linux-image-$abi-amd64-unsigned"
		# An installed kernel has its module indexes (Debian's postinst runs depmod); tests
		# hard-link this tree, and depmod replaces files by rename, so the cache stays intact.
		depmod -b "$dir/image" "$abi-amd64"
		touch "$dir/image.done"
	fi
fi
if [ "$what" = headers ] || [ "$what" = all ]; then
	if [ ! -e "$dir/headers.done" ]; then
		extract headers "linux-headers-$abi-amd64" "linux-headers-$abi-common" "$kbuild"
		# The arch headers' Makefile includes the common tree by its installed absolute path.
		mk=$dir/headers/usr/src/linux-headers-$abi-amd64/Makefile
		echo "include $dir/headers/usr/src/linux-headers-$abi-common/Makefile" >"$mk"
		touch "$dir/headers.done"
	fi
fi
echo "$dir"
