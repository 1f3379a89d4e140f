#!/usr/bin/env bash
# Block-wise transfers through tether (SPEC S4, RFC 7959, RFC 9175): real
# tetherd, simulated devices (tether-bench devices: /big 4096 bytes,
# /large 65536 bytes, /upload answers the SHA-256 of a Block1 upload,
# /hits counts what /big, /large and /upload served) and Debian's libcoap
# clients with -b 16, 64 and 1024.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
   "allow": [{"devices": "dev*", "methods": ["GET", "PUT", "POST"]}]}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken",
 "proxy": {"upload_max_bytes": 2097152, "block_idle_ms": 1500}}
JSON

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
PLAIN=coap://127.0.0.1:$PLAIN_PORT
COAPS=coaps://127.0.0.1:$n1_PORT
# plain DEVICE PATH ARGS...: loopback plain CoAP through tether
plain() {
    local dev=$1 path=$2
    shift 2
    timeout 60 coap-client-notls -B 50 -O "3,$dev" "$@" "$PLAIN/$path"
}
# device_get DEVICE PATH: the device's own answer (the admin API always asks the device)
device_get() {
    curl -s -X POST -H 'Authorization: Bearer t0ken' -d "{\"path\": \"/$2\"}" \
        "$ADMIN/devices/$1/request" | jq -r .payload
}

"$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
    --count 4 --stats-every 0 >"$T/fleet.log" 2>&1 &
PIDS+=("$!")
if wait_log "$T/fleet.log" 'registered 4/4' 60; then ok "4 simulated devices register"; else
    not_ok "4 simulated devices register"
    tail -5 "$T/fleet.log" | sed 's/^/#   /'
fi

