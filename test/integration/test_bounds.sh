#!/usr/bin/env bash
# Per-client bounds (security issue 11 item 5, SPEC S10) against a real
# tetherd and simulated devices (tether-bench devices):
#  - one client flooding a device with requests that stay pending gets
#    4.29 Too Many Requests with Max-Age once it holds
#    proxy.max_pending_per_client of them, and does not fill the node-wide
#    table: another client still gets 2.05 meanwhile;
#  - one peer flooding fresh message IDs gives up its own dedup entries
#    (proxy.dedup_per_peer), so another peer's retransmitted POST is still
#    recognised and not relayed a second time, though the shared table
#    (proxy.dedup_max) is far smaller than the flood.
# The flooding peers are plain-CoAP clients on loopback (a raw UDP socket
# each, python3), so the test controls message IDs and timing exactly.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET", "POST"]}]}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken",
 "proxy": {"max_pending": 40, "max_pending_per_client": 8, "request_timeout_ms": 8000,
           "dedup_max": 256, "dedup_per_peer": 32}}
JSON
start_tetherd n1 --config "$T/tether.json" || {
    not_ok "tetherd starts"
    exit 1
}
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' |
    sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }

"$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
    --count 2 --first 1 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
if ! wait_log "$T/devices.log" 'registered 2/2' 30; then
    not_ok "two simulated devices register"
    tail -5 "$T/devices.log" | sed 's/^/#   /'
    exit 1
fi
ok "two simulated devices register"

# coap.py: a minimal plain-CoAP client over one UDP socket (RFC 7252 §3).
cat >"$T/coap.py" <<'PY'
import socket, struct, sys, time

def opt(delta_num, prev, val):
    d = delta_num - prev
    out = bytearray()
    def ext(x):
        if x < 13: return x, b""
        if x < 269: return 13, bytes([x - 13])
        return 14, struct.pack("!H", x - 269)
    dn, de = ext(d)
    ln, le = ext(len(val))
    out.append(dn << 4 | ln)
    return bytes(out) + de + le + val

def msg(typ, code, mid, token, opts, payload=b""):
    b = bytearray([0x40 | typ << 4 | len(token), code]) + struct.pack("!H", mid) + token
    prev = 0
    for num, val in sorted(opts, key=lambda o: o[0]):
        b += opt(num, prev, val)
        prev = num
    if payload:
        b += b"\xff" + payload
    return bytes(b)

def options(d):  # option numbers of a message
    i, num, out = 4 + (d[0] & 15), 0, []
    while i < len(d) and d[i] != 0xff:
        delta, ln = d[i] >> 4, d[i] & 15
        i += 1
        if delta == 13: delta, i = d[i] + 13, i + 1
        elif delta == 14: delta, i = struct.unpack("!H", d[i:i + 2])[0] + 269, i + 2
        if ln == 13: ln, i = d[i] + 13, i + 1
        elif ln == 14: ln, i = struct.unpack("!H", d[i:i + 2])[0] + 269, i + 2
        num += delta
        out.append(num)
        i += ln
    return out

def parse(d):
    tkl = d[0] & 15
    code, mid = d[1], struct.unpack("!H", d[2:4])[0]
    return code, mid, d[4:4 + tkl], d

def req(host, path, mid, token, code=1):
    o = []
    if host: o.append((3, host.encode()))
    for seg in path.split("/"): o.append((11, seg.encode()))
    return msg(0, code, mid, token, o, b"x" if code == 2 else b"")

def cls(c): return "%d.%02d" % (c >> 5, c & 31)

port = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
dst = ("127.0.0.1", port)

def collect(secs, want=None):
    got = []
    s.settimeout(0.1)
    end = time.time() + secs
    while time.time() < end and (want is None or len(got) < want):
        try:
            got.append(parse(s.recv(2048)))
        except socket.timeout:
            pass
    return got

if sys.argv[1] == "flood":  # N CON GETs of dev1/slow at once; report the codes
    n = int(sys.argv[3])
    for i in range(n):
        s.sendto(req("dev1", "slow", 1000 + i, struct.pack("!H", i)), dst)
    codes, seen = {}, set()
    max_age = None
    for code, mid, tok, raw in collect(float(sys.argv[4])):
        if code == 0 or tok in seen:
            continue  # an empty ACK, or a separate response sent again (we never ACK)
        seen.add(tok)
        codes[cls(code)] = codes.get(cls(code), 0) + 1
        if code == 0x9d and max_age is None:
            max_age = 14 in options(raw)  # Max-Age
    print(" ".join("%s=%d" % kv for kv in sorted(codes.items())), "max_age=%s" % max_age)
