#!/usr/bin/env bash
# Amplification (SPEC S10, security issue abuse tests): before an address
# is validated, tetherd never sends it more than 3x the bytes it received
# from it. From a raw UDP socket, DTLS 1.2 and DTLS 1.3 ClientHellos built
# here field by field, of every size from the smallest to 1400 bytes
# (padding extension, RFC 7685), plus truncated and junk datagrams; the
# test counts every byte that comes back. tetherd has a certificate, so
# DTLS 1.3 certificate suites are on offer too.
. "$(dirname "$0")/lib.sh"

"$TOP/test/certs/gen.sh" "$T/pki" || { not_ok "test PKI generated"; exit 1; }
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "admin_token": "t0k",
 "dtls": {"cert_file": "$T/pki/server.pem", "key_file": "$T/pki/server.key",
          "ca_file": "$T/pki/ca.pem"}}
JSON
start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }

python3 - "$n1_PORT" >"$T/amp.txt" <<'PY'
import os, socket, struct, sys
port = int(sys.argv[1])

def u8(v): return struct.pack('!B', v)
def u16(v): return struct.pack('!H', v)
def u24(v): return struct.pack('!I', v)[1:]
def vec8(b): return u8(len(b)) + b
def vec16(b): return u16(len(b)) + b
def ext(t, body): return u16(t) + vec16(body)

def hello(v13, pad):
    if v13:
        suites = u16(0x1301) + u16(0x1305)
        exts = (ext(43, vec8(u16(0xfefc))) +                 # supported_versions: DTLS 1.3
                ext(10, vec16(u16(23))) +                     # supported_groups: secp256r1
                ext(13, vec16(u16(0x0403))) +                 # signature_algorithms
                ext(51, vec16(b'')) +                         # key_share: none (asks for an HRR)
                ext(45, vec8(u8(1))))                         # psk_key_exchange_modes
    else:
        suites = u16(0xc0a8) + u16(0xc0ac) + u16(0x00ff)
        exts = b''
    if pad is not None:
        exts += ext(21, b'\0' * pad)                          # padding (RFC 7685)
    body = (u16(0xfefd) + os.urandom(32) + vec8(b'') + vec8(b'') + vec16(suites) +
            vec8(b'\0') + (vec16(exts) if exts else b''))
    hs = u8(1) + u24(len(body)) + u16(0) + u24(0) + u24(len(body)) + body
    return u8(22) + u16(0xfefd) + u16(0) + b'\0' * 6 + vec16(hs)

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', port))
s.settimeout(0.15)

def exchange(d):
    s.send(d)
    got = 0
    n = 0
    while True:
        try:
            got += len(s.recv(65535))
            n += 1
        except socket.timeout:
            return got, n

for v13 in (False, True):
    name = 'dtls13' if v13 else 'dtls12'
    sizes = [None] + list(range(0, 1330, 37))
    worst, answered, total = 0.0, 0, 0
    for pad in sizes:
        d = hello(v13, pad)
        if len(d) > 1400:
            continue
        got, n = exchange(d)
        total += 1
        answered += n > 0
        worst = max(worst, got / len(d))
        print('%s size=%d answer=%d' % (name, len(d), got))
    print('%s hellos=%d answered=%d worst_ratio=%.3f' % (name, total, answered, worst))
# Truncated hellos and junk: answered at most 3x too (in practice: never).
worst, n_answered = 0.0, 0
base = hello(True, 40)
for cut in range(1, len(base), 7):
    got, n = exchange(base[:cut])
    worst = max(worst, got / cut)
    n_answered += n > 0
for size in (1, 13, 25, 60, 200, 1200):
    got, n = exchange(bytes([22, 0xfe, 0xfd]) + os.urandom(size))
    worst = max(worst, got / (size + 3))
    n_answered += n > 0
print('junk answered=%d worst_ratio=%.3f' % (n_answered, worst))
PY
note "$(grep -E 'worst_ratio' "$T/amp.txt" | tr '\n' ';')"
for v in dtls12 dtls13; do
    line=$(grep "^$v hellos" "$T/amp.txt")
    check "$v: every ClientHello size got its cookie exchange answer" \
        bash -c 'h=$(sed -E "s/.*hellos=([0-9]+).*/\1/" <<<"$1"); a=$(sed -E "s/.*answered=([0-9]+).*/\1/" <<<"$1"); [ "$h" -gt 30 ] && [ "$h" = "$a" ]' _ "$line"
    check "$v: never more than 3x the bytes of the hello went back" \
        awk -v l="$line" 'BEGIN { split(l, a, "worst_ratio="); exit !(a[2] + 0 <= 3.0 && a[2] + 0 > 0) }'
done
check "truncated hellos and junk: never more than 3x" \
    awk -v l="$(grep '^junk' "$T/amp.txt")" 'BEGIN { split(l, a, "worst_ratio="); exit !(a[2] + 0 <= 3.0) }'
check "no state was allocated for any of them" bash -c \
    '[ "$(curl -s -H "Authorization: Bearer t0k" "http://127.0.0.1:$1/stats" | jq -r ".sessions.handshakes_inflight")" = 0 ]' _ "$(admin_port n1)"
check "process still alive" kill -0 "$n1_PID"

finish
