#!/usr/bin/env bash
# tether-test: serial (measures against what the machine can do; runs alone)
# Handshake flood while tunnels work (security issue 11, SPEC S10): 200
# simulated devices hold DTLS tunnels and a client drives requests through
# them (tether-bench load, dev[0-63]/count, never cached); then flood.py
# sends spoofed ClientHellos (forged sources: stateless work) and
# cookie-valid ones (from the attacking host's own address: a handshake
# held each) as fast as it goes, while the same load runs again.
# Asserted: the tunnels, relaying at a steady 4,000 requests/s, keep >= 80%
# of that rate, and tetherd's RSS stays within 10% of its pre-flood value;
# the node's closed-loop capacity before and during is printed.
# The machine may have only 2 cores shared with other work: the flooder
# runs at nice 19, so the cores are shared fairly rather than the flood
# taking one of them whole; what it reaches is printed with the figures.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
APP_KEY=$(hex app1-secret)
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$APP_KEY", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET"]}]}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
# DTLS at its defaults: max_handshakes 1024, 8 in flight per source (the
# devices, all on 127.0.0.1, open 8 at a time).
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json", "admin_token": "t0ken"}
JSON
start_tetherd n1 --config "$T/tether.json" || {
    not_ok "tetherd starts"
    exit 1
}
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$n1_PID/status"; }

N=200
"$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
    --count $N --max-handshakes 8 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
if ! wait_log "$T/devices.log" "registered $N/$N" 45; then
    not_ok "$N simulated devices register"
    tail -3 "$T/devices.log" | sed 's/^/#   /'
    exit 1
fi
ok "$N simulated devices hold tunnels (${SECONDS}s)"

load() { # load OUT [--rate R]: 1 + 4 s of requests through the tunnels; prints req/s
    local out=$1
    shift
    "$BENCH" load --server "127.0.0.1:$n1_PORT" --identity app1 --psk-hex "$APP_KEY" \
        --target 'dev[0-63]/count' --concurrency 4 --warmup 1 --duration 4 --json "$@" \
        >"$out" 2>"$out.err"
    jq -r '.throughput_rps' "$out"
}
# The tunnels relay at a steady offered rate (open loop, well within what
# the node does); what the node could do at most (closed loop) is noted,
# not asserted: on shared cores it swings with other work.
RATE=4000
cap0=$(load "$T/cap0.json")
base=$(load "$T/base.json" --rate $RATE)
rss0=$(rss)
note "baseline: $base req/s offered $RATE (capacity $cap0 req/s), tetherd RSS $rss0 kB"
check "the baseline load is relayed at its offered rate (>= 95%)" \
    awk -v r="$base" -v o=$RATE 'BEGIN { exit !(r >= 0.95 * o) }'

nice -n 19 python3 "$TOP/test/integration/flood.py" 127.0.0.1 "$n1_PORT" 12 1 64 \
    >"$T/flood.out" 2>&1 &
FLOOD=$!
PIDS+=("$FLOOD")
( while kill -0 "$FLOOD" 2>/dev/null; do rss; sleep 0.2; done ) >"$T/rss.samples" &
SAMPLER=$!
hv0=$(stat sessions.hello_verify_sent)
during=$(load "$T/during.json" --rate $RATE)
cap1=$(load "$T/cap1.json")
wait "$FLOOD"
wait "$SAMPLER"
peak=$(sort -n "$T/rss.samples" | tail -1)
peak=${peak:-$(rss)}
note "during the flood: $during req/s offered $RATE (capacity $cap1 req/s), tetherd RSS peak" \
    "$peak kB (pre-flood $rss0 kB)"
note "flood: $(cat "$T/flood.out"), hello_verify_sent +$(($(stat sessions.hello_verify_sent) - hv0))," \
    "hellos_over_budget $(stat sessions.hellos_over_budget), dropped_limit $(stat sessions.dropped_limit)," \
    "dropped_rate $(stat sessions.dropped_rate), handshakes_inflight $(stat sessions.handshakes_inflight)," \
    "evicted $(stat sessions.handshakes_evicted), stalled $(stat sessions.handshakes_stalled)"
check "the flood ran (thousands of hellos answered with a cookie)" \
    test "$(($(stat sessions.hello_verify_sent) - hv0))" -ge 5000
check "the tunnels keep >= 80% of their baseline request rate ($during vs $base req/s)" \
    awk -v a="$during" -v b="$base" 'BEGIN { exit !(a >= 0.8 * b) }'
check "tetherd's RSS stays within 10% of its pre-flood value ($peak vs $rss0 kB)" \
    test $((peak * 10)) -le $((rss0 * 11))
check "the devices' tunnels survived (no session lost)" \
    bash -c '! grep -qE "sessions_lost=[1-9]" <(tail -1 "$1")' _ "$T/devices.log"
finish
