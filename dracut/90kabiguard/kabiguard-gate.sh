#!/bin/sh
# dracut pre-udev hook (sourced): load the required early modules; if one cannot load, stop the
# boot with one line naming the module and the kernel's reason. rd.kabiguard=0 bypasses it.
type getargbool >/dev/null 2>&1 || . /lib/dracut-lib.sh

if getargbool 1 rd.kabiguard; then
    if kabiguard_msg=$(/usr/sbin/kabiguard-gate 2>&1); then
        info "$kabiguard_msg"
    else
        die "$kabiguard_msg (boot with rd.kabiguard=0 to skip this check)"
    fi
    unset kabiguard_msg
fi
