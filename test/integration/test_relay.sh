#!/usr/bin/env bash
# Device tunnels and the relaying proxy (issue 4, SPEC S3/S4): simulated
# devices (tether-bench devices) register over DTLS; Debian's libcoap
# clients reach them through tether by Uri-Host and Proxy-Uri.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
   "allow": [{"devices": "dev*", "methods": ["GET", "PUT", "POST", "DELETE"]}]},
  {"identity": "app2", "key_hex": "$(hex app2-secret)", "role": "client",
   "allow": [{"devices": "dev9*", "methods": ["GET"]}]},
  {"identity": "rogue", "key_hex": "$(hex rogue-secret)", "role": "device"}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken",
 "proxy": {"request_timeout_ms": 3000, "queue_ttl_ms": 30000, "queue_awake_ms": 300}}
JSON

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
COAPS=coaps://127.0.0.1:$n1_PORT
app1() { timeout 30 coap-client-openssl -B 20 -u app1 -k app1-secret "$@" 2>&1; }

# start_devices NAME ARGS...: a tether-bench devices process, logging to $T/NAME.log
start_devices() {
    local name=$1
    shift
    "$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" "$@" \
        >"$T/$name.log" 2>&1 &
    PIDS+=("$!")
    printf -v "${name}_PID" %s "$!"
}

start_devices fleet --count 100 --rebind-every 3 --stats-every 1
if wait_log "$T/fleet.log" 'registered 100/100' 60; then
    ok "100 simulated devices register over DTLS (RD)"
else
    not_ok "100 simulated devices register over DTLS (RD)"
    tail -5 "$T/fleet.log" | sed 's/^/#   /'
fi
check "devices.registered is 100" test "$(stat devices.registered)" = 100

out=$(app1 -m get -O 3,dev42 "$COAPS/temp")
note "GET dev42/temp: $out"
check "coap-client-openssl (PSK app) GETs /temp of dev42 via Uri-Host" grep -qE '^-?[0-9]+\.[0-9]' <<<"$out"

out=$(app1 -m post -O 3,dev42 -e 'hello tether' "$COAPS/echo")
check "POST is relayed and the device's payload comes back" grep -qF 'hello tether' <<<"$out"
out=$(app1 -m put -O 3,dev42 -e '1' "$COAPS/temp")
check "PUT is relayed (the device answers 4.05 itself)" grep -qF '4.05' <<<"$out"
out=$(app1 -m delete -O 3,dev42 "$COAPS/temp")
check "DELETE is relayed (the device answers 4.05 itself)" grep -qF '4.05' <<<"$out"

app1 -m get -O 3,dev7 "$COAPS/big" >"$T/big.out"
expected=$(awk 'BEGIN { for (i = 0; i < 4096; i++) printf "%c", 97 + i % 26 }')
check "/big (4096 bytes, block-wise) arrives complete" test "$(cat "$T/big.out")" = "$expected"

out=$(timeout 20 coap-client-notls -B 10 -m get -P "coap://127.0.0.1:$PLAIN_PORT" coap://dev3/temp 2>&1)
check "forward-proxy style: Proxy-Uri coap://dev3/temp (loopback plain client)" grep -qE '^-?[0-9]+\.[0-9]' <<<"$out"
out=$(timeout 20 coap-client-gnutls -B 10 -u app1 -k app1-secret -m get -O 3,dev9 "$COAPS/slow" 2>&1)
check "separate response from the device (/slow) reaches a GnuTLS client" grep -qF slow <<<"$out"

out=$(app1 -m get -O 3,dev-never-seen "$COAPS/temp")
check "never-registered device: 4.04" grep -qF '4.04' <<<"$out"
out=$(timeout 30 coap-client-openssl -B 10 -u app2 -k app2-secret -m get -O 3,dev42 "$COAPS/temp" 2>&1)
check "client outside its allow-list: 4.03" grep -qF '4.03' <<<"$out"
out=$(timeout 30 coap-client-openssl -B 10 -u app2 -k app2-secret -m get -O 3,dev90 "$COAPS/temp" 2>&1)
check "the same client inside its allow-list is relayed" grep -qE '^-?[0-9]+\.[0-9]' <<<"$out"
out=$(timeout 30 coap-client-openssl -B 10 -u rogue -k rogue-secret -m post "$COAPS/rd?ep=dev1&lt=60" 2>&1)
check "registration with an ep that differs from the DTLS identity: 4.03" grep -qF '4.03' <<<"$out"

# Devices rebind their source port every 3 s (CID): still reachable, no new handshakes.
wait_log "$T/fleet.log" 'stats .* rebinds=[1-9][0-9]{2,}' 30 || true
ok_all=1
for i in 1 2 3 4 5; do
    out=$(app1 -m get -O 3,dev$((i * 11)) "$COAPS/temp")
    grep -qE '^-?[0-9]+\.[0-9]' <<<"$out" || ok_all=0
done
check "rebinding devices stay reachable" test $ok_all = 1
check "address changes were followed (sessions.address_changes >= 100)" test "$(stat sessions.address_changes)" -ge 100
# The simulator's own count: every device handshook once, however often it moved.
last=$(grep 'devices: stats' "$T/fleet.log" | tail -1)
note "$last"
check "rebinding devices made no new handshakes (handshakes=100, rebinds >= 100)" \
    bash -c '[[ $1 =~ \ handshakes=100\  ]] && [[ $1 =~ rebinds=[1-9][0-9]{2,} ]]' _ "$last"

# A simulator that dies without a goodbye: its session lingers, requests time out.
start_devices lone --count 1 --first 500
wait_log "$T/lone.log" 'registered 1/1' 30 || not_ok "dev500 registers"
kill -KILL "$lone_PID"
wait "$lone_PID" 2>/dev/null
t0=$(date +%s%N)
out=$(app1 -m get -O 3,dev500 "$COAPS/temp")
ms=$((($(date +%s%N) - t0) / 1000000))
note "stopped device answered after ${ms} ms: $out"
check "stopped device: 5.04" grep -qF '5.04' <<<"$out"
check "5.04 within the configured 3 s timeout (+ slack)" test "$ms" -lt 6000

# Queue mode: a sleepy device (b=UQ) gets the request when it wakes.
# The request goes out while the device sleeps (a stats line, printed every
# second, shows the first sleep begun: at least 3 s of it remain), so
# tether must hold it: queue.pending is 1 while the client waits, and the
# answer arrives once the device wakes.
start_devices sleepy --count 1 --first 600 --sleepy 4:2 --stats-every 1
check "dev600 registers in queue mode" wait_log "$T/sleepy.log" 'registered 1/1' 30
check "dev600 falls asleep" wait_stats "$T/sleepy.log" 'sleeps == 1' 20
queued0=$(stat queue.queued_total)
app1 -m get -O 3,dev600 "$COAPS/temp" >"$T/sleepy.out" &
client=$!
pending=0
for _ in $(seq 30); do
    [ "$(stat queue.pending)" = 1 ] && pending=1 && break
    sleep 0.1
done
check "while dev600 sleeps, the request waits in its queue (queue.pending 1)" test $pending = 1
wait "$client"
out=$(cat "$T/sleepy.out")
note "sleepy device: $out"
check "request queued for a sleeping device is delivered when it wakes" grep -qE '^-?[0-9]+\.[0-9]' <<<"$out"
check "exactly one request was queued (queue.queued_total +1)" \
    test "$(stat queue.queued_total)" = $((queued0 + 1))
check "queue.pending back to 0" test "$(stat queue.pending)" = 0

finish
