#!/usr/bin/env bash
# SPEC S2/S9 session resumption against a real tetherd: tether-bench's
# wolfSSL clients (libcoap's tools do not keep a session across runs) do
# one full PSK handshake each, keep the DTLS 1.2 session ticket (RFC 5077)
# tetherd issued, and resume with it over and over, each resumed session
# proved alive by a CoAP ping. /stats counts them as resumed, not full.
# When the fleet key changes (SIGHUP) mid-run, the tickets are refused from
# then on: resumption does not outlive the credential.
. "$(dirname "$0")/lib.sh"

BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
creds() {
    cat >"$T/creds.json" <<JSON
{"psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$1"}]}
JSON
}
creds "$MASTER"
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json", "admin_token": "t0k",
 "cluster_key": "resume-test-cluster-key",
 "dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0}}
JSON
start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0k' "$ADMIN/stats" | jq -r ".$1"; }
jqe_ok() { jq -e "$1" <<<"$J" >/dev/null; }
resume() {
    timeout 20 "$BENCH" handshakes --server "127.0.0.1:$n1_PORT" --psk-master "$MASTER" \
        --mode resumed --concurrency 4 --duration 1 --cipher PSK-AES128-CCM-8 --json 2>"$T/bench.err"
}

J=$(resume)
note "bench: $(jq -c '{status, handshakes, rate_per_s, resumption}' <<<"$J" 2>/dev/null)"
check "the bench's clients resumed (status ok, no full handshake instead)" \
    jqe_ok '.status == "ok" and .handshakes > 10 and .resumption.full_instead == 0'
n=$(jq -r .handshakes <<<"$J")
check "/stats counts them in sessions.handshakes_resumed ($(stat sessions.handshakes_resumed) >= $n)" \
    test "$(stat sessions.handshakes_resumed)" -ge "$n"
check "and only the 4 warm-ups in sessions.handshakes_full" \
    test "$(stat sessions.handshakes_full)" = 4
check "no ticket refused" test "$(stat sessions.tickets_refused)" = 0

# The fleet key rotates while the clients keep resuming: their tickets
# carry the old key's tag, so from the reload on they are refused, and the
# clients (still on the old key) cannot complete full handshakes either.
timeout 20 "$BENCH" handshakes --server "127.0.0.1:$n1_PORT" --psk-master "$MASTER" \
    --mode resumed --concurrency 4 --duration 3 --cipher PSK-AES128-CCM-8 --json \
    >"$T/bench2.json" 2>"$T/bench2.err" &
BPID=$!
PIDS+=("$BPID")
end=$((SECONDS + 10))
start=$(stat sessions.handshakes_resumed)
while [ "$(stat sessions.handshakes_resumed)" -lt $((start + 20)) ] && [ $SECONDS -lt $end ]; do
    sleep 0.1
done
creds ffeeddccbbaa99887766554433221100
kill -HUP "$n1_PID"
check "tetherd reloads the credentials" wait_log "$n1_LOG" '"msg":"reloaded"' 5
at_reload=$(stat sessions.handshakes_resumed)
full=$(stat sessions.handshakes_full)
wait "$BPID"
note "bench during the key change: $(jq -c '{status, handshakes, failed, resumption}' "$T/bench2.json" 2>/dev/null)"
check "resumptions before the reload ($((at_reload - start)))" test "$at_reload" -gt "$start"
check "none after it: the tickets are refused ($(stat sessions.tickets_refused) refused)" \
    test "$(stat sessions.handshakes_resumed)" = "$at_reload" -a "$(stat sessions.tickets_refused)" -gt 0
check "and no full handshake completes with the old key" \
    test "$(stat sessions.handshakes_full)" = "$full"
finish
