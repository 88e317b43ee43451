#!/bin/sh
# Debian 12 chroots for the end-to-end tests (internal/testkit/chroot.go).
#
#   debian-chroot.sh base
#       Makes, once, the cached tree $CACHE/chroot/bookworm-minbase (debootstrap
#       --variant=minbase bookworm, the host's apt sources, a policy-rc.d that forbids service
#       starts, apt lists fetched) and prints its path. The lists are refreshed when older than a
#       day (the archive drops superseded .debs). Tests copy the tree; they never write into it.
#   debian-chroot.sh run DIR CMD
#       Runs `sh -c CMD` chrooted in DIR inside a private mount namespace that has /proc, /sys
#       and /dev mounted: the mounts die with the command, so none is ever left behind and the
#       host's mount table never changes. DIR's /var/cache/apt/archives holds hard links to the
#       shared .deb cache ($CACHE/chroot/apt-archives), and what apt fetched is linked back. The
#       exit code is CMD's.
#   debian-chroot.sh host DIR CMD
#       Runs `sh -c CMD` on the host (not chrooted) with the same mounts under DIR (for
#       `make install DESTDIR=DIR`, which needs nothing mounted but is run alike for symmetry).
#
# CACHE is $KABIGUARD_TEST_CACHE (default /var/cache/kabiguard-test). Needs root, debootstrap,
# unshare and chroot (util-linux, coreutils), and the archive on first use.
set -eu

CACHE=${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test}
BASE=$CACHE/chroot/bookworm-minbase
DEBS=$CACHE/chroot/apt-archives

die() { echo "debian-chroot.sh: $*" >&2; exit 2; }

