#!/usr/bin/env bash
# tether-test: serial (measures against what the machine can do; runs alone)
# tether-bench smoke test: the command line (help, subcommands, clear usage
# errors) and the parts that work against today's tetherd without the proxy:
# simulated devices complete DTLS PSK handshakes with derived keys and a
# server CID (1.2 and 1.3), stop cleanly on SIGTERM, and the load generator
# reports what it measured; and `suite --quick --json` (the S9 table, short).
. "$(dirname "$0")/lib.sh"

BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
APP_KEY=6170702d7365637265742d6b6579 # "app-secret-key"

# expect_usage DESC PATTERN ARGS...: exit status 2 and PATTERN on stderr.
expect_usage() {
    local desc=$1 pat=$2
    shift 2
    local err rc
    err=$("$BENCH" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq 2 ] && grep -qE -- "$pat" <<<"$err"; then
        ok "$desc"
    else
        not_ok "$desc (exit $rc)"
        note "$err"
    fi
}

out=$("$BENCH" --help)
check "--help exits 0 and lists the devices and load commands" \
    bash -c 'grep -qE "^  devices " <<<"$1" && grep -qE "^  load " <<<"$1"' _ "$out"
expect_usage "no command: usage, exit 2" 'usage: tether-bench COMMAND'
expect_usage "unknown command is named" "unknown command 'frobnicate'" frobnicate
expect_usage "devices without --server" '--server HOST:PORT is required' devices --count 3 \
    --psk-master $MASTER
expect_usage "devices with a bad --count" "--count wants a number >= 1, got 'many'" devices \
    --server 127.0.0.1:5684 --count many --psk-master $MASTER
expect_usage "devices with a bad --server" "--server wants HOST:PORT" devices --server nohost \
    --count 3 --psk-master $MASTER
expect_usage "devices with a bad --sleepy" "--sleepy wants SLEEP:AWAKE" devices \
    --server 127.0.0.1:5684 --count 3 --psk-master $MASTER --sleepy 10
expect_usage "load with a non-hex key" "--psk-hex wants" load --server 127.0.0.1:5684 \
    --identity app1 --psk-hex xyz --target dev0/temp
expect_usage "load without --target" "--target DEVICE/PATH is required" load \
    --server 127.0.0.1:5684 --identity app1 --psk-hex $APP_KEY
expect_usage "load with an unknown option" "unknown or incomplete option '--bogus'" load --bogus
expect_usage "fanout-ceiling with fewer observers than devices" \
    "--observers must be at least --devices" fanout-ceiling --devices 4 --observers 2
out=$(timeout 30 "$BENCH" fanout-ceiling --observers 40 --duration 1 --warmup 0.2 --json \
    2>"$T/fanout.log")
note "fanout-ceiling: $out"
check "fanout-ceiling --json: every observer received the fan-out, the server's CPU measured" \
    jq -e '.received > 0 and .datagrams_per_s > 0 and .relay_cpu > 0 and .lost == 0' <<<"$out"
out=$("$BENCH" load --help)
check "load --help documents --rate and --json" \
    bash -c 'grep -q -- "--rate R" <<<"$1" && grep -q -- "--json" <<<"$1"' _ "$out"

cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$APP_KEY", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET", "POST"]}]}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
# Every simulated device and client comes from 127.0.0.1: one source for
# the per-source handshake cap.
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "dtls": {"max_handshakes_per_source": 0}}
JSON
start_tetherd n1 --config "$T/tether.json" || {
    not_ok "tetherd starts with a DTLS listener"
    exit 1
}
SERVER=127.0.0.1:$n1_PORT

# run_devices NAME ARGS...: starts the simulator in the background.
run_devices() {
    local name=$1
    shift
    "$BENCH" devices --server "$SERVER" --psk-master $MASTER --stats-every 1 "$@" \
        2>"$T/$name.log" &
    printf -v "${name}_PID" %s $!
    PIDS+=($!)
}

run_devices d12 --count 40 --identity-prefix dev --first 100
check "40 devices complete DTLS 1.2 PSK handshakes (derived keys, server CID)" \
    wait_log "$T/d12.log" '^devices: connected 40/40$' 30
check "the devices try to register (POST /rd)" wait_log "$T/d12.log" 'registration' 15
kill -TERM "$d12_PID"
timeout 10 bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.1; done' _ "$d12_PID"
wait "$d12_PID"
rc=$?
check "SIGTERM: devices stop cleanly (exit 0)" test "$rc" -eq 0
check "SIGTERM: final stats and 'stopped' are printed" \
    bash -c 'grep -q "^devices: final connected=40 " "$1" && grep -q "^devices: stopped$" "$1"' \
    _ "$T/d12.log"

run_devices d13 --count 10 --dtls13 --duration 2
check "10 devices complete DTLS 1.3 PSK handshakes" wait_log "$T/d13.log" \
    '^devices: connected 10/10$' 30
wait "$d13_PID"
check "--duration ends the run with exit 0" test $? -eq 0

# NAT rebinding: new source port every second, same session (RFC 9146);
# the ping sent from each new port is answered there.
run_devices rb --count 10 --rebind-every 1 --duration 4
# Every ping must be answered: a line with as many pongs as pings, after
# some rebinds (a ping in flight is answered within milliseconds).
check "rebinding devices keep their sessions and tether answers every ping at the new port" \
    wait_stats "$T/rb.log" 'handshakes == 10 && pings >= 5 && pongs == pings' 10
