#!/usr/bin/env bash
# Several listeners (security issue item 11): every answer leaves from the
# socket (local address and port) its peer wrote to. tetherd listens on
# 127.0.0.1 for operators and on a second address, 127.0.0.2 (loopback
# holds all of 127/8, so this is a second local address without a
# namespace), for devices. The clients' UDP sockets are connected, as
# libcoap's and tether-bench's are, so the kernel drops an answer from any
# other address or port: a handshake or request only succeeds when it came
# back from where it went. Checked for a cookie exchange and handshake,
# for requests, after NAT rebinding (CID), and for records that came
# through another node of a cluster.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
KEY=cluster-key-of-the-listeners-test
hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client"}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
# port_of NAME HOST: the bound port of NAME's listener on HOST.
port_of() {
    local log_var="${1}_LOG"
    grep '"msg":"listening"' "${!log_var}" | grep -F "\"host\":\"$2\"" | head -1 |
        sed -E 's/.*"port":"([0-9]+)".*/\1/'
}
stat() { curl -s -H 'Authorization: Bearer t0ken' "$1/stats" | jq -r ".$2"; }

start_tetherd n1 --listen coaps://127.0.0.1:0 --listen coaps://127.0.0.2:0 \
    --config <(echo "{\"credentials_file\": \"$T/creds.json\", \"admin_token\": \"t0ken\",
                     \"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}}") ||
    { not_ok "tetherd starts with two listeners"; exit 1; }
P1=$(port_of n1 127.0.0.1) P2=$(port_of n1 127.0.0.2)
A1=http://127.0.0.1:$(admin_port n1)
note "listeners: 127.0.0.1:$P1 127.0.0.2:$P2"

for where in 127.0.0.1:$P1 127.0.0.2:$P2; do
    out=$(timeout 20 coap-client-openssl -B 5 -u app1 -k app1-secret -m get \
        "coaps://$where/.well-known/core" 2>&1)
    check "libcoap over DTLS to $where: handshake and answer from the same address" \
        grep -qF '</.well-known/core>' <<<"$out"
done

# Devices on the second address, rebinding every second (CID records from
# new ports): registration and every ping's answer must reach them.
"$BENCH" devices --server "127.0.0.2:$P2" --count 10 --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 1 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
DEV=$!
check "10 devices handshake and register with the second listener" \
    wait_log "$T/devices.log" 'registered 10/10' 30
check "after rebinding, every ping from a new port is answered, no new handshake" \
    wait_log "$T/devices.log" '^devices: stats .*handshakes=10 .*rebinds=([3-9][0-9]|[1-9][0-9][0-9]) pings=([0-9]+) pongs=\2 ' 30
kill "$DEV"
wait "$DEV" 2>/dev/null
check "tetherd still serves the first listener" \
    bash -c 'timeout 20 coap-client-openssl -B 5 -u app1 -k app1-secret -m get "coaps://127.0.0.1:$1/.well-known/core" 2>&1 | grep -qF "</.well-known/core>"' _ "$P1"

# Two nodes, each with both listeners. Devices handshake with node 2's
# second listener, then send their records to node 1's second listener:
# node 1 forwards them by CID and node 2's answers must leave node 1 from
# that same listener.
base=$(port_base 12)
C1=$base C2=$((base + 1))
for id in 1 2; do
    own=$([ $id = 1 ] && echo $C1 || echo $C2)
    cat >"$T/node$id.json" <<JSON
{"node_id": $id, "listen": ["coaps://127.0.0.1:0", "coaps://127.0.0.2:0"], "admin_token": "t0ken",
 "credentials_file": "$T/creds.json", "dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0},
 "cluster": {"listen": "127.0.0.1:$own", "nodes": {"1": "127.0.0.1:$C1", "2": "127.0.0.1:$C2"}}}
JSON
done
export TETHER_CLUSTER_KEY=$KEY
start_tetherd c1 --config "$T/node1.json" || { not_ok "node 1 starts"; exit 1; }
start_tetherd c2 --config "$T/node2.json" || { not_ok "node 2 starts"; exit 1; }
Q1=$(port_of c1 127.0.0.2) Q2=$(port_of c2 127.0.0.2)
AC1=http://127.0.0.1:$(admin_port c1) AC2=http://127.0.0.1:$(admin_port c2)
"$BENCH" devices --server "127.0.0.2:$Q2" --records-to "127.0.0.2:$Q1" --count 10 \
    --identity-prefix dev --psk-master "$MASTER" --rebind-every 1 --stats-every 1 \
    >"$T/via.log" 2>&1 &
PIDS+=("$!")
VIA=$!
check "10 devices register on node 2 through node 1's second listener" \
    wait_log "$T/via.log" 'registered 10/10' 30
check "their pings from new ports are answered through node 1, no new handshake" \
    wait_log "$T/via.log" '^devices: stats .*handshakes=10 .*pings=([1-9][0-9]+) pongs=\1 ' 30
check "node 2 holds the sessions, node 1 forwarded the records and sent the answers" \
    bash -c '[ "$1" = 10 ] && [ "$2" -gt 0 ] && [ "$3" -gt 0 ] && [ "$4" = 0 ]' _ \
    "$(stat "$AC2" sessions.active)" "$(stat "$AC1" cluster.forwarded_records)" \
    "$(stat "$AC1" cluster.replies_in)" "$(stat "$AC1" sessions.handshakes_full)"
kill "$VIA"
wait "$VIA" 2>/dev/null
check "processes alive" bash -c 'kill -0 "$1" && kill -0 "$2" && kill -0 "$3"' _ \
    "$n1_PID" "$c1_PID" "$c2_PID"

finish
