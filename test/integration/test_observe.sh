#!/usr/bin/env bash
# Observe through the proxy (SPEC S4 "Observe", RFC 7641): real tetherd,
# simulated devices (tether-bench devices: /temp is observable and changes
# every second) and Debian's libcoap clients observing with -s. Many
# observers share one device-side observation; notifications keep flowing
# across a device re-handshake.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
   "allow": [{"devices": "dev*", "methods": ["GET"]}]}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken",
 "proxy": {"max_observers": 1000, "max_observers_per_resource": 100}}
JSON

# Config: the observer bounds are known keys with ranges.
cfg() { printf '{"credentials_file": "%s", "proxy": {"max_observers_per_resource": %s}}' "$T/creds.json" "$1" >"$T/c.json"
    "$TETHERD" --config "$T/c.json" --check-config 2>&1; }
check "proxy.max_observers_per_resource 5 is accepted" cfg 5
out=$(cfg 0)
check "proxy.max_observers_per_resource 0 is refused, naming the key" grep -q 'max_observers_per_resource' <<<"$out"

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
COAPS=coaps://127.0.0.1:$n1_PORT
PLAIN=coap://127.0.0.1:$PLAIN_PORT
# wait_stat PATH VALUE [SECONDS]: until /stats PATH equals VALUE.
wait_stat() {
    local i
    for ((i = 0; i < ${3:-10} * 10; i++)); do
        [ "$(stat "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    note "$1 is $(stat "$1"), wanted $2"
    return 1
}
# lines FILE: notifications received so far (coap-client prints each
# payload, a temperature like 21.5, without a separator)
temps() { grep -oE '[0-9]+\.[0-9]' "$1" 2>/dev/null; }
lines() { temps "$1" | wc -l; }
# wait_lines FILE N [SECONDS]: until FILE holds N notifications.
wait_lines() {
    local i
    for ((i = 0; i < ${3:-15} * 10; i++)); do
        [ "$(lines "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    note "$1 holds $(lines "$1") notifications, wanted $2"
    return 1
}
start_fleet() {
    "$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
        --count 6 --stats-every 0 >>"$T/fleet.log" 2>&1 &
    FLEET=$!
    PIDS+=("$FLEET")
}

start_fleet
if wait_log "$T/fleet.log" 'registered 6/6' 60; then ok "6 simulated devices register"; else
    not_ok "6 simulated devices register"
    tail -5 "$T/fleet.log" | sed 's/^/#   /'
fi
check "/stats starts with no observations" \
    test "$(stat observe.device_observations)/$(stat observe.observers)" = 0/0

# --- two clients observe dev5/temp: a DTLS client (PSK) and a plain one.
timeout 60 coap-client-openssl -B 50 -s 40 -u app1 -k app1-secret -m get -O 3,dev5 \
    "$COAPS/temp" >"$T/a.out" 2>&1 &
A=$!
PIDS+=("$A")
timeout 60 coap-client-notls -B 50 -s 8 -m get -O 3,dev5 "$PLAIN/temp" >"$T/b.out" 2>&1 &
B=$!
PIDS+=("$B")
check "client A receives 4 notifications" wait_lines "$T/a.out" 4
check "client B receives 4 notifications" wait_lines "$T/b.out" 4
check "/stats: observe.device_observations 1, observe.observers 2" \
    test "$(stat observe.device_observations)/$(stat observe.observers)" = 1/2
check "the values change (a new temperature every second)" \
    test "$(temps "$T/a.out" | sort -u | wc -l)" -ge 2
check "observe.notifications_sent counts both clients' notifications" \
    test "$(stat observe.notifications_sent)" -ge 8
h0=$(stat proxy.cache_hits)
v=$(timeout 20 coap-client-notls -B 10 -m get -O 3,dev5 "$PLAIN/temp" 2>&1)
check "a plain GET of dev5/temp meanwhile is a cache hit (notifications keep it fresh)" \
    test "$(stat proxy.cache_hits)" = $((h0 + 1))
note "GET dev5/temp: $v"

# --- B's -s runs out: it deregisters, A keeps receiving.
wait "$B"
check "after client B ends, observe.observers is 1" wait_stat observe.observers 1
check "... and the device-side observation stays (device_observations 1)" \
    test "$(stat observe.device_observations)" = 1
n=$(lines "$T/a.out")
check "client A keeps receiving notifications" wait_lines "$T/a.out" $((n + 2))

# --- the devices are killed (SIGKILL: no goodbye) and come back with the
# same identities on new DTLS sessions: tether registers the observation
# again by itself and A keeps receiving without doing anything.
kill -9 "$FLEET"
{ wait "$FLEET"; } 2>/dev/null
: >"$T/fleet.log"
start_fleet
if wait_log "$T/fleet.log" 'registered 6/6' 60; then ok "the devices come back on new sessions"; else
    not_ok "the devices come back on new sessions"
fi
n=$(lines "$T/a.out")
check "client A receives notifications from the new session" wait_lines "$T/a.out" $((n + 3))
check "still one device-side observation, one observer" \
    test "$(stat observe.device_observations)/$(stat observe.observers)" = 1/1

# --- A ends (it deregisters or its DTLS session closes): nothing is left.
kill "$A" 2>/dev/null
{ wait "$A"; } 2>/dev/null
note "A got $(lines "$T/a.out") notifications"
check "after both clients end, observe.device_observations is 0" \
    wait_stat observe.device_observations 0 100
check "observe.observers is 0" test "$(stat observe.observers)" = 0
finish
