#!/bin/bash
# dracut module "kabiguard": put the kernel modules an admin declared required and early
# (/etc/kabiguard/required.d/*.conf, lines "name early") into the initramfs, and refuse the
# boot when one of them cannot load. Enabled by /etc/dracut.conf.d/90-kabiguard.conf.
# Tests set KABIGUARD_CONFDIR (default /etc/kabiguard) and KABIGUARD_GATE (the gate binary).

# Only when asked for (the dracut.conf.d file, -a or -m): it acts on the admin's declarations.
check() {
    return 255
}

depends() {
    return 0
}

# kabiguard_early prints the required modules marked early, one per line.
kabiguard_early() {
    local f name rest
    for f in "${KABIGUARD_CONFDIR:-${dracutsysrootdir-}/etc/kabiguard}"/required.d/*.conf; do
        [ -f "$f" ] || continue
        while read -r name rest || [ -n "$name" ]; do
            case "$name" in '' | \#*) continue ;; esac
            rest=${rest%%#*}
            case " $rest " in *" early "*) echo "${name//-/_}" ;; esac
        done <"$f"
    done | sort -u
}

# A required early module missing for this kernel fails the build: better no new image than
# one that boots without the cluster's storage driver.
installkernel() {
    local mods
    mods=$(kabiguard_early)
    [ -n "$mods" ] || return 0
    # shellcheck disable=SC2086
    if ! hostonly='' instmods -c $mods; then
        derror "kabiguard: a required early module ($(echo $mods)) is not available for kernel $kernel"
        return 1
    fi
}

install() {
    local gate=${KABIGUARD_GATE:-/usr/sbin/kabiguard-gate}
    if [ ! -x "$gate" ]; then
        dfatal "kabiguard: $gate is missing"
        exit 1
    fi
    inst_simple "$gate" /usr/sbin/kabiguard-gate
    mkdir -p "$initdir/etc/kabiguard"
    kabiguard_early >"$initdir/etc/kabiguard/required"
    # pre-udev: the earliest hook point of both the systemd and the shell initrd. The gate
    # loads modules itself (finit_module, dependencies from modules.dep), so it needs no udev,
    # and a refusal there stops the boot before any disk is touched.
    inst_hook pre-udev 10 "$moddir/kabiguard-gate.sh"
}