# mirror is the first Debian URI of the host's sources (debootstrap needs one).
mirror() {
    m=$(sed -n 's#^URIs:[[:space:]]*\(http[^ ]*/debian\)[[:space:]]*$#\1#p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
    echo "${m:-http://deb.debian.org/debian}"
}

# put writes file $1 with stdin's content and mode $2 unless it has them already; a change is a
# new file renamed into place, never a write through a hard link that a test's copy shares.
put() {
    ptmp=$1.tmp-$$
    cat >"$ptmp"
    chmod "$2" "$ptmp"
    if [ -f "$1" ] && cmp -s "$ptmp" "$1" && [ "$(stat -c %a "$1")" = "$2" ]; then
        rm -f "$ptmp"
    else
        mv -f "$ptmp" "$1"
    fi
}

# configure sets up apt and dpkg in the cached tree as the tests expect them (idempotent: run on
# every `base`, under the lock, so a change here reaches an existing cache).
configure() {
    t=$1
    mkdir -p "$t/etc/apt/sources.list.d" "$t/usr/sbin"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        put "$t/etc/apt/sources.list.d/debian.sources" 644 </etc/apt/sources.list.d/debian.sources
        rm -f "$t/etc/apt/sources.list"
    else
        put "$t/etc/apt/sources.list" 644 </etc/apt/sources.list
    fi
    # No daemon may start in a chroot (invoke-rc.d asks policy-rc.d; 101 = action forbidden).
    printf '#!/bin/sh\nexit 101\n' | put "$t/usr/sbin/policy-rc.d" 755
    # Keep the downloaded .debs (the archives directory is the shared cache), no recommends.
    put "$t/etc/apt/apt.conf.d/90kabiguard-test" 644 <<'EOC'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Keep-Downloaded-Packages "true";
Binary::apt::APT::Keep-Downloaded-Packages "true";
Acquire::Retries "3";
DPkg::Lock::Timeout "600";
EOC
    # No docs; no fsync per unpacked file (a throwaway tree: dpkg's fsyncs were most of the
    # wall time on a shared disk).
    put "$t/etc/dpkg/dpkg.cfg.d/90kabiguard-test" 644 <<'EOC'
force-unsafe-io
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-include /usr/share/doc/*/copyright
EOC
}

# inns runs "$@" in a private mount namespace with DIR's mounts (see the header).
inns() {
    dir=$1; shift
    [ -d "$dir/usr" ] || die "$dir is not a chroot"
    mkdir -p "$DEBS/partial"
    exec unshare --mount --propagation private -- sh -ec '
        d=$1; debs=$2; shift 2
        mount -t proc proc "$d/proc"
        mount -t sysfs sysfs "$d/sys"
        mount --rbind /dev "$d/dev"
        # The chroot has its own archives directory of hard links to the shared .debs, and
        # what apt fetched goes back the same way: apt takes the lock of its archives directory
        # without waiting, so a shared one failed concurrent tests ("Could not get lock
        # /var/cache/apt/archives/lock"). apt never writes a .deb in place (partial/, then
        # rename), so a link is never written through.
        a=$d/var/cache/apt/archives
        mkdir -p "$a/partial"
        cp -l -n "$debs"/*.deb "$a"/ 2>/dev/null || true
        rc=0
        "$@" || rc=$?
        cp -l -n "$a"/*.deb "$debs"/ 2>/dev/null || true
        exit $rc' inns "$dir" "$DEBS" "$@"
}

base() {
    mkdir -p "$CACHE/chroot" "$DEBS/partial"
    exec 9>"$CACHE/chroot/.lock"
    flock 9
    if [ ! -f "$BASE/.done" ]; then
        command -v debootstrap >/dev/null || die "debootstrap is not installed (.ci/run installs it)"
        tmp=$BASE.tmp-$$
        rm -rf "$BASE" "$BASE".tmp-*
        # The .debs debootstrap fetches stay in the shared cache, so a rebuild downloads nothing.
        mkdir -p "$tmp/var/cache/apt/archives"
        cp -l "$DEBS"/*.deb "$tmp/var/cache/apt/archives/" 2>/dev/null || true
        debootstrap --variant=minbase bookworm "$tmp" "$(mirror)" >&2 || die "debootstrap failed (log: $tmp/debootstrap/debootstrap.log)"
        for f in "$tmp"/var/cache/apt/archives/*.deb; do
            [ -e "$DEBS/${f##*/}" ] || ln "$f" "$DEBS/" 2>/dev/null || cp "$f" "$DEBS/"
        done
        rm -f "$tmp"/var/cache/apt/archives/*.deb
        rm -rf "$tmp/var/lib/apt/lists/.stamp"
        mv "$tmp" "$BASE"
    fi
    configure "$BASE"
    # Kernel .debs other tests fetched (scripts/fetch-kernel.sh) serve apt too: apt checks
    # their hashes against its lists before using them.
    for f in "$CACHE"/debs/*.deb; do
        [ -e "$f" ] && [ ! -e "$DEBS/${f##*/}" ] && ln "$f" "$DEBS/" 2>/dev/null || true
    done
    # Fresh lists at most a day old (the archive drops superseded .debs).
    if [ -z "$(find "$BASE/var/lib/apt/lists/.stamp" -mmin -1440 2>/dev/null)" ]; then
        ( inns "$BASE" chroot "$BASE" apt-get update -q ) >&2 || die "apt-get update in $BASE failed"
        # inns linked the .debs in; copies of the tree copy var/ in full.
        rm -f "$BASE/var/cache/apt/"*.bin "$BASE/var/cache/apt/archives/"*.deb
        touch "$BASE/var/lib/apt/lists/.stamp" "$BASE/.done"
    fi
    echo "$BASE"
}

case "${1:-}" in
base) base ;;
run)
    [ $# -eq 3 ] || die "usage: $0 run DIR CMD"
    inns "$2" chroot "$2" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive sh -c "$3" ;;
host)
    [ $# -eq 3 ] || die "usage: $0 host DIR CMD"
    inns "$2" sh -c "$3" ;;
*) die "usage: $0 base | run DIR CMD | host DIR CMD" ;;
esac
