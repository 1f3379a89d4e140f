#!/usr/bin/env bash
# Two tetherd nodes behind the real nginx UDP load balancer, configured with
# deploy/nginx/tether-udp.conf (SPEC S5, S8): devices whose NAT binding
# changes land on either node, and records for the other node's sessions
# are forwarded by the node id in their Connection ID, so the tunnels
# survive without a new handshake and replies come back through the node
# the device talks to. The internal channel refuses messages without the
# cluster key.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
KEY=cluster-key-of-the-integration-test
# Fixed ports for what the nodes must know of each other before they start.
base=$(port_base 12)
C1=$base C2=$((base + 1)) LB=$((base + 2))

cat >"$T/creds.json" <<JSON
{"psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
for id in 1 2; do
    own=$([ $id = 1 ] && echo $C1 || echo $C2)
    cat >"$T/node$id.json" <<JSON
{"node_id": $id, "listen": ["coaps://127.0.0.1:0"], "admin_token": "t0ken",
 "credentials_file": "$T/creds.json",
 "dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0},
 "cluster": {"listen": "127.0.0.1:$own",
             "nodes": {"1": "127.0.0.1:$C1", "2": "127.0.0.1:$C2"}}}
JSON
done

out=$(TETHER_CLUSTER_KEY=short "$TETHERD" --config "$T/node1.json" --check-config 2>&1)
check "a cluster without a cluster key of 16+ characters is refused at start" \
    grep -q "needs a cluster_key" <<<"$out"

export TETHER_CLUSTER_KEY=$KEY
start_tetherd n1 --config "$T/node1.json" || { not_ok "node 1 starts"; exit 1; }
start_tetherd n2 --config "$T/node2.json" || { not_ok "node 2 starts"; exit 1; }
A1=http://127.0.0.1:$(admin_port n1)
A2=http://127.0.0.1:$(admin_port n2)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$1/stats" | jq -r ".$2"; }

wait_alive() { # wait_alive ADMIN: both nodes hear each other's heartbeats
    for _ in $(seq 50); do
        [ "$(stat "$1" cluster.nodes_alive)" = 2 ] && return 0
        sleep 0.1 # polling a counter: there is no event to wait on
    done
    return 1
}
cfg=$(curl -s -H 'Authorization: Bearer t0ken' "$A1/config")
check "/config shows the cluster's nodes, never the cluster key" bash -c \
    'jq -e --arg a "127.0.0.1:$2" ".cluster.nodes[\"2\"] == \$a" <<<"$1" >/dev/null &&
     ! grep -qF "$3" <<<"$1"' _ "$cfg" "$C2" "$KEY"
check "node 1 sees 2 nodes alive (heartbeats on the internal channel)" wait_alive "$A1"
check "node 2 sees 2 nodes alive" wait_alive "$A2"

# The load balancer: the deployment's own config file, on loopback.
nginx_lb_conf "$LB" "$n1_PORT" "$n2_PORT"
check "nginx accepts deploy/nginx/tether-udp.conf" nginx -t -p "$T/nginx" -c "$T/nginx/nginx.conf"
nginx_lb_start

# 20 devices through the balancer, each changing source port every second:
# every change is a new balancer session, sent to the next node in turn.
"$BENCH" devices --server "127.0.0.1:$LB" --count 20 --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 1 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
DEV_PID=$!
check "20 devices register through the load balancer" \
    wait_log "$T/devices.log" 'registered 20/20' 60
s1=$(stat "$A1" sessions.active) s2=$(stat "$A2" sessions.active)
note "sessions: node 1 $s1, node 2 $s2"
check "both nodes hold some of the tunnels" bash -c '[ "$1" -gt 0 ] && [ "$2" -gt 0 ] &&
    [ $(($1 + $2)) -eq 20 ]' _ "$s1" "$s2"

# Several rounds of rebinding: the pings sent from every new port must be
# answered, with no new handshake.
check "after rebinding, every ping is answered and no device handshook again" \
    wait_stats "$T/devices.log" 'handshakes == 20 && pings >= 60 && pongs == pings' 30
f1=$(stat "$A1" cluster.forwarded_records) f2=$(stat "$A2" cluster.forwarded_records)
i1=$(stat "$A1" cluster.forwarded_in) i2=$(stat "$A2" cluster.forwarded_in)
note "forwarded: node 1 sent $f1 received $i1; node 2 sent $f2 received $i2"
check "records were forwarded by CID in both directions" \
    bash -c '[ "$1" -gt 0 ] && [ "$2" -gt 0 ] && [ "$3" -gt 0 ] && [ "$4" -gt 0 ]' \
    _ "$f1" "$f2" "$i1" "$i2"
r1=$(stat "$A1" cluster.replies_in) r2=$(stat "$A2" cluster.replies_in)
note "replies relayed back: node 1 $r1, node 2 $r2"
check "answers went back through the node the device talks to, on both nodes" \
    bash -c '[ "$1" -gt 0 ] && [ "$2" -gt 0 ]' _ "$r1" "$r2"
check "no handshake was lost or repeated on either node" \
    bash -c '[ $(($1 + $2)) -eq 20 ] && [ "$3" = 0 ] && [ "$4" = 0 ]' _ \
    "$(stat "$A1" sessions.handshakes_full)" "$(stat "$A2" sessions.handshakes_full)" \
    "$(stat "$A1" sessions.unknown_cid_dropped)" "$(stat "$A2" sessions.unknown_cid_dropped)"
kill "$DEV_PID"
wait "$DEV_PID" 2>/dev/null
note "$(grep -m1 '^devices: final' "$T/devices.log")"

# The internal channel only takes messages under the cluster key.
before=$(stat "$A1" cluster.rejected)
printf 'TQ\001\001\002\001forged-message-without-the-key-0123456789abcdef' >"$T/forged"
timeout 2 bash -c 'cat "$1" >/dev/udp/127.0.0.1/$2' _ "$T/forged" "$C1"
for _ in $(seq 30); do
    [ "$(stat "$A1" cluster.rejected)" -gt "$before" ] && break
    sleep 0.1
done
check "a message without the cluster key's MAC is refused and counted" \
    test "$(stat "$A1" cluster.rejected)" -gt "$before"
check "both nodes still alive" bash -c 'kill -0 "$1" && kill -0 "$2"' _ "$n1_PID" "$n2_PID"

finish