# What the devices serve, byte for byte (bench/README.md).
python3 - "$T" <<'PY'
import sys
t = sys.argv[1]
open(t + "/big.want", "wb").write(bytes(ord("a") + i % 26 for i in range(4096)))
open(t + "/large.want", "wb").write(bytes((i * 7 + i // 251) & 0xff for i in range(65536)))
PY
# same FILE WANT: coap-client printed WANT and its one trailing newline
bytes() { wc -c <"$1" | tr -d ' '; }
same() { [ "$(bytes "$1")" = $(($(bytes "$2") + 1)) ] && cmp -s -n "$(bytes "$2")" "$1" "$2"; }

# --- Block2 from devices, every block size, both resources, byte for byte.
for b in 16 64 1024; do
    for r in big large; do
        plain dev0 "$r" -m get -b "$b" >"$T/$r.$b" 2>"$T/$r.$b.err"
        check "-b $b: GET dev0/$r through tether is byte for byte the device's ($(bytes "$T/$r.$b") bytes)" \
            same "$T/$r.$b" "$T/$r.want"
    done
done
check "... reassembled by tether: 2 transfers (proxy.block_transfers)" test "$(stat proxy.block_transfers)" = 2
check "... the device was asked 4 + 64 blocks, once (dev0 /hits)" \
    test "$(plain dev0 hits -m get)" = "big=4 large=64 upload=0"
timeout 60 coap-client-openssl -B 50 -u app1 -k app1-secret -b 64 -m get -O 3,dev0 "$COAPS/large" \
    >"$T/large.dtls" 2>/dev/null
check "a DTLS client (-b 64) gets dev0/large byte for byte" same "$T/large.dtls" "$T/large.want"

# --- the client's block size is what it gets (early negotiation, RFC 7959 §2.4)
plain dev0 large -m get -b 16 -v 7 >"$T/large16.v" 2>&1
sizes=$(grep -aoE 'c:2\.05 .*Block2:[0-9]+/[M_]/[0-9]+' "$T/large16.v" | grep -oE '/[0-9]+$' | sort -u | tr -d '\n')
nblocks=$(grep -aoE 'c:2\.05 .*Block2:[0-9]+/[M_]/16' "$T/large16.v" | grep -oE 'Block2:[0-9]+' | sort -u | wc -l)
check "-b 16: tether served dev0/large as 4096 blocks ($nblocks), each of 16 bytes ($sizes)" \
    test "$nblocks/$sizes" = 4096//16

# --- tether's own resources honour Block2 too.
whole=$(timeout 20 coap-client-notls -m get "$PLAIN/.well-known/core")
in16=$(timeout 20 coap-client-notls -m get -b 16 "$PLAIN/.well-known/core")
timeout 20 coap-client-notls -m get -b 16 -v 7 "$PLAIN/.well-known/core" >"$T/wkc.v" 2>&1
check "/.well-known/core in 16-byte blocks is the whole document" test "$in16" = "$whole"
check "... served as several blocks of 16 bytes" \
    test "$(grep -acE 'c:2\.05 .*Block2:[0-9]+/M/16' "$T/wkc.v")" -ge 3

# --- eight clients at once: one upstream transfer (the device's count).
check "dev2 has served no /large block yet" test "$(plain dev2 hits -m get)" = "big=0 large=0 upload=0"
t0=$(stat proxy.block_transfers)
pids=()
for i in 1 2 3 4 5 6 7 8; do
    plain dev2 large -m get -b 64 >"$T/c$i.out" 2>/dev/null &
    pids+=("$!")
done
wait "${pids[@]}"
good=0
for i in 1 2 3 4 5 6 7 8; do same "$T/c$i.out" "$T/large.want" && good=$((good + 1)); done
check "8 concurrent -b 64 clients each get dev2/large byte for byte ($good/8)" test $good = 8
check "... with one upstream transfer: the device served 64 blocks of 1024" \
    test "$(plain dev2 hits -m get)" = "big=0 large=64 upload=0"
check "... proxy.block_transfers +1" test "$(stat proxy.block_transfers)" = $((t0 + 1))

# --- Block1: a 1 MiB upload arrives intact.
head -c 1048576 /dev/urandom >"$T/fw.bin"
want=$(sha256sum "$T/fw.bin" | cut -c1-64)
got=$(plain dev1 upload -m put -b 1024 -f "$T/fw.bin" 2>&1)
check "a 1 MiB PUT in 1024-byte blocks: the device's SHA-256 is the file's" test "$got" = "$want"
check "... the device's state says so too" test "$(device_get dev1 upload)" = "$want"
check "... relayed block by block (proxy.upload_blocks 1024, uploads_completed 1)" \
    test "$(stat proxy.upload_blocks)/$(stat proxy.uploads_completed)" = 1024/1
check "... nothing left behind (proxy.uploads_active 0)" test "$(stat proxy.uploads_active)" = 0

# --- an upload cut off half way leaves the cache and the device as they were.
before=$(plain dev1 upload -m get)
check "GET dev1/upload (cached now) is the last upload's digest" test "$before" = "$want"
inv0=$(stat proxy.cache_invalidations)
head -c 1048576 /dev/urandom >"$T/fw2.bin"
python3 - "$PLAIN_PORT" "$T/fw2.bin" >"$T/half.txt" <<'PY'
# A client that sends the first 512 of 1024 blocks of a PUT dev1/upload
# (RFC 7959 Block1, 1024 bytes, one Request-Tag), each after the answer to
# the one before, then stops.
import socket, sys
port, data = int(sys.argv[1]), open(sys.argv[2], "rb").read()
def opt(prev, num, val):
    d, l = num - prev, len(val)
    def nib(v):
        return (v, b"") if v < 13 else (13, bytes([v - 13])) if v < 269 else (14, (v - 269).to_bytes(2, "big"))
    dn, de = nib(d)
    ln, le = nib(l)
    return bytes([dn << 4 | ln]) + de + le + val
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
codes = []
for num in range(512):
    mid = (0x4000 + num) & 0xffff
    v = num << 4 | 1 << 3 | 6  # M=1, SZX 6 (1024)
    blk = v.to_bytes((v.bit_length() + 7) // 8, "big")
    msg = bytes([0x42, 3, mid >> 8, mid & 0xff]) + b"tk"
    msg += opt(0, 3, b"dev1") + opt(3, 11, b"upload") + opt(11, 27, blk) + opt(27, 292, b"\x05\x06")
    msg += b"\xff" + data[num * 1024:(num + 1) * 1024]
    s.sendto(msg, ("127.0.0.1", port))
    while True:
        r = s.recv(2048)
        if r[1] != 0:
            break
    codes.append("%d.%02d" % (r[1] >> 5, r[1] & 31))
print(" ".join(sorted(set(codes))), len(codes))
PY
check "half an upload (512 of 1024 blocks) was relayed: each block got 2.31" \
    test "$(cat "$T/half.txt")" = "2.31 512"
h0=$(stat proxy.cache_hits)
check "... GET dev1/upload still gives the last complete upload's digest" \
    test "$(plain dev1 upload -m get)" = "$want"
check "... from the cache, which the half upload did not touch" \
    test "$(($(stat proxy.cache_hits) - h0))/$(stat proxy.cache_invalidations)" = "1/$inv0"
check "... and the device's own state is unchanged" test "$(device_get dev1 upload)" = "$want"
gone=0
for _ in $(seq 50); do # proxy.block_idle_ms is 1500 here
    [ "$(stat proxy.uploads_active)" = 0 ] && { gone=1; break; }
    sleep 0.1
done
check "... and tether forgets the abandoned upload (uploads_active 0, uploads_abandoned 1)" \
    test "$gone/$(stat proxy.uploads_abandoned)" = 1/1

# --- bounds: Size1 beyond proxy.upload_max_bytes (2 MiB here) gets 4.13.
head -c 3000000 /dev/zero >"$T/huge.bin"
out=$(plain dev3 upload -m put -b 1024 -f "$T/huge.bin" 2>&1)
check "a 3 MB upload (Size1 beyond upload_max_bytes) gets 4.13" grep -q '4\.13' <<<"$out"
check "... before any block reached the device" test "$(device_get dev3 upload)" = none
check "/stats limits.upload_max_bytes is the configured 2 MiB" test "$(stat limits.upload_max_bytes)" = 2097152

finish
