#!/bin/sh
# Prints where the RPM puts the dnf 4 plugin: python3's site-packages/dnf-plugins of the target
# release. rpm's %{python3_sitelib} where python-rpm-macros defines it (building on the target
# release), else RHEL 9's (python 3.9); RPM_DNF_PLUGINDIR overrides it (RHEL 8: 3.6, 10: 3.12).
# Used by scripts/make-rpm.sh and by the RPM test, which must agree.
set -eu
echo "${RPM_DNF_PLUGINDIR:-$(rpm --eval '%{?python3_sitelib}%{!?python3_sitelib:/usr/lib/python3.9/site-packages}')/dnf-plugins}"