elif sys.argv[1] == "dedup":  # B's POST, A's flood of fresh MIDs, B's retransmission
    b = s
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    post = req("dev2", "echo", 4242, b"bp", code=2)
    b.sendto(post, dst)
    first = [r for r in collect(5) if r[0] != 0]
    print("first", cls(first[0][0]) if first else "none", flush=True)
    sys.stdin.readline()  # the shell reads /stats in between
    n = int(sys.argv[3])
    a.settimeout(0.5)
    for i in range(0, n, 50):  # in steps the socket buffers hold
        for k in range(i, min(n, i + 50)):
            a.sendto(req(None, "node", k, b"a"), dst)
        for k in range(i, min(n, i + 50)):
            try: a.recv(2048)
            except socket.timeout: break
    b.sendto(post, dst)
    again = [r for r in collect(3) if r[0] != 0]
    print("again", cls(again[0][0]) if again else "none", flush=True)
PY

# --- pending requests per client -------------------------------------------
python3 "$T/coap.py" flood "$PLAIN_PORT" 60 4 >"$T/flood.out" 2>&1 &
FLOOD=$!
PIDS+=("$FLOOD")
wait_until() { # wait_until SECONDS CMD...: polls CMD every 0.1 s
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.1
    done
}
# The flood is in once tetherd has taken 8 requests (their /slow answers
# take a second): the other client asks right then.
relayed0=$(stat proxy.requests)
wait_until 10 bash -c '[ "$(curl -s -H "Authorization: Bearer t0ken" "$1/stats" |
    jq -r .proxy.requests)" -ge $(($2 + 8)) ]' _ "$ADMIN" "$relayed0"
out=$(timeout 20 coap-client-openssl -B 10 -u app1 -k app1-secret -m get -O 3,dev2 \
    "coaps://127.0.0.1:$n1_PORT/temp" 2>&1)
note "app1 GET dev2/temp while the flood is pending: $out"
check "another client is still served (2.05 with a temperature) during the flood" \
    grep -qxE -- '-?[0-9]+\.[0-9]' <<<"$out" # one decimal: a temperature, not a 5.03
wait "$FLOOD"
note "flooding client's answers: $(cat "$T/flood.out")"
check "the flooding client gets 4.29 beyond its 8 pending requests" \
    grep -qE '(^| )4\.29=(5[0-9]|4[0-9])( |$)' "$T/flood.out"
check "4.29 carries Max-Age (RFC 8516)" grep -q 'max_age=True' "$T/flood.out"
check "its 8 admitted requests are answered by the device (2.05)" \
    grep -qE '(^| )2\.05=8( |$)' "$T/flood.out"
check "no 5.03: the node-wide table (40) never filled" bash -c '! grep -q "5\.03" "$1"' _ \
    "$T/flood.out"
check "proxy.bound_pending counts the 52 refusals" test "$(stat proxy.bound_pending)" = 52

# --- dedup quota per peer ---------------------------------------------------
coproc DEDUP { python3 "$T/coap.py" dedup "$PLAIN_PORT" 1000 2>&1; }
read -r -t 10 line <&"${DEDUP[0]}"
check "peer B's POST is relayed and answered (2.04)" test "$line" = "first 2.04"
relayed=$(stat proxy.requests)
dups=$(stat coap.duplicates)
echo go >&"${DEDUP[1]}"
read -r -t 30 line <&"${DEDUP[0]}"
check "B's retransmission after A's 1000 fresh MIDs gets the same answer" \
    test "$line" = "again 2.04"
check "... from the dedup table: the POST is not relayed a second time" \
    test "$(stat proxy.requests)" = "$relayed"
check "coap.duplicates counts B's retransmission" test "$(stat coap.duplicates)" -ge $((dups + 1))
check "proxy.bound_dedup counts A's entries given up at its quota" \
    test "$(stat proxy.bound_dedup)" -ge 900
note "dedup: proxy.bound_dedup=$(stat proxy.bound_dedup) coap.duplicates=$(stat coap.duplicates)"
finish
