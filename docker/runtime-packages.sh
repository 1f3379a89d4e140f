#!/usr/bin/env bash
# Prints, one a line, the Debian packages that hold the shared libraries
# the given binaries load (as ldd resolves them). The container build runs
# it in its build stage, so the runtime stage installs exactly what the
# binaries link and no list of runtime packages is kept by hand beside
# deploy/deps.sh's build list.
#
#   docker/runtime-packages.sh BINARY...
set -euo pipefail

for bin in "$@"; do
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
    real=$(readlink -f "$lib")
    # With merged /usr, dpkg may know a file under /lib or /usr/lib.
    for p in "$lib" "$real" "/usr$lib" "${real#/usr}"; do
        if owner=$(dpkg -S "$p" 2>/dev/null); then
            echo "${owner%%:*}"
            continue 2
        fi
    done
    echo "runtime-packages: no package holds $lib" >&2
    exit 1
done | sort -u