wait "$rb_PID"
note "$(grep -m1 '^devices: final' "$T/rb.log")"

run_devices ld --count 1 --identity-prefix dev --duration 10
wait_log "$T/ld.log" '^devices: registered 1/1$' 15 || note "dev0 did not register"
out=$(timeout 30 "$BENCH" load --server "$SERVER" --identity app1 --psk-hex $APP_KEY \
    --target dev0/temp --concurrency 2 --duration 1 --json 2>"$T/load.log")
note "load: $out"
check "load --json: one JSON report with requests sent and answered" \
    bash -c 'grep -qE "^\{.*\"sent\":[1-9][0-9]*,\"responses\":[1-9]" <<<"$1" &&
             grep -q "\"latency_us\":{\"p50\":" <<<"$1"' _ "$out"
out=$(timeout 30 "$BENCH" load --server "$SERVER" --identity app1 --psk-hex 00ff \
    --target dev0/temp --duration 1 --connect-timeout 3 2>&1)
rc=$?
check "load with a wrong key fails clearly (exit 1, no session connected)" \
    bash -c '[ "$1" -eq 1 ] && grep -q "no session connected" <<<"$2"' _ "$rc" "$out"
check "tetherd still alive" kill -0 "$n1_PID"

# The S9 suite itself, short (make bench runs it at length): one JSON object
# whose rows for features tether has carry a measured figure, beside the
# libcoap peer where the peer can run that workload.
timeout 300 "$BENCH" suite --quick --json --json-out "$T/suite.json" >"$T/suite.out" \
    2>"$T/suite.log"
rc=$?
check "suite --quick --json exits 0 with one JSON object" \
    bash -c '[ "$1" -eq 0 ] && jq -e .rows "$2" >/dev/null' _ "$rc" "$T/suite.json"
for row in relay_cache_miss psk_handshakes ecdhe_handshakes; do
    check "suite row $row: tether measured, and the peer" jq -e --arg r "$row" \
        '.rows[] | select(.id == $r) | (.tether > 0 and .peer > 0)' "$T/suite.json"
done
check "suite row latency_p99_50pct: tetherd's per-request time, the end-to-end figures beside it" \
    jq -e '.rows[] | select(.id == "latency_p99_50pct") |
           (.tether > 0 and .detail.end_to_end_p99_us > 0 and (.note | test("both crossings")))' \
    "$T/suite.json"
check "suite: end-to-end latency histograms of tether and the raw relay, counts in microsecond buckets" \
    jq -e '.latency_hist.tether and .latency_hist["raw UDP relay"] and
           ([.latency_hist.tether[][2]] | add > 0) and
           all(.latency_hist.tether[]; .[0] <= .[1])' "$T/suite.json"
"$TOP/bench/chart.sh" "$T/suite.json" "$T/suite.svg" test >"$T/chart.out" 2>&1
check "bench/chart.sh draws the table and the latency distributions as SVG" \
    bash -c 'grep -q "<svg" "$1" && grep -q "relayed request, cache miss" "$1" &&
             grep -q "raw UDP relay" "$1"' _ "$T/suite.svg"
check "suite row cache_hit: tether measured, and the raw ceiling" jq -e \
    '.rows[] | select(.id == "cache_hit") | (.tether > 0 and .ceiling > 0)' "$T/suite.json"
check "suite row observe_fanout: notifications delivered to observers, the raw fan-out ceiling beside them" \
    jq -e '.rows[] | select(.id == "observe_fanout") |
           (.tether > 0 and .ceiling > 0 and .server_cpu.ceiling > 0 and .ratio_ceiling > 0)' \
    "$T/suite.json"
# Forwarding must really happen: requests answered with every record
# entering at node 2, and messages on the internal channel to show for it.
check "suite row cross_node: forwarded requests answered, over the internal channel" jq -e \
    '.rows[] | select(.id == "cross_node") | .tether != null and .tether < 100 and
     .detail.forwarded_rps > 0 and .detail.channel_messages > 0 and
     .detail.cpu_us_per_message != null' "$T/suite.json"
check "suite row workers_relay: relayed requests through 1 and through 2 workers" jq -e \
    '.rows[] | select(.id == "workers_relay") | .tether > 0 and .ceiling > 0 and
     .detail.two_workers_rps > 0 and .detail.one_worker_rps > 0' "$T/suite.json"
check "suite idle rows: bytes per idle tunnel measured, unregistered and registered" jq -e \
    '[.rows[] | select(.id | startswith("idle")) | select(.id | test("_1m") | not) | .tether > 0] |
     length == 4 and all' "$T/suite.json"
check "suite idle rows: the million is left out of --quick, and says so" jq -e \
    '[.rows[] | select(.id | startswith("idle_tunnel_1m")) | .tether == null and
      (.note | test("--quick"))] | length == 2 and all' "$T/suite.json"
check "suite verdicts: a row without its figure or a needed reference is never met" jq -e \
    '[.rows[] | select(.verdict == "yes" and (.tether == null or
        ((.target | test("ceiling")) and .ratio_ceiling == null) or
        ((.target | test("libcoap")) and .ratio_peer == null)))] | length == 0' \
    "$T/suite.json"
note "$(jq -c '[.rows[] | {id, tether, ceiling, peer}]' "$T/suite.json" 2>/dev/null)"

finish
