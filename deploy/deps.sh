#!/usr/bin/env bash
# Installs what tether needs to build, run and test, and builds wolfSSL from
# Debian's source package into .deps/ (deploy/wolfssl.sh, which the
# container build runs too). Idempotent: when everything is
# present it only asks dpkg and reads a stamp (well under a second).
#
#   deploy/deps.sh build   # compiler, libraries, wolfSSL (make, make run)
#   deploy/deps.sh test    # + redis-server, nginx, libcoap tools, clang... (make test)
#   deploy/deps.sh bench   # the same as test: libcoap peer, jq, gnuplot (make bench)
set -euo pipefail

level=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/.deps"

build_pkgs=(gcc make pkg-config libc6-dev libuv1-dev libhiredis-dev libjansson-dev
    autoconf automake libtool ca-certificates libhttp-parser-dev)
test_pkgs=(libcmocka-dev redis-server redis-tools nginx libnginx-mod-stream
    libcoap3-bin clang libclang-rt-14-dev curl jq procps iproute2 nftables valgrind util-linux
    openssl podman debootstrap python3-yaml gnuplot-nox)

pkgs=("${build_pkgs[@]}")
case $level in
build) ;;
test) pkgs+=("${test_pkgs[@]}") ;;
bench) pkgs+=("${test_pkgs[@]}") ;; # libcoap (the peer), jq and gnuplot (the chart)
*) printf 'deps: unknown level %s (build, test or bench)\n' "$level" >&2; exit 2 ;;
esac

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages ---------------------------------------------------------
missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq || die "apt-get update failed: is the package registry reachable?"
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# --- wolfSSL from Debian's source package ------------------------------------
exec "$top/deploy/wolfssl.sh" "$prefix"
