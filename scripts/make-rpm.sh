#!/bin/sh
# make rpm: an RPM of kabiguard for RHEL and its rebuilds, staged by the project's own 'make
# install' (as make deb is) and built by rpmbuild from packaging/rpm/kabiguard.spec, which says
# what of the staged tree it ships, what it leaves out and why, and how it coexists with the
# weak-modules of RHEL's kmod package.
#   scripts/make-rpm.sh BIN GO    prints the path of the .rpm it wrote into BIN
set -eu
bin=$1 go=$2
set -- $(sh scripts/pkg-version.sh)
version=${RPM_VERSION:-$1} sha=$2
stage=$(mktemp -d "${TMPDIR:-/tmp}/kabiguard-rpm.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Binaries where the spec's %{_sbindir} says (/usr/sbin on RHEL; /usr/bin where sbin is merged).
# The dnf 4 plugin goes to the target release's python3 site-packages (see the script).
dnfdir=$(sh scripts/rpm-dnf-plugindir.sh)
make -s install DESTDIR="$stage/root" BIN="$bin" GO="$go" SBINDIR="$(rpm --eval '%{_sbindir}')" \
	DNF_PLUGINDIR="$dnfdir" >/dev/null
spec=$stage/kabiguard.spec
log=$(git log -1 --format='%s' 2>/dev/null | cut -c1-60 | sed 's/%/%%/g' || echo build)
when=$(LC_ALL=C date -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" '+%a %b %d %Y')
{ cat packaging/rpm/kabiguard.spec
  printf '\n%%changelog\n* %s kabiguard developers <kabiguard@users.noreply.github.com> - %s-1\n- Built from commit %s: %s\n' \
	"$when" "$version" "$sha" "$log"; } >"$spec"
rpmbuild -bb --quiet \
	--define "_topdir $stage/rpmbuild" \
	--define "kg_stage $stage/root" \
	--define "kg_version $version" \
	--define "kg_dnf_plugindir $dnfdir" \
	--define "_rpmdir $bin" \
	--define '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm' \
	"$spec" >&2
echo "$bin/kabiguard-$version-1.$(rpm --eval '%{_arch}').rpm"
