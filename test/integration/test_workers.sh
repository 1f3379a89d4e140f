#!/usr/bin/env bash
# The workers of one host (config key `workers`, SPEC S5, S9): one tetherd
# with workers=2 serves one DTLS port from two processes, each a node of
# the cluster (node ids 1 and 2, channel ports C and C+1, static
# membership between them, no Redis). 200 simulated devices change source
# port every ~3 s, so the kernel's 4-tuple hash would send about half of
# their records to the other worker: the reuseport program steers each
# CID record to the worker its node byte names, so no record is forwarded
# between the workers (cluster.forwarded_records summed over them stays 0)
# while every device keeps its session and answers. A worker killed with
# SIGKILL is restarted on the same socket, so its reuseport slot (its bind
# order) does not move: the records naming it still reach it, not its
# sibling. workers=1 is the single process it always was.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
TOKEN=t0ken
export TETHER_CLUSTER_KEY=cluster-key-of-the-workers-test TETHER_ADMIN_TOKEN=$TOKEN
# free_run N: a port P with P .. P+N-1 all free for UDP now (the workers
# take channel ports + k; other tests on this machine take ports too),
# below the kernel's ephemeral range, where no client socket lands.
free_run() {
    local p k lo
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    for _ in $(seq 50); do
        p=$((10000 + RANDOM % (lo - 10000 - $1)))
        for k in $(seq 0 $(($1 - 1))); do
            [ -z "$(ss -Hlun "sport = :$((p + k))")" ] || continue 2
        done
        echo "$p"
        return 0
    done
    return 1
}
C=$(free_run 2)
N=200
for tool in jq curl; do
    command -v "$tool" >/dev/null || { skip_needs "$tool"; finish; exit 0; }
done

