#!/usr/bin/env bash
# Three tetherd nodes sharing state through a real redis-server (SPEC S5,
# S6, S11), behind the real nginx UDP load balancer of deploy/nginx: each
# node is started with only --node-id, --redis, --cluster-listen and the
# cluster key (plus its listener and admin port); membership comes from
# their leases in Redis, the device credentials from PUT /credentials.
# 200 simulated devices rebind through the balancer; every node lists all
# of them; a credential written on node 1 works on node 3 within 1 s and
# is refused everywhere once deleted; redis-server is SIGKILLed under load
# and restarted: requests to connected devices keep working, registrations
# made meanwhile reach Redis, the backlog drains.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
KEY=cluster-key-of-the-redis-integration-test
TOKEN=t0ken
export TETHER_CLUSTER_KEY=$KEY TETHER_ADMIN_TOKEN=$TOKEN
base=$(port_base 12)
RP=$base LB=$((base + 1)) C1=$((base + 2)) C2=$((base + 3)) C3=$((base + 4))
N=200

start_redis() {
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync always --dir "$T/redis" --logfile "$T/redis.log" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 50); do
        redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1 # redis-server has no readiness notification without systemd
    done
    return 1
}
mkdir -p "$T/redis"
check "redis-server starts" start_redis

redis_nodes_start "$RP" "$C1" "$C2" "$C3" || { exit 1; }
get() { curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "$1$2"; }
stat() { get "$1" /stats | jq -r ".$2"; }
three_alive() {
    [ "$(get "$1" /cluster | jq '[.nodes[] | select(.state == "alive")] | length')" = 3 ]
}
for i in 1 2 3; do
    check "node $i sees 3 nodes alive in GET /cluster (leases in Redis)" poll 100 three_alive "${A[$i]}"
done
check "cluster.nodes_alive is 3 and redis.state up" bash -c \
    '[ "$(curl -s -H "Authorization: Bearer $2" "$1/stats" | jq -r "[.cluster.nodes_alive, .redis.state] | join(\" \")")" = "3 up" ]' \
    _ "${A[2]}" "$TOKEN"
r=$(curl -s "${A[3]}/ready")
check "/ready says redis up" jq -e '.ready == true and .redis == "up"' <<<"$r"

put_cred() { # put_cred NODE IDENTITY JSON
    curl -s --max-time 5 -X PUT -H "Authorization: Bearer $TOKEN" "${A[$1]}/credentials/$2" -d "$3"
}
out=$(put_cred 1 'dev*' "{\"key_hex\": \"$MASTER\", \"role\": \"device\"}")
check "PUT /credentials/dev* (a fleet master) on node 1" jq -e '.version == 1' <<<"$out"
out=$(put_cred 2 'late*' "{\"key_hex\": \"$MASTER\", \"role\": \"device\"}")
check "PUT /credentials/late* on node 2" jq -e '.version == 1' <<<"$out"
APP1=app1-secret-key
out=$(put_cred 3 app1 "{\"key_hex\": \"$(printf %s $APP1 | xxd -p)\", \"role\": \"client\",
      \"allow\": [{\"devices\": \"*\", \"methods\": [\"GET\"]}]}")
check "PUT /credentials/app1 on node 3" jq -e '.version == 1' <<<"$out"
check "Redis holds no device key in the clear" bash -c \
    '! redis-cli -p "$1" get "tether:cred:{dev%2A}" | grep -qiF "$2" &&
     ! redis-cli -p "$1" get "tether:cred:{app1}" | grep -qF "$3"' _ "$RP" "$MASTER" \
    "$(printf %s $APP1 | xxd -p)"

# The load balancer: the deployment's own config file, on loopback.
nginx_lb_conf "$LB" "${P[1]}" "${P[2]}" "${P[3]}"
nginx_lb_start

"$BENCH" devices --server "127.0.0.1:$LB" --count $N --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 3 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
DEV_PID=$!
check "$N devices register through the load balancer" wait_log "$T/devices.log" "registered $N/$N" 90
lists_all() {
    [ "$(get "$1" '/devices?limit=1000' | jq '[.devices[].name] | unique | length')" = "$N" ]
}
for i in 1 2 3; do
    check "GET /devices on node $i lists all $N devices" poll 100 lists_all "${A[$i]}"
