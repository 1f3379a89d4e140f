#!/usr/bin/env bash
# Builds wolfSSL from Debian's source package into PREFIX (static library,
# headers, pkg-config file). The one place wolfSSL's configure flags live:
# `make deps` (deploy/deps.sh) and the container build (docker/Dockerfile,
# through deps.sh) both run it. Idempotent: a stamp in PREFIX records the
# flags it was built with, so a second run only reads the stamp.
#
#   deploy/wolfssl.sh PREFIX
#
# Needs gcc, make, autoconf, automake, libtool and apt-get (deploy/deps.sh
# installs them), and a reachable Debian mirror (deploy/mirror.sh).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
prefix=$1
here=$(cd "$(dirname "$0")" && pwd)

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# Bookworm's libwolfssl lacks DTLS 1.3 and Connection ID, so build >= 5.7.6.
min_version=5.7.6
# Pure-PSK suites (TLS_PSK_WITH_AES_128_CCM_8, SPEC S2) need WOLFSSL_STATIC_PSK.
# Session tickets (S2 resumption): lib/dtls/ticket.c encrypts them with its own
# AES-256-GCM format and appends a trailer (identity, role, key tag) after
# wolfSSL's internal ticket; the padding is the room the encrypt callback may
# use beyond that ticket (TETHER_TICKET_TRAILER_MAX in lib/dtls/ticket.h,
# which checks this at compile time).
cflags_extra="-DDTLS_CID_MAX_SIZE=16 -DWOLFSSL_STATIC_PSK -DWOLFSSL_TICKET_EXTRA_PADDING_SZ=160 -fPIC"
conf_flags=(--enable-dtls --enable-dtls13 --enable-dtlscid --enable-psk --enable-aesccm --enable-session-ticket
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
mirror=$("$here/mirror.sh") || die "cannot find a Debian mirror in /etc/apt sources"

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
