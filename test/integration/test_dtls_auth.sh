#!/usr/bin/env bash
# SPEC S2: authentication belongs to one handshake. The security review's
# bypass, replayed against a real tetherd from a raw UDP socket: a captured
# cookieless DTLS 1.3 ClientHello that offers the PSK identity dev1 (with a
# binder nobody can check: data/dtls13-psk-hello-dev1.bin, written by
# test_dtls_handshake's poison_listener), sent once and abandoned; then a
# client of an independent stack (libcoap over OpenSSL) with neither a PSK
# nor a certificate tries to register as dev1. tetherd has a certificate but no
# client CA, so no certificate handshake can name anyone: it must be
# refused and counted, and the real dev1 must still get in.
. "$(dirname "$0")/lib.sh"

"$TOP/test/certs/gen.sh" "$T/pki" || { not_ok "test PKI generated"; exit 1; }
P=$T/pki
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "dev1", "key_hex": "$(hex dev1-secret-key)", "role": "device"}],
 "psk_derived": [{"identity_prefix": "fleet", "role": "device", "master_hex": "00112233"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json", "admin_token": "t0k",
 "dtls": {"cert_file": "$P/server.pem", "key_file": "$P/server.key"}}
JSON
start_tetherd n1 --config "$T/tether.json" --log-level debug || { not_ok "tetherd starts"; exit 1; }
ADMIN=http://127.0.0.1:$(admin_port n1)
URI=coaps://127.0.0.1:$n1_PORT
stat() { curl -s -H 'Authorization: Bearer t0k' "$ADMIN/stats" | jq -r ".$1"; }

# The replay: one datagram from a raw socket; the listener answers with a
# HelloRetryRequest: a handshake record (DTLS 1.2 record version on the
# wire) holding a ServerHello (type 2), not a DTLS 1.2 HelloVerifyRequest (3).
reply=$(python3 - "$n1_PORT" "$TOP/test/integration/data/dtls13-psk-hello-dev1.bin" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(open(sys.argv[2], 'rb').read(), ('127.0.0.1', int(sys.argv[1])))
try:
    d, _ = s.recvfrom(4096)
    print('%02x%02x%02x %02x %d' % (d[0], d[1], d[2], d[13], len(d)))
except socket.timeout:
    print('none')
PY
)
note "reply to the captured hello: $reply"
check "the captured hello reached the stateless listener (a HelloRetryRequest came back)" \
    grep -qE '^16fefd 02 [0-9]+$' <<<"$reply"
check "and allocated nothing" test "$(stat sessions.handshakes_inflight)" = 0

# The attacker: ECDHE-ECDSA with no client certificate, posing as dev1.
out=$(timeout 20 coap-client-openssl -B 4 -m post -e '</temp>;rt="temperature"' \
    "$URI/rd?ep=dev1&lt=300" 2>&1)
note "certificate-less client: $(tr '\n' ' ' <<<"$out" | cut -c1-200)"
check "the certificate-less handshake is refused as unauthenticated (counted once)" \
    test "$(stat sessions.handshakes_unauthenticated)" = 1
check "it did not become a session" test "$(stat sessions.handshakes_full)" = 0
check "nothing registered as dev1" test "$(stat devices.registered)" = 0
check "the refusal is logged as a failed handshake" \
    wait_log "$n1_LOG" '"msg":"handshake failed".*"handshakes_failed":"1"' 5

# The real dev1, after another replay of the hello, registers as itself.
python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(open(sys.argv[1],"rb").read(), ("127.0.0.1", int(sys.argv[2])))' \
    "$TOP/test/integration/data/dtls13-psk-hello-dev1.bin" "$n1_PORT"
out=$(timeout 20 coap-client-openssl -B 5 -u dev1 -k dev1-secret-key -m post \
    -e '</temp>;rt="temperature"' "$URI/rd?ep=dev1&lt=300" 2>&1)
check "dev1 with its PSK registers (2.01 with a Location-Path)" \
    test "$(stat devices.registered)" = 1
check "one full handshake in all" test "$(stat sessions.handshakes_full)" = 1
# Revocation (security review item 9): a fleet device with a lasting
# tunnel; its prefix removed from the credentials file and SIGHUP: its
# established session ends at once, dev1's entry keeps nothing else open.
"$BUILD_DIR/tether-bench" devices --server "127.0.0.1:$n1_PORT" --count 1 \
    --identity-prefix fleet --psk-master 00112233 --stats-every 1 >"$T/fleet.log" 2>&1 &
PIDS+=("$!")
check "fleet0 registers and keeps its tunnel" wait_log "$T/fleet.log" 'registered 1/1' 20
check "its session is established" test "$(stat sessions.active)" = 1
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "dev1", "key_hex": "$(hex dev1-secret-key)", "role": "device"}]}
JSON
kill -HUP "$n1_PID"
check "after SIGHUP without the fleet prefix, its session is revoked" \
    wait_log "$n1_LOG" '"msg":"reloaded".*"sessions_revoked_total":"1"' 5
check "and closed" test "$(stat sessions.active)" = 0
check "process still alive" kill -0 "$n1_PID"

finish