done
s=$(for i in 1 2 3; do stat "${A[$i]}" sessions.active; done | tr '\n' ' ')
note "tunnels per node: $s"
d7=$(get "${A[2]}" /devices/dev7)
owner=$(jq -r .node <<<"$d7")
check "GET /devices/dev7 on node 2 names the node holding its tunnel" \
    bash -c '[ "$1" -ge 1 ] && [ "$1" -le 3 ] && [ "$(curl -s -H "Authorization: Bearer $3" "$2/devices/dev7" | jq -r .node)" = "$1" ]' \
    _ "$owner" "${A[3]}" "$TOKEN"

# A credential written on node 1 is applied on node 3 within 1 s: node 3
# logs each credential set it applies from the shared store; the PUT must
# produce a new one within 1 s, and app9's handshake on node 3 then works.
# (Timing the handshake itself would time coap-client's 3 s retry wait when
# its first try races the change log.)
APP9=app9-secret-key!
applied() { grep -c 'applied credentials from the shared store' "$n3_LOG"; }
applied0=$(applied)
t0=$(date +%s%3N)
out=$(put_cred 1 app9 "{\"key_hex\": \"$(printf %s $APP9 | xxd -p)\", \"role\": \"client\",
      \"allow\": [{\"devices\": \"dev*\", \"methods\": [\"GET\"]}]}")
check "PUT /credentials/app9 on node 1" jq -e '.version == 1' <<<"$out"
APP9_V1=$(redis-cli -p "$RP" get "tether:cred:{app9}") # what a writer to Redis could keep
newer() { [ "$(applied)" -gt "$applied0" ]; }
poll 50 newer
t1=$(date +%s%3N)
app9() { timeout 5 coap-client-openssl -B 3 -u app9 -k "$APP9" -m get "coaps://127.0.0.1:$1/.well-known/core" 2>&1; }
ok9() { app9 "$1" | grep -qF '</node>'; }
check "app9 completes a handshake on node 3" poll 20 ok9 "${P[3]}"
note "app9's credential applied on node 3 $((t1 - t0)) ms after the PUT was sent"
check "... applied there within 1 s of the PUT" bash -c '[ "$1" -gt "$2" ] && [ "$3" -lt 1000 ]' _ "$(applied)" "$applied0" "$((t1 - t0))"
out=$(curl -s --max-time 5 -X DELETE -H "Authorization: Bearer $TOKEN" "${A[2]}/credentials/app9")
check "DELETE /credentials/app9 on node 2" jq -e '.deleted == true' <<<"$out" || note "DELETE answered: $out"
refused() { ! ok9 "$1"; }
for i in 1 2 3; do
    check "app9 is refused on node $i after the DELETE" poll 20 refused "${P[$i]}"
done
out=$(curl -s --max-time 5 -X DELETE -H "Authorization: Bearer $TOKEN" "${A[2]}/credentials/app9")
check "DELETE of an identity the store does not hold is a 404" jq -e '.error == "not found"' <<<"$out"

# Revocation cannot be undone by a writer to Redis without cluster_key:
# the deleted credential's version 1, replayed into the change log, is
# refused (the key's versions go on after a delete: a tombstone), and so
# is the same value written back under its key (read by every node's
# resync after the outage below).
check "the deleted app9 leaves a tombstone, not a restart at version 1" bash -c \
    '[ "$(redis-cli -p "$1" get "tether:cred:{app9}")" = "2 -" ]' _ "$RP"
stale0=$(stat "${A[3]}" redis.stale_refused)
redis-cli -p "$RP" XADD "tether:{log}" '*' k "tether:cred:{app9}" v 1 n 9 d "${APP9_V1#1 }" >/dev/null
stale_more() { [ "$(stat "$1" redis.stale_refused)" -gt "$2" ]; }
check "node 3 refuses app9's version 1 replayed into the change log" poll 50 stale_more "${A[3]}" "$stale0"
check "... and app9 is still refused there" refused "${P[3]}"
redis-cli -p "$RP" set "tether:cred:{app9}" "$APP9_V1" >/dev/null
# A value of another type under our prefix must not stop a resync.
redis-cli -p "$RP" hset "tether:dev:{not-a-string}" a b >/dev/null

