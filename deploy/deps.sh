#!/usr/bin/env bash
# Installs what tether needs to build, run and test, and builds wolfSSL from
# Debian's source package into .deps/. Idempotent: when everything is
# present it only asks dpkg and reads a stamp (well under a second).
#
#   deploy/deps.sh build   # compiler, libraries, wolfSSL (make, make run)
#   deploy/deps.sh test    # + redis-server, nginx, libcoap tools, clang... (make test)
set -euo pipefail

level=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/.deps"

build_pkgs=(gcc make pkg-config libc6-dev libuv1-dev libhiredis-dev libjansson-dev
    autoconf automake libtool ca-certificates libhttp-parser-dev)
test_pkgs=(libcmocka-dev redis-server redis-tools nginx libnginx-mod-stream
    libcoap3-bin clang libclang-rt-14-dev curl jq procps iproute2 nftables valgrind util-linux
    openssl)

pkgs=("${build_pkgs[@]}")
[ "$level" = test ] && pkgs+=("${test_pkgs[@]}")

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

# --- wolfSSL from Debian's source package -------------------------------------
# Bookworm's libwolfssl lacks DTLS 1.3 and Connection ID, so build >= 5.7.6.
min_version=5.7.6
# Pure-PSK suites (TLS_PSK_WITH_AES_128_CCM_8, SPEC S2) need WOLFSSL_STATIC_PSK.
cflags_extra="-DDTLS_CID_MAX_SIZE=16 -DWOLFSSL_STATIC_PSK -fPIC"
conf_flags=(--enable-dtls --enable-dtls13 --enable-dtlscid --enable-psk --enable-aesccm
    --enable-aesgcm --enable-ecc --enable-sessionexport --enable-certgen --enable-keygen
    --enable-static --disable-shared --disable-examples --disable-crypttests
    --disable-benchmark)
# SP math with assembly: P-256 ECDHE and ECDSA several times faster (S9 handshakes).
conf_flags+=(--enable-sp)
if [ "$(uname -m)" = x86_64 ]; then conf_flags+=(--enable-aesni --enable-intelasm --enable-sp-asm); fi
want_stamp="flags=${conf_flags[*]} cflags=$cflags_extra"
stamp="$prefix/wolfssl.stamp"
src_dir_for_header="$prefix/src"

# wolfSSL does not install wolfssl/internal.h; lib/dtls/wolfrec.c reads the
# record number of the last authenticated record from it (no public API), so
# it is copied from the very source tree the library was built from.
internal_h="$prefix/include/wolfssl/internal.h"
if [ -f "$stamp" ] && [ -f "$prefix/lib/libwolfssl.a" ] && grep -qxF "$want_stamp" "$stamp"; then
    [ -f "$internal_h" ] && exit 0
    built=$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/wolfssl.pc" 2>/dev/null || true)
    if [ -n "$built" ] && [ -f "$src_dir_for_header/wolfssl-$built/wolfssl/internal.h" ]; then
        install -m 644 "$src_dir_for_header/wolfssl-$built/wolfssl/internal.h" "$internal_h"
        exit 0
    fi
    log "wolfssl/internal.h is missing and its source tree is gone: rebuilding wolfssl"
fi

ver_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }

# The mirror is whatever this machine's apt already uses for Debian, read from
# its own configuration; the system's apt state is left untouched.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(awk '/^URIs:/ {print $2; exit}' "$f")
    case "$u" in */debian|*/debian/) mirror=${u%/}; break ;; esac
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
    mirror=${mirror%/}
fi
[ -n "$mirror" ] || die "cannot find a Debian mirror in /etc/apt sources"

aptdir="$prefix/apt"
src="$prefix/src"
mkdir -p "$aptdir/parts" "$aptdir/lists/partial" "$src"
cat >"$aptdir/parts/tether-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: sid forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
aptopts=(-o "Dir::Etc::SourceParts=$aptdir/parts" -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::State::Lists=$aptdir/lists" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root")

log "fetching the wolfssl source package index"
apt-get "${aptopts[@]}" update -qq >"$aptdir/update.log" 2>&1 || true
tarball=$(ls "$src"/wolfssl_*.orig.tar.gz 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$tarball" ]; then
    # The .dsc / .debian.tar may be absent from the mirror: apt-get then exits
    # non-zero after fetching the .orig.tar.gz, which is all that is needed.
    (cd "$src" && apt-get "${aptopts[@]}" source --download-only wolfssl \
        >"$aptdir/source.log" 2>&1) || true
    tarball=$(ls "$src"/wolfssl_*.orig.tar.gz 2>/dev/null | sort -V | tail -n1 || true)
fi
[ -n "$tarball" ] || die "could not download wolfssl's source package (see $aptdir/source.log); is the registry reachable?"
version=$(basename "$tarball" | sed -E 's/^wolfssl_([0-9.]+)\.orig\.tar\.gz$/\1/')
ver_ge "$version" "$min_version" || die "wolfssl $version from the mirror is older than $min_version"

log "building wolfssl $version into $prefix"
work="$src/wolfssl-$version"
rm -rf "$work"
mkdir -p "$work"
tar -xzf "$tarball" -C "$work" --strip-components=1
(
    cd "$work"
    ./autogen.sh >build.log 2>&1
    ./configure --prefix="$prefix" "${conf_flags[@]}" CFLAGS="$cflags_extra" >>build.log 2>&1
    make -j"$(nproc)" >>build.log 2>&1
    make install >>build.log 2>&1
    install -m 644 wolfssl/internal.h "$prefix/include/wolfssl/internal.h"
) || die "wolfssl build failed, see $work/build.log"
echo "$want_stamp" >"$stamp"
log "wolfssl $version ready"