APP1=app1-secret-key
cat >"$T/creds.json" <<JSON
{"psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}],
 "psk": [{"identity": "app1", "key_hex": "$(printf %s $APP1 | xxd -p)", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET"]}]}]}
JSON
conf() { # conf WORKERS [CLUSTER_JSON]
    cat <<JSON
{"node_id": 1, "workers": $1, "listen": ["coaps://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "drain_timeout": 0,
 "dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0}${2:+, $2}}
JSON
}
conf 2 >"$T/nocluster.json"
out=$("$TETHERD" --config "$T/nocluster.json" --check-config 2>&1)
check "workers=2 without cluster.listen is refused at start, saying why" \
    grep -q "workers need cluster.listen" <<<"$out" || note "$out"
conf 2 "\"cluster\": {\"listen\": \"127.0.0.1:$C\"}" >"$T/w2.json"
out=$("$TETHERD" --config "$T/w2.json" --node-id 255 --check-config 2>&1)
check "node ids past 255 (node_id + workers - 1) are refused" grep -q "past 255" <<<"$out" ||
    note "$out"

start_tetherd w --config "$T/w2.json" || { finish; exit 1; }
check "the supervisor logs 'workers ready' once both workers are up" \
    wait_log "$w_LOG" '"msg":"workers ready","workers":"2","node_ids_from":"1","node_ids_to":"2"'
mapfile -t ADM < <(grep '"component":"admin","msg":"listening"' "$w_LOG" |
    sed -E 's/.*"port":"([0-9]+)".*/\1/')
check "each worker has its own admin endpoint" test "${#ADM[@]}" = 2
get() { curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1$2"; }
stat() { get "$1" /stats | jq -r ".$2"; }
sum() { echo $(($(stat "${ADM[0]}" "$1") + $(stat "${ADM[1]}" "$1"))); }
ports=$(grep -c "\"msg\":\"listening\",\"host\":\"127.0.0.1\",\"port\":\"$w_PORT\"" "$w_LOG")
check "both workers listen on the one DTLS port $w_PORT" test "$ports" = 2
alive() { [ "$(stat "${ADM[0]}" cluster.nodes_alive)" = 2 ] && [ "$(stat "${ADM[1]}" cluster.nodes_alive)" = 2 ]; }
check "the workers hear each other on the channel (static membership, no Redis)" poll 50 alive
# The workers log concurrently: order their admin ports by node id.
mapfile -t ADM < <(for a in "${ADM[@]}"; do echo "$(get "$a" /config | jq -r .node_id) $a"; done |
    sort -n | tee "$T/adm" | cut -d' ' -f2)
check "worker node ids are 1 and 2 (node_id + worker index)" \
    test "$(cut -d' ' -f1 "$T/adm" | tr '\n' ' ')" = "1 2 "
# A second tetherd with workers on the same port would join the reuseport
# group (same uid) and take a share of the devices' records: refused.
C2=$(free_run 2)
sed -e "s/127.0.0.1:0/127.0.0.1:$w_PORT/" -e "s/127.0.0.1:$C/127.0.0.1:$C2/" "$T/w2.json" >"$T/second.json"
timeout 10 "$TETHERD" --config "$T/second.json" >"$T/second.log" 2>&1
rc=$?
check "a second tetherd with workers on port $w_PORT exits with an error (rc $rc), saying why" \
    bash -c '[ "$1" != 0 ] && [ "$1" != 124 ] && grep -q "another tetherd.s workers serve this port" "$2"' _ "$rc" "$T/second.log" ||
    note "$(tail -n3 "$T/second.log")"

"$BENCH" devices --server "127.0.0.1:$w_PORT" --count $N --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 3 --stats-every 1 >"$T/devices.log" 2>&1 &
PIDS+=("$!")
DEV_PID=$!
check "$N devices register" wait_log "$T/devices.log" "registered $N/$N" 30
s0=$(stat "${ADM[0]}" sessions.active) s1=$(stat "${ADM[1]}" sessions.active)
note "tunnels: worker 0 (node 1) $s0, worker 1 (node 2) $s1"
check "both workers hold tunnels (handshakes spread by the kernel's hash)" \
    bash -c '[ "$1" -gt 0 ] && [ "$2" -gt 0 ] && [ $(($1 + $2)) = "$3" ]' _ "$s0" "$s1" "$N"
# Every device rebinds at least twice; every ping from a new port answered.
line=$(wait_stats "$T/devices.log" "handshakes == $N && rebinds >= 2 * $N && pings >= 2 * $N && pongs == pings" 20)
check "after $N x 2 rebinds every ping is answered and no device handshook again" test -n "$line"
note "${line:-$(tail -n1 "$T/devices.log")}"
fw=$(sum cluster.forwarded_records) unk=$(sum sessions.unknown_cid_dropped)
note "forwarded between the workers: $fw; unknown CIDs dropped: $unk"
check "no record was forwarded between the workers (cluster.forwarded_records = 0)" test "$fw" = 0
check "no record reached a worker that does not hold its session" test "$unk" = 0
check "no device needed a second handshake" test "$(sum sessions.handshakes_full)" = "$N"
# Every device answers a request, sent on the worker that holds it.
answered=0
for a in "${ADM[@]}"; do
    for name in $(get "$a" '/devices?limit=1000' | jq -r '.devices[].name'); do
        code=$(curl -s --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$a/devices/$name/request" -d '{"method": "GET", "path": "/count"}' |
            jq -r .code)
        [ "$code" = 2.05 ] && answered=$((answered + 1))
    done
done
check "all $N devices answer GET /count after rebinding ($answered did)" test "$answered" = "$N"

# Worker 0 dies: the supervisor restarts it on the same socket. Had its
# socket left the group, worker 1's would have moved into slot 0 and every
# record naming node 1 would now reach worker 1 and be forwarded.
pid0=$(grep -m1 '"msg":"worker started","worker":"0"' "$w_LOG" | sed -E 's/.*"pid":"([0-9]+)".*/\1/')
fw1=$(stat "${ADM[1]}" cluster.forwarded_records)
kill -KILL "$pid0"
check "the supervisor restarts worker 0" wait_log "$w_LOG" '"msg":"worker restarted","worker":"0"' 10
new0=$(grep '"component":"admin","msg":"listening"' "$w_LOG" | sed -n 3p | sed -E 's/.*"port":"([0-9]+)".*/\1/')
gets_old() { [ "$(stat "$new0" sessions.unknown_cid_dropped)" -gt 0 ]; }
check "records naming node 1 reach the restarted worker 0 (its slot held)" poll 60 gets_old
check "... and none of them went to worker 1 to be forwarded" \
    test "$(stat "${ADM[1]}" cluster.forwarded_records)" = "$fw1"
kill "$DEV_PID"
wait "$DEV_PID" 2>/dev/null
kill -TERM "$w_PID"
check "SIGTERM stops the supervisor and both workers (exit 0)" wait "$w_PID"
check "every line the three processes logged is one whole JSON object (no interleaving)" \
    bash -c 'while IFS= read -r l; do jq -e . >/dev/null 2>&1 <<<"$l" || exit 1; done <"$1"' _ "$w_LOG"

# With Redis the workers share the device directory: a client whose flow
# hashed to one worker reaches devices on the other (cluster.xrelay),
# while the devices' own records are still never forwarded.
if command -v redis-server >/dev/null && command -v coap-client-openssl >/dev/null; then
    RP=$(free_run 1) CR=$(free_run 2)
    mkdir -p "$T/redis"
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$T/redis" \
        --logfile "$T/redis.log" &
    PIDS+=("$!")
    redis_up() { redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG; }
    check "redis-server starts" poll 50 redis_up
    conf 2 "\"cluster\": {\"listen\": \"127.0.0.1:$CR\"}, \"redis_url\": \"redis://127.0.0.1:$RP\"" \
        >"$T/wr.json"
    start_tetherd wr --config "$T/wr.json" || { finish; exit 1; }
    check "both workers start with Redis" wait_log "$wr_LOG" '"msg":"workers ready"' ||
        { sed 's/^/#   /' "$wr_LOG"; note "$(ss -Hluanp | grep -E ":($CR|$((CR + 1))) ")"; finish; exit 1; }
    mapfile -t ADM < <(grep '"component":"admin","msg":"listening"' "$wr_LOG" |
        sed -E 's/.*"port":"([0-9]+)".*/\1/')
    "$BENCH" devices --server "127.0.0.1:$wr_PORT" --count 40 --identity-prefix dev \
        --psk-master "$MASTER" --rebind-every 2 --stats-every 1 >"$T/devicesr.log" 2>&1 &
    PIDS+=("$!")
    DEV_PID=$!
    check "40 devices register on the workers (with Redis)" wait_log "$T/devicesr.log" 'registered 40/40' 20
    lists_all() { [ "$(get "${ADM[0]}" '/devices?limit=100' | jq '.devices | length')" = 40 ]; }
    check "worker 0 lists all 40 devices (the shared directory)" poll 50 lists_all
    fails=0 pids=()
    for k in 1 5 9 13 17 21 25 29 33 37; do # each coap-client run is a new flow
        (timeout 10 coap-client-openssl -B 5 -u app1 -k "$APP1" -m get -O "3,dev$k" \
            "coaps://127.0.0.1:$wr_PORT/temp" 2>&1 | grep -qE '^-?[0-9]+') &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
    check "10 DTLS clients GET 10 devices' /temp, wherever each landed: all 2.05" test "$fails" = 0
    served=$(sum cluster.xrelay.served)
    note "client requests relayed between the workers: $served"
    check "some of them crossed between the workers (cluster.xrelay.served)" test "$served" -gt 0
    check "devices' records were still never forwarded" test "$(sum cluster.forwarded_records)" = 0
    kill "$DEV_PID"
    # A worker that cannot stop (SIGSTOPped) does not hold the stop forever:
    # drain_timeout (0 s) + 5 s after SIGTERM the supervisor kills it.
    hung=$(grep -m1 '"msg":"worker started","worker":"1"' "$wr_LOG" | sed -E 's/.*"pid":"([0-9]+)".*/\1/')
    kill -STOP "$hung"
    t0=$SECONDS
    kill -TERM "$wr_PID"
    wait "$wr_PID" 2>/dev/null
    rc=$? took=$((SECONDS - t0))
    check "a hung worker is killed drain_timeout + 5 s after SIGTERM (took ${took} s, exit $rc)" \
        bash -c '[ "$1" -ge 4 ] && [ "$1" -le 7 ] && [ "$2" = 1 ] && ! kill -0 "$3" 2>/dev/null &&
                 grep -q "workers still running; killing them" "$4"' _ "$took" "$rc" "$hung" "$wr_LOG"
fi

# workers=1: one process, as before: no supervisor, no reuseport group.
conf 1 >"$T/w1.json"
start_tetherd one --config "$T/w1.json" || { finish; exit 1; }
check "workers=1 runs no supervisor" bash -c '! grep -q "\"component\":\"workers\"" "$1"' _ "$one_LOG"
A1=$(admin_port one)
check "workers=1: the process started is the node" \
    test "$(get "$A1" /config | jq -r '.workers, .node_id' | tr '\n' ' ')" = "1 1 "
"$BENCH" devices --server "127.0.0.1:$one_PORT" --count 20 --identity-prefix dev \
    --psk-master "$MASTER" --rebind-every 1 --stats-every 1 >"$T/devices1.log" 2>&1 &
PIDS+=("$!")
check "workers=1: 20 rebinding devices keep their sessions, every ping answered" \
    wait_stats "$T/devices1.log" 'handshakes == 20 && rebinds >= 20 && pongs == pings && pings >= 20' 15
finish