# Redis outage under load.
app1_get() { # app1_get NODE_PORT DEVICE: one GET of DEVICE/temp
    timeout 10 coap-client-openssl -B 5 -u app1 -k "$APP1" -m get -O "3,$2" "coaps://127.0.0.1:$1/temp" 2>&1
}
oport=${P[$owner]}
out=$(app1_get "$oport" dev7)
check "before the outage app1 GETs dev7/temp on its node" grep -qE '^-?[0-9]+' <<<"$out"
# What the rebinding devices through the balancer saw before the outage.
last=$(grep -E '^devices: stats ' "$T/devices.log" | tail -n1)
ping0=$(sed -nE 's/.* pings=([0-9]+).*/\1/p' <<<"$last")
pong0=$(sed -nE 's/.* pongs=([0-9]+).*/\1/p' <<<"$last")
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
t_kill=$(date +%s)
down() { [ "$(stat "$1" redis.state)" = down ]; }
check "node 1 sees redis.state down" poll 50 down "${A[1]}"
r=$(curl -s "${A[1]}/ready")
check "/ready stays 200 and says redis down" bash -c \
    '[ "$(curl -s -o /dev/null -w "%{http_code}" "$1/ready")" = 200 ] && jq -e ".redis == \"down\"" <<<"$2" >/dev/null' \
    _ "${A[1]}" "$r"
"$BENCH" devices --server "127.0.0.1:${P[1]}" --count 5 --identity-prefix late \
    --psk-master "$MASTER" --stats-every 1 >"$T/late.log" 2>&1 &
PIDS+=("$!")
LATE_PID=$!
check "5 devices register on node 1 while Redis is down" wait_log "$T/late.log" 'registered 5/5' 30
fails=0
for _ in 1 2 3 4 5; do
    out=$(app1_get "$oport" dev7)
    grep -qE '^-?[0-9]+' <<<"$out" || { fails=$((fails + 1)); note "failed: $out"; }
done
check "during the outage every request to dev7 on its node succeeds" test "$fails" = 0
b=$(stat "${A[1]}" redis.backlog)
note "node 1 backlog during the outage: $b"
check "node 1 holds the registrations made meanwhile in its backlog" test "$b" -ge 5
while [ $(($(date +%s) - t_kill)) -lt 10 ]; do sleep 1; done # the outage lasts 10 s
# Every device answered its pings through the balancer meanwhile (a ping
# in flight at the last stats line may still be out).
check "during the outage the rebinding devices keep answering their pings" \
    wait_stats "$T/devices.log" "pings - $ping0 >= 300 && pongs - $pong0 >= (pings - $ping0) * 95 / 100" 5 ||
    note "$(grep -E '^devices: stats ' "$T/devices.log" | tail -n1) (before: pings=$ping0 pongs=$pong0)"
check "redis-server restarts" start_redis
drained() { [ "$(stat "$1" redis.backlog)" = 0 ] && [ "$(stat "$1" redis.state)" = up ]; }
for i in 1 2 3; do
    check "node $i is up again with redis.backlog 0" poll 150 drained "${A[$i]}"
done
have_late() {
    for k in 0 1 2 3 4; do
        redis-cli -p "$RP" exists "tether:dev:{late$k}" | grep -q 1 || return 1
    done
}
check "the registrations made during the outage are in Redis" poll 50 have_late
check "node 3 lists them too" poll 50 bash -c \
    '[ "$(curl -s -H "Authorization: Bearer $2" "$1/devices?name=late*" | jq ".devices | length")" = 5 ]' \
    _ "${A[3]}" "$TOKEN"
out=$(app1_get "$oport" dev7)
check "after the outage app1 still GETs dev7/temp" grep -qE '^-?[0-9]+' <<<"$out" ||
    { note "$out"; note "$(curl -s -H "Authorization: Bearer $TOKEN" "${A[$owner]}/devices/dev7")"; }
check "reconnects are counted" test "$(stat "${A[1]}" redis.reconnects)" -ge 1
for i in 1 2 3; do
    check "after the resync app9's replayed version 1 is still refused on node $i" refused "${P[$i]}"
done
kill "$DEV_PID" "$LATE_PID" 2>/dev/null
wait "$DEV_PID" 2>/dev/null
fin=$(grep -E '^devices: final ' "$T/devices.log")
note "$fin"
check "from start to end the rebinding devices answered their pings (>= 95%)" bash -c \
    '[[ $1 =~ pings=([0-9]+)\ pongs=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] &&
     [ $((BASH_REMATCH[2] * 100)) -ge $((BASH_REMATCH[1] * 95)) ]' _ "$fin"
check "all nodes still alive" bash -c 'kill -0 "$1" && kill -0 "$2" && kill -0 "$3"' _ \
    "$n1_PID" "$n2_PID" "$n3_PID"
finish
