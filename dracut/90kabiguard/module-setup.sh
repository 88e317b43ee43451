#!/bin/bash
# dracut module "kabiguard": put the kernel modules an admin declared required and early
# (/etc/kabiguard/required.d/*.conf, lines "name early") into the initramfs, and refuse the
# boot when one of them cannot load. Enabled by /etc/dracut.conf.d/90-kabiguard.conf.
# shellcheck disable=SC2154 # kernel, initdir, moddir: set by dracut
# Tests set KABIGUARD_CONFDIR (default /etc/kabiguard) and KABIGUARD_GATE (the gate binary).

# Only when asked for (the dracut.conf.d file, -a or -m): it acts on the admin's declarations.
check() {
    return 255
}

depends() {
    return 0
}

# kabiguard_required and kabiguard_early: the required.d parser shared with the
# initramfs-tools hook.
# shellcheck source=dracut/90kabiguard/kabiguard-required.sh
. "${BASH_SOURCE[0]%/*}/kabiguard-required.sh" || return 1

# A required early module missing for this kernel fails the build: better no new image than
# one that boots without the cluster's storage driver. So does an unreadable required.d.
installkernel() {
    local list
    local -a mods
    if ! list=$(kabiguard_early); then
        derror "kabiguard: required.d cannot be read (see above); no image for kernel $kernel"
        return 1
    fi
    [ -n "$list" ] || return 0
    mapfile -t mods <<<"$list"
    if ! hostonly='' instmods -c "${mods[@]}"; then
        derror "kabiguard: a required early module (${mods[*]}) is not available for kernel $kernel"
        return 1
    fi
}

install() {
    local gate=${KABIGUARD_GATE:-/usr/sbin/kabiguard-gate}
    local list
    if ! list=$(kabiguard_early); then
        dfatal "kabiguard: required.d cannot be read (see above)"
        exit 1
    fi
    # The gate is gone while this module stayed (a half-done uninstall): with a module required
    # early the image cannot refuse a boot without it, so no image; with none, a warning and an
    # image without kabiguard's part, so a half-removed kabiguard does not block image builds.
    if [ ! -x "$gate" ]; then
        if [ -n "$list" ]; then
            dfatal "kabiguard: $gate is missing, yet modules are required early (${list//$'\n'/ })"
            exit 1
        fi
        dwarn "kabiguard: $gate is missing (no module is required early)"
        return 0
    fi
    inst_simple "$gate" /usr/sbin/kabiguard-gate
    mkdir -p "$initdir/etc/kabiguard"
    printf '%s' "${list:+$list$'\n'}" >"$initdir/etc/kabiguard/required"
    # pre-udev: the earliest hook point of both the systemd and the shell initrd. The gate
    # loads modules itself (finit_module, dependencies from modules.dep), so it needs no udev,
    # and a refusal there stops the boot before any disk is touched.
    inst_hook pre-udev 10 "$moddir/kabiguard-gate.sh"
}
