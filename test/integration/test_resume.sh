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
        --mode resumed --concurrency 4 --duration 1 --cipher PSK-AES128-CCM-8 --json "$@" 2>"$T/bench.err"
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

# Another node of the cluster (same cluster_key) resumes n1's tickets; a
# node of another cluster refuses them (each client then gets a full
# handshake there, and resumes that node's own ticket after).
cp "$T/tether.json" "$T/n2.json"
sed 's/resume-test-cluster-key/another-cluster-key-000/' "$T/tether.json" >"$T/n3.json"
start_tetherd n2 --config "$T/n2.json" --node-id 2 || { not_ok "node 2 starts"; exit 1; }
start_tetherd n3 --config "$T/n3.json" --node-id 3 || { not_ok "node 3 starts"; exit 1; }
stat_of() { curl -s -H 'Authorization: Bearer t0k' "http://127.0.0.1:$(admin_port "$1")/stats" | jq -r ".$2"; }
full1=$(stat sessions.handshakes_full)
J=$(resume --resume-server "127.0.0.1:$n2_PORT")
note "n1 -> n2: $(jq -c '{status, handshakes, resumption}' <<<"$J" 2>/dev/null)"
check "node 2 resumes node 1's tickets ($(stat_of n2 sessions.handshakes_resumed) resumed, none full)" \
    test "$(stat_of n2 sessions.handshakes_resumed)" -gt 10 -a "$(stat_of n2 sessions.handshakes_full)" = 0
check "the full handshakes were node 1's (4 more)" test "$(stat sessions.handshakes_full)" = $((full1 + 4))
J=$(resume --resume-server "127.0.0.1:$n3_PORT")
note "n1 -> n3: $(jq -c '{status, handshakes, resumption}' <<<"$J" 2>/dev/null)"
check "node 3 (another cluster_key) refuses them: 4 refused, 4 full handshakes" \
    test "$(stat_of n3 sessions.tickets_refused)" = 4 -a "$(stat_of n3 sessions.handshakes_full)" = 4
check "which gave each client a ticket of node 3's own, resumed from then on" \
    test "$(stat_of n3 sessions.handshakes_resumed)" -gt 10

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
