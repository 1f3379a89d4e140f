#!/usr/bin/env bash
# Requests and observations across nodes (SPEC S4 Observe, S5): three
# tetherd nodes sharing a real redis-server, started with only --node-id,
# --redis, --cluster-listen and the cluster key (plus a listener and the
# test's limits), behind the real nginx UDP load balancer of deploy/nginx.
# Simulated devices rebind through the balancer; DTLS clients through the
# balancer land on any node and reach every device they ask for (2.05),
# relayed to the node holding its tunnel when it is another one; every
# node lists every device; 10 observers spread over the 3 nodes observe
# dev7/temp: one device-side observation in the whole cluster, every
# observer gets notifications, and GET /observations on any node shows
# that one observation with its 10 observers. Groups put on one node are
# known on every node (Redis); a group GET on node 1 fans out to members
# whose tunnels are on all three nodes and returns each member's response
# with its Reply-From.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
KEY=cluster-key-of-the-xnode-integration-test
TOKEN=t0ken
export TETHER_CLUSTER_KEY=$KEY TETHER_ADMIN_TOKEN=$TOKEN
base=$(port_base 12)
RP=$base LB=$((base + 1)) C1=$((base + 2)) C2=$((base + 3)) C3=$((base + 4))
N=${XNODE_DEVICES:-200}
APP1=app1-secret-key
t_start=$(date +%s)

for tool in redis-server redis-cli nginx coap-client-openssl jq; do
    command -v "$tool" >/dev/null || { skip_needs "$tool"; finish; exit 0; }
done

mkdir -p "$T/redis"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$T/redis" --logfile "$T/redis.log" &
PIDS+=("$!")
redis_up() { redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG; }
check "redis-server starts" poll 50 redis_up

