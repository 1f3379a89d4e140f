#!/usr/bin/env bash
# `make bench`: the SPEC S9 suite (tether-bench suite) with a header that
# describes the machine. Builds nothing (make already did). The output is
# teed to $BUILD/bench-results.txt, the JSON table written to
# $BUILD/bench-results.json and drawn (bench/chart.sh) in
# $BUILD/bench-results.svg. Extra arguments go to the suite (e.g. --quick).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
BENCH=$BUILD/tether-bench
[ -x "$BENCH" ] || { echo "bench/run.sh: $BENCH is missing (run make first)" >&2; exit 1; }

wolfssl_version() {
    local h=$TOP/.deps/include/wolfssl/version.h
    [ -f "$h" ] && sed -n 's/.*LIBWOLFSSL_VERSION_STRING "\(.*\)".*/\1/p' "$h" || echo unknown
}
libcoap_version() {
    dpkg-query -W -f '${Version}' libcoap3-bin 2>/dev/null || echo "not installed"
}

rm -f "$BUILD/bench-results.json" "$BUILD/bench-results.svg"
{
    echo "== tether benchmark suite (SPEC S9), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu      $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
    echo "memory   $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel   $(uname -srm)"
    echo "wolfSSL  $(wolfssl_version) (.deps, built by make deps)"
    echo "libcoap  $(libcoap_version) (coap-server-openssl, the peer)"
    echo "commit   $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "pinning  servers (tetherd, relay, libcoap proxy) on CPU 0; load and devices on CPU 1"
    echo
    "$BENCH" suite --json-out "$BUILD/bench-results.json" "$@" 2>&1
} | tee "$BUILD/bench-results.txt"
rc=${PIPESTATUS[0]}
if [ -s "$BUILD/bench-results.json" ]; then
    "$TOP/bench/chart.sh" "$BUILD/bench-results.json" "$BUILD/bench-results.svg" \
        "commit $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d)" || echo "bench/run.sh: no chart (bench/chart.sh failed)" >&2
fi
exit "$rc"
