#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt uses (e.g.
# http://deb.debian.org/debian), read from its own configuration: deb822
# files in /etc/apt/sources.list.d/ first, then /etc/apt/sources.list. Used
# by deploy/wolfssl.sh (the wolfssl source package) and by the container
# test (debootstrap), so both ask the registry this machine already trusts.
# Exits 1, printing nothing, when no Debian mirror is configured.
set -euo pipefail

for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(awk '/^URIs:/ {print $2; exit}' "$f")
    case "$u" in */debian | */debian/) echo "${u%/}"; exit 0 ;; esac
done
if [ -f /etc/apt/sources.list ]; then
    u=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
    [ -n "$u" ] && { echo "${u%/}"; exit 0; }
fi
exit 1
