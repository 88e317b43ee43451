#!/bin/sh
# make deb: a Debian binary package of kabiguard, staged by the project's own 'make install'
# (so the package holds exactly what install places) and built with dpkg-deb.
#   scripts/make-deb.sh BIN GO    prints the path of the .deb it wrote into BIN
# Files under /etc are conffiles (dpkg keeps an admin's changes, as install keeps a modified
# kabiguard.conf); install's manifest is left out (dpkg keeps its own list, and 'make
# uninstall' must not act on a packaged system).
set -eu
bin=$1 go=$2
arch=$(dpkg --print-architecture)
set -- $(sh scripts/pkg-version.sh)
version=${DEB_VERSION:-$1} sha=$2
stage=$(mktemp -d "${TMPDIR:-/tmp}/kabiguard-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# The dnf gate stays out: Debian hosts have the APT gate.
make -s install DESTDIR="$stage/root" BIN="$bin" GO="$go" DNF_PLUGINDIR= >/dev/null
root=$stage/root
rm -f "$root/usr/share/kabiguard/installed-files"
gzip -9n "$root"/usr/share/man/man*/*   # Debian policy 12.1: manual pages compressed
# Go binaries are static by design (one of them goes into every initramfs); lintian knows Go
# only from a source package's Build-Depends, so say it here.
mkdir -p "$root/usr/share/lintian/overrides"
for b in kabiguard weak-modules kabiguard-gate; do
	echo "kabiguard: statically-linked-binary [usr/sbin/$b]"
done >"$root/usr/share/lintian/overrides/kabiguard"
doc=$root/usr/share/doc/kabiguard
mkdir -p "$doc" "$root/DEBIAN"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kabiguard
Source: https://github.com/kabiguard/kabiguard

Files: *
Copyright: 2026 the kabiguard authors
License: no license has been chosen yet
 No license has been granted yet; see the project's README.
COPYRIGHT
log=$(git log -1 --format='%s' 2>/dev/null | cut -c1-50 || echo build)
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'kabiguard (%s) unstable; urgency=medium\n\n  * Built from commit %s:\n    %s\n\n -- kabiguard developers <kabiguard@users.noreply.github.com>  %s\n' \
	"$version" "$sha" "$log" "$when" | gzip -9n >"$doc/changelog.gz"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: kabiguard
Version: $version
Architecture: $arch
Maintainer: kabiguard developers <kabiguard@users.noreply.github.com>
Installed-Size: $size
Depends: kmod
Recommends: initramfs-tools | dracut
Section: admin
Priority: optional
Homepage: https://github.com/kabiguard/kabiguard
Description: keep out-of-tree kernel modules loadable across kernel updates
 kabiguard links kABI-compatible builds of external kernel modules (DKMS, kmod
 packages, vendor drivers) into weak-updates/ of every installed kernel, keeps
 each kernel's initramfs holding the builds its tree resolves to, and refuses a
 kernel that would boot without a required module, at installation and at boot.
 It also ships a drop-in weak-modules and answers which modules a kernel keeps.
CONTROL
(cd "$root" && find etc -type f | sed 's#^#/#' | sort) >"$root/DEBIAN/conffiles"
install -m 755 packaging/deb/postrm "$root/DEBIAN/postrm"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
out=$bin/kabiguard_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
