#!/usr/bin/env bash
# Return-routability of moved sessions (security issue 11 item 3, SPEC
# S10): simulated devices (tether-bench devices) move to a new source port
# every ~2 s on their DTLS CID sessions (NAT rebinding, RFC 9146). Each move
# gets a CoAP ping with a random MID down the session to the new address;
# the device's RST from there validates it (sessions.rrc_validated), so a
# client observing a device keeps receiving its notifications at full
# rate, beyond the 3x budget of an unvalidated address. (A spoofed move
# target that never answers stays at 3x: test_dtls_records's
# test_move_keeps_others_address_and_limits_output and test_probe.)
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET"]}]}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken"}
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
    --count 4 --rebind-every 2 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
if ! wait_log "$T/devices.log" 'registered 4/4' 30; then
    not_ok "four simulated devices register"
    tail -5 "$T/devices.log" | sed 's/^/#   /'
    exit 1
fi
ok "four simulated devices register (moving every ~2 s)"

timeout 30 coap-client-notls -B 20 -s 14 -m get -O 3,dev2 \
    "coap://127.0.0.1:$PLAIN_PORT/temp" >"$T/obs.out" 2>&1 &
OBS=$!
PIDS+=("$OBS")
temps() { grep -oE '[0-9]+\.[0-9]' "$1" 2>/dev/null | wc -l; }
# poll SECONDS CMD...: until CMD succeeds (every 0.2 s).
poll() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.2
    done
}
check "the devices' sessions move (sessions.address_changes >= 8)" \
    poll 20 bash -c '[ "$(curl -s -H "Authorization: Bearer t0ken" "$1/stats" |
        jq -r .sessions.address_changes)" -ge 8 ]' _ "$ADMIN"
wait "$OBS"
moves=$(stat sessions.address_changes)
probes=$(stat sessions.rrc_probes_sent)
valid=$(stat sessions.rrc_validated)
note "moves=$moves probes=$probes validated=$valid gave_up=$(stat sessions.rrc_gave_up)" \
    "wrong=$(stat sessions.rrc_wrong_answers) tx_unvalidated_dropped=$(stat sessions.tx_unvalidated_dropped)" \
    "notifications=$(temps "$T/obs.out")"
check "every move is probed (sessions.rrc_probes_sent >= moves)" test "$probes" -ge "$moves"
# A move within the probe's round trip restarts it, so allow a few.
check "the moved addresses are validated by the device's RST (>= 80% of moves)" \
    test $((valid * 10)) -ge $((moves * 8))
check "no probe was given up or answered wrongly" \
    test "$(stat sessions.rrc_gave_up)/$(stat sessions.rrc_wrong_answers)" = 0/0
check "notifications of a moving device flow (>= 10 in 14 s, one a second)" \
    test "$(temps "$T/obs.out")" -ge 10
finish