# a plain CoAP listener too, for the group client (data/coap_group_client.py)
REDIS_NODES_ARGS=(--listen coap://127.0.0.1:0)
redis_nodes_start "$RP" "$C1" "$C2" "$C3" || { finish; exit 1; }
get() { curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "$1$2"; }
stat() { get "$1" /stats | jq -r ".$2"; }
three_alive() {
    [ "$(get "$1" /cluster | jq '[.nodes[] | select(.state == "alive")] | length')" = 3 ]
}
for i in 1 2 3; do
    check "node $i sees 3 nodes alive" poll 100 three_alive "${A[$i]}"
done
put_cred() { # put_cred NODE IDENTITY JSON
    curl -s --max-time 5 -X PUT -H "Authorization: Bearer $TOKEN" "${A[$1]}/credentials/$2" -d "$3"
}
out=$(put_cred 1 'dev*' "{\"key_hex\": \"$MASTER\", \"role\": \"device\"}")
check "PUT /credentials/dev* on node 1" jq -e '.version >= 1' <<<"$out"
out=$(put_cred 2 app1 "{\"key_hex\": \"$(printf %s $APP1 | xxd -p)\", \"role\": \"client\",
      \"allow\": [{\"devices\": \"*\", \"methods\": [\"GET\"]}, {\"groups\": \"spread\", \"methods\": [\"GET\"]}]}")
check "PUT /credentials/app1 on node 2" jq -e '.version >= 1' <<<"$out"
creds_on_3() { grep -q 'applied credentials from the shared store' "$n3_LOG"; }
poll 30 creds_on_3

nginx_lb_conf "$LB" "${P[1]}" "${P[2]}" "${P[3]}"
nginx_lb_start

"$BENCH" devices --server "127.0.0.1:$LB" --count "$N" --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 3 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
DEV_PID=$!
check "$N devices register through the load balancer" wait_log "$T/devices.log" "registered $N/$N" 30
lists_all() {
    [ "$(get "$1" '/devices?limit=1000' | jq '[.devices[].name] | unique | length')" = "$N" ]
}
for i in 1 2 3; do
    check "GET /devices on node $i lists all $N devices" poll 100 lists_all "${A[$i]}"
done
s=$(for i in 1 2 3; do stat "${A[$i]}" sessions.active; done | tr '\n' ' ')
note "tunnels per node: $s"

# Clients through the balancer: each coap-client run has its own source
# port, so nginx (hashing on source address and port) spreads them over
# the nodes; most land where the device's tunnel is not.
app1_get() { # app1_get PORT DEVICE
    timeout 10 coap-client-openssl -B 5 -u app1 -k "$APP1" -m get -O "3,$2" \
        "coaps://127.0.0.1:$1/temp" 2>&1
}
served0=0
for i in 1 2 3; do served0=$((served0 + $(stat "${A[$i]}" cluster.xrelay.served))); done
fails=0 pids=()
for k in 3 17 42 77 101 150 199 8 64 123 5 190; do
    [ "$k" -lt "$N" ] || continue
    (out=$(app1_get "$LB" "dev$k"); grep -qE '^-?[0-9]+' <<<"$out" || { echo "dev$k: $out"; exit 1; }) &
    pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "12 GETs through the load balancer to 12 devices all answer 2.05" test "$fails" = 0
# And on every node for one device, so at least two are across nodes.
for i in 1 2 3; do
    out=$(app1_get "${P[$i]}" dev7)
    check "app1 on node $i GETs dev7/temp" grep -qE '^-?[0-9]+' <<<"$out" || note "$out"
done
served=0
for i in 1 2 3; do served=$((served + $(stat "${A[$i]}" cluster.xrelay.served))); done
note "requests relayed across nodes: $((served - served0))"
check "requests were relayed across nodes (cluster.xrelay.served)" test "$((served - served0))" -ge 2
owner=$(get "${A[1]}" /devices/dev7 | jq -r .node)
other=$((owner % 3 + 1))
out=$(curl -s --max-time 15 -X POST -H "Authorization: Bearer $TOKEN" \
    "${A[$other]}/devices/dev7/request" -d '{"method": "GET", "path": "/temp"}')
check "POST /devices/dev7/request on node $other (dev7 is on node $owner) answers 2.05" \
    jq -e '.code == "2.05"' <<<"$out" || note "$out"

# 10 observers of dev7/temp: 4 on node 1, 3 on node 2, 3 on node 3.
obs_pids=()
for k in 0 1 2 3 4 5 6 7 8 9; do
    node=$((k % 3 + 1))
    timeout 12 coap-client-openssl -B 7 -s 7 -u app1 -k "$APP1" -m get -O "3,dev7" \
        "coaps://127.0.0.1:${P[$node]}/temp" >"$T/obs$k.out" 2>&1 &
    obs_pids+=("$!")
done
sum_stat() {
    local t=0
    for i in 1 2 3; do t=$((t + $(stat "${A[$i]}" "$1"))); done
    echo "$t"
}
ten_observers() { [ "$(sum_stat observe.observers)" = 12 ]; } # 10 + the owner's 2 aggregates
check "10 observers registered across the nodes" poll 80 ten_observers
check "observe.device_observations summed over the nodes is 1" \
    test "$(sum_stat observe.device_observations)" = 1
check "... held by dev7's node ($owner)" test "$(stat "${A[$owner]}" observe.device_observations)" = 1
for i in 1 2 3; do
    o=$(get "${A[$i]}" /observations)
    check "GET /observations on node $i: one observation of dev7/temp with 10 observers" \
        jq -e '.count == 1 and .observations[0].device == "dev7" and
               .observations[0].path == "/temp" and .observations[0].observers == 10' <<<"$o" ||
        note "$o"
done
for p in "${obs_pids[@]}"; do wait "$p"; done
short=0
for k in 0 1 2 3 4 5 6 7 8 9; do
    # the first answer and at least two notifications (a new value every
    # second); coap-client prints the payloads ("28.3") without newlines
    n=$(grep -oE -- '-?[0-9]+\.[0-9]' "$T/obs$k.out" | wc -l)
    [ "$n" -ge 3 ] || { short=$((short + 1)); note "observer $k got $n values: $(tr '\n' ' ' <"$T/obs$k.out")"; }
done
check "every observer on every node received notifications" test "$short" = 0
gone() { [ "$(sum_stat observe.device_observations)" = 0 ] && [ "$(sum_stat observe.observers)" = 0 ]; }
check "observers gone: the device-side observation is cancelled" poll 150 gone ||
    note "$(for i in 1 2 3; do get "${A[$i]}" /stats | jq -c .observe; done)"

# Groups (draft-ietf-core-groupcomm-proxy-07) across the cluster.
put_group() { # put_group NODE NAME JSON
    curl -s --max-time 5 -X PUT -H "Authorization: Bearer $TOKEN" "${A[$1]}/groups/$2" -d "$3"
}
has_group() { [ "$(get "${A[$1]}" "/groups/$2" | jq -r .name)" = "$2" ]; }
get "${A[1]}" '/devices?limit=1000' >"$T/devices.json"
members=$(jq -c '[.devices | group_by(.node)[] | .[0:2][] | .name]' "$T/devices.json")
note "group 'spread': $members on nodes $(jq -c '[.devices | group_by(.node)[] | .[0].node]' "$T/devices.json")"
out=$(put_group 2 spread "{\"members\": $members}")
check "PUT /groups/spread (6 members, 2 on each node) on node 2" jq -e '.name == "spread"' <<<"$out"
for i in 1 3; do
    check "... node $i knows the group (through Redis)" poll 30 has_group "$i" spread
done
G1=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
GCLIENT=(python3 "$(dirname "$0")/data/coap_group_client.py" 127.0.0.1 "$G1" --path temp)
# T' = 4 s: the devices rebind every 3 s, and a request sent to the old
# address as a device moves is answered after one retransmission (2-3 s).
"${GCLIENT[@]}" --host spread --timeout 4 --listen 4.2 >"$T/spread.out"
note "group GET on node 1: $(jq -c '[.reply_from, .code, .t]' "$T/spread.out" | tr '\n' ' ')"
check "a group GET on node 1 returns every member's 2.05, each with its Reply-From" \
    test "$(jq -r 'select(.code == "2.05") | .reply_from' "$T/spread.out" | jq -R . | jq -sc sort)" \
    = "$(jq -c sort <<<"$members")"
# A group observation on node 1 (draft §3.5.2): the members on nodes 2
# and 3 are observed through node 1's aggregates of their resources there,
# and their notifications reach the client with Reply-From like node 1's.
timeout 15 coap-client-openssl -v 6 -s 7 -B 9 -u app1 -k "$APP1" -m get -O 3,spread -O 2,0x02 \
    "coaps://127.0.0.1:${P[1]}/temp" >"$T/gobs.out" 2>&1
# libcoap prints the unknown option 248 as \xNN bytes; the CRI [-1,
# "<device>"] has the name from the 4th byte on.
grep -o '248:[^] ]*' "$T/gobs.out" | python3 -c '
import sys, collections
c = collections.Counter(bytes.fromhex(l.strip()[4:].replace("\\x", ""))[3:].decode() for l in sys.stdin)
for k, v in sorted(c.items()): print(k, v)' >"$T/gobs.count"
note "group observation on node 1, notifications per member: $(tr '\n' ' ' <"$T/gobs.count")"
check "a group observation on node 1 gets notifications from all 6 members, 4 of them on nodes 2 and 3" \
    test "$(cut -d' ' -f1 "$T/gobs.count" | jq -R . | jq -sc sort)" = "$(jq -c sort <<<"$members")"
check "... at least 3 from each (past T' = 2 s)" awk '$2 < 3 { exit 1 }' "$T/gobs.count"
check "its session ended: no observation or observer is left on any node" poll 150 gone ||
    note "$(for i in 1 2 3; do get "${A[$i]}" /stats | jq -c .observe; done)"
out=$(put_group 3 dev1x '{"pattern": "dev1?"}')
check "PUT /groups/dev1x (pattern dev1?) on node 3" jq -e '.pattern == "dev1?"' <<<"$out"
poll 30 has_group 1 dev1x
"${GCLIENT[@]}" --host dev1x --timeout 4 --listen 4.2 >"$T/dev1x.out"
note "pattern group GET on node 1: $(jq -c '[.reply_from, .code, .t]' "$T/dev1x.out" | tr '\n' ' ')"
check "... a group GET on node 1 matches the directory: dev10..dev19 answer, from every node" \
    test "$(jq -r 'select(.code == "2.05") | .reply_from' "$T/dev1x.out" | sort | tr '\n' ' ')" = \
    "dev10 dev11 dev12 dev13 dev14 dev15 dev16 dev17 dev18 dev19 "
curl -s --max-time 5 -X DELETE -H "Authorization: Bearer $TOKEN" "${A[3]}/groups/spread" >/dev/null
no_group() { ! has_group "$1" spread; }
check "DELETE /groups/spread on node 3: node 1 forgets it" poll 30 no_group 1

kill "$DEV_PID" 2>/dev/null
check "all nodes still alive" bash -c 'kill -0 "$1" && kill -0 "$2" && kill -0 "$3"' _ \
    "$n1_PID" "$n2_PID" "$n3_PID"
note "took $(($(date +%s) - t_start)) s"
finish
