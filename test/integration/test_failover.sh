#!/usr/bin/env bash
# Failover without a DTLS handshake (SPEC S5; server/failover.h): three
# tetherd nodes with cluster.failover, a real redis-server and the nginx
# UDP balancer of deploy/nginx/tether-udp.conf, 200 simulated devices
# (DTLS 1.2 with a CID, a registration update (CON) every second, a new
# source port every 3 s, so each lands on every node in turn), 10 DTLS
# 1.3 devices, and 15 observed devices (/temp, a value every second)
# with 10 observers: 7 tether-bench sessions through the balancer (some
# with their own session on the node that dies; a CoAP ping every second)
# and 3 coap-client-openssl on the survivors, observing devices whose
# tunnels are on the node that dies.
#   1. kill -9 of the node holding the most sessions: exactly one survivor
#      adopts its sessions (one log line), every DTLS 1.2 device is
#      answered again within 10 s, no device handshakes again, and every
#      observer is notified again within 10 s. Its DTLS 1.3 sessions
#      cannot be checkpointed (wolfSSL objects): their devices need a new
#      handshake, counted here.
#   2. A rolling restart (SIGTERM, start again) of all three nodes under
#      load: no handshake, no failed request.
# The note lines give the figures: requests lost, per-device recovery
# (p50, p99 of the longest silence of the killed node's devices),
# handshakes caused, and per-observer recovery.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
KEY=cluster-key-of-the-failover-integration-test
TOKEN=t0ken
export TETHER_CLUSTER_KEY=$KEY TETHER_ADMIN_TOKEN=$TOKEN
base=$(port_base 11)
RP=$base LB=$((base + 1))
N=200
N13=10
NOBS=15
for cmd in redis-server nginx; do
    command -v "$cmd" >/dev/null || { skip_needs "failover needs $cmd"; exit 0; }
done
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] ||
    { skip_needs "failover needs nginx's stream module"; exit 0; }

mkdir -p "$T/redis" "$T/nginx"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --dir "$T/redis" \
    --logfile "$T/redis.log" &
PIDS+=("$!")
redis_up() { redis-cli -p "$RP" ping 2>/dev/null | grep -q PONG; }
poll() { # poll COUNT CMD...: CMD every 0.1 s until it succeeds (counters have no event)
    local n=$1
    shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
check "redis-server starts" poll 50 redis_up

APP=app1-secret
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$(printf %s "$APP" | xxd -p)", "role": "client",
          "allow": [{"devices": "dev*", "methods": ["GET"]}]}],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/node.json" <<JSON
{"credentials_file": "$T/creds.json", "drain_timeout": 10,
 "dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0}}
JSON
# Fixed ports: nginx and a restarted node need the same ones again.
for id in 1 2 3; do
    eval "C$id=$((base + 1 + id)) P$id=$((base + 4 + id)) M$id=$((base + 7 + id))"
done
start_node() { # start_node ID: node ID on its fixed ports, failover on
    local id=$1 c p m
    eval "c=\$C$id p=\$P$id m=\$M$id"
    start_tetherd "n$id" --config "$T/node.json" --node-id "$id" \
        --redis "redis://127.0.0.1:$RP" --cluster-listen "127.0.0.1:$c" \
        --listen "coaps://127.0.0.1:$p" --admin "127.0.0.1:$m" --failover true
}
for id in 1 2 3; do start_node "$id" || { not_ok "node $id starts"; exit 1; }; done
A=("" "http://127.0.0.1:$M1" "http://127.0.0.1:$M2" "http://127.0.0.1:$M3")
stat() { curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "$1/stats" | jq -r ".$2"; }
sum() { # sum PATH: over the nodes alive
    local t=0 v i
    for i in 1 2 3; do
        v=$(stat "${A[$i]}" "$1" 2>/dev/null)
        [[ $v =~ ^[0-9]+$ ]] && t=$((t + v))
    done
    echo "$t"
}
alive3() { [ "$(stat "$1" cluster.nodes_alive)" = 3 ]; }
for i in 1 2 3; do check "node $i sees 3 leases" poll 100 alive3 "${A[$i]}"; done

cat >"$T/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
events { worker_connections 16384; }
include $TOP/deploy/nginx/tether-udp.conf;
CONF
echo "listen 127.0.0.1:$LB udp;" >"$T/nginx/tether-listen.conf"
for id in 1 2 3; do eval "echo \"server 127.0.0.1:\$P$id max_fails=1 fail_timeout=10s;\""; done \
    >"$T/nginx/tether-nodes.conf"
check "nginx accepts deploy/nginx/tether-udp.conf" nginx -t -q -p "$T/nginx" -c "$T/nginx/nginx.conf"
nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" 2>"$T/nginx/stderr.log" &
PIDS+=("$!")
wait_log "$T/nginx/error.log" 'start worker process' 10 || note "nginx did not log its start"

# devices NAME ARGS...: a tether-bench devices run through the balancer.
devices() {
    local name=$1
    shift
    "$BENCH" devices --server "127.0.0.1:$LB" --psk-master "$MASTER" --rebind-every 3 \
        --lifetime 2 --stats-every 1 "$@" >"$T/$name.log" 2>&1 &
    PIDS+=("$!")
    printf -v "${name}_PID" %s "$!"
}
last_stats() { grep -E '^devices: (stats|final) ' "$T/$1.log" | tail -1; }
field() { sed -E "s/.* $2=([0-9]+).*/\1/" <<<"$1"; }
# quantile Q VALUES...: the Q-th percentile (nearest rank) of the values.
quantile() {
    local q=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v q="$q" '{v[NR]=$1} END {
        if (!NR) { print "-"; exit } r = int((q * NR + 99) / 100); if (r < 1) r = 1; print v[r] }'
}

# ---- 1. kill -9 ---------------------------------------------------------------
devices d12 --count "$N"
devices d13 --count "$N13" --first 1000 --dtls13
# The observed devices: a registration lifetime that outlasts the
# failover (the others' 2 s runs out while the balancer still sends to
# the dead node, which ends their observations as RFC 7641 says).
devices dobs --count "$NOBS" --first 3000 --lifetime 120
check "$N DTLS 1.2 devices register through the balancer" wait_log "$T/d12.log" "registered $N/$N" 40
check "$N13 DTLS 1.3 devices register" wait_log "$T/d13.log" "registered $N13/$N13" 40
check "$NOBS observed devices register" wait_log "$T/dobs.log" "registered $NOBS/$NOBS" 40
ckpt() { [ "$(sum sessions.checkpointed)" -ge $((N + NOBS)) ]; }
check "every DTLS 1.2 session is checkpointed in Redis" poll 100 ckpt
check "a checkpoint is a SESSION record keyed by its CID's hash tag" bash -c \
    '[ "$(redis-cli -p "$1" --scan --pattern "tether:sess:{*}" | wc -l)" -ge "$2" ]' _ "$RP" "$N"

victim=0 most=-1
for i in 1 2 3; do
    c=$(stat "${A[$i]}" sessions.compact)
    a=$(stat "${A[$i]}" sessions.active)
    eval "compact$i=$c active$i=$a"
    note "node $i holds $a sessions ($c DTLS 1.2 compact)"
    [ "$c" -gt "$most" ] && victim=$i most=$c
done
eval "k=\$compact$victim v13=\$((active$victim - compact$victim))"

# 10 observers of /temp (a new value every second), spread over the nodes:
# 7 tether-bench sessions (DTLS 1.2 with a CID) through the balancer, which
# spreads them round robin, so some have their own session on the node
# about to die, observing dev3000..dev3006 wherever their tunnels are; and
# 3 coap-client-openssl observers straight to the survivors, each of an
# observed device whose tunnel is on the node about to die.
survivors=() vdevs=() CC_PIDS=()
for i in 1 2 3; do [ "$i" != "$victim" ] && survivors+=("$i"); done
for d in $(curl -s -H "Authorization: Bearer $TOKEN" "${A[$victim]}/devices?limit=1000" |
    jq -r --argjson v "$victim" '.devices[] | select(.node == $v) | .name' |
    grep -E '^dev30[0-9][0-9]$' | sort -V | head -3); do
    vdevs+=("$d")
done
[ "${#vdevs[@]}" = 3 ] || note "only ${#vdevs[@]} of the $NOBS observed devices are on node $victim"
obs0=$(sum observe.observers)
"$BENCH" load --server "127.0.0.1:$LB" --identity app1 --psk-hex "$(printf %s "$APP" | xxd -p)" \
    --target 'dev[3000-3006]/temp' --observe --keepalive 1000 --concurrency 7 --duration 22 \
    >"$T/obs.log" 2>&1 &
PIDS+=("$!")
OBS_PID=$!
wait_log "$T/obs.log" "measuring" 10 || note "the observers did not connect"
obs_t0=$(date +%s%3N)
for j in 0 1 2; do
    port_var="P${survivors[$((j % 2))]}"
    timeout 40 coap-client-openssl -B 30 -s 26 -u app1 -k "$APP" -m get \
        -O "3,${vdevs[$j]:-${vdevs[0]:-dev3007}}" "coaps://127.0.0.1:${!port_var}/temp" \
        >"$T/cc$j.out" 2>&1 &
    PIDS+=("$!")
    CC_PIDS+=("$!")
done
# 10 observers, plus the aggregates the devices' nodes count for the
# observers on other nodes (at least one).
observing() { [ "$(sum observe.observers)" -ge $((obs0 + 11)) ]; }
check "10 observers registered (7 through the balancer, 3 on the survivors)" poll 100 observing
for i in 1 2 3; do note "node $i: observe.observers $(stat "${A[$i]}" observe.observers)," \
    "observe.device_observations $(stat "${A[$i]}" observe.device_observations)"; done
values() { grep -oE -- '-?[0-9]+\.[0-9]' "$1" 2>/dev/null | wc -l; }
has_values() { [ "$(values "$T/cc0.out")" -ge 1 ] && [ "$(values "$T/cc1.out")" -ge 1 ] &&
    [ "$(values "$T/cc2.out")" -ge 1 ]; }
check "the 3 coap-client observers receive notifications" poll 50 has_values
before=$(wait_stats "$T/d12.log" "handshakes >= $N" 5)
hs0=$(field "$before" handshakes) pings0=$(field "$before" pings) pongs0=$(field "$before" pongs)
to0=$(field "$before" registration_timeouts)
hs13=$(field "$(last_stats d13)" handshakes)
vpid_var="n${victim}_PID"
kill_ms=$(date +%s%3N)
# Reaped here, quietly: the shell's own "Killed" report goes to its
# stderr when it next checks its jobs, so that is silenced around it.
exec 3>&2 2>/dev/null
kill -9 "${!vpid_var}"
wait "${!vpid_var}"
t_kill=$SECONDS
exec 2>&3 3>&-
note "killed node $victim (kill -9) holding $k DTLS 1.2 and $v13 DTLS 1.3 sessions"

adopted() { [ "$(sum sessions.adopted)" -ge "$k" ]; }
check "a survivor adopts all $k sessions of the dead node within 10 s" poll 100 adopted
note "adopted $(sum sessions.adopted) sessions $((SECONDS - t_kill)) s after the kill"
check "exactly one survivor won the adoption (cluster.adoptions, one log line)" bash -c \
    '[ "$1" = 1 ] && [ "$(cat "$2"/n*.log | grep -c "adopted the sessions of a dead node")" = 1 ]' \
    _ "$(sum cluster.adoptions)" "$T"
winner=$(for i in 1 2 3; do [ "$i" != "$victim" ] && [ "$(stat "${A[$i]}" cluster.adoptions)" = 1 ] && echo "$i"; done)
shows_claim() {
    curl -s -H "Authorization: Bearer $TOKEN" "$1/cluster" |
        jq -e --argjson v "$2" --argjson w "$3" \
            '.nodes[] | select(.id == $v) | .state == "dead" and .adopted_by == $w' >/dev/null
}
for i in 1 2 3; do
    [ "$i" = "$victim" ] && continue
    check "node $i's GET /cluster shows node $victim dead, adopted by node ${winner:-?}" \
        poll 30 shows_claim "${A[$i]}" "$victim" "${winner:-0}"
done
# The measuring window: a device is answered again within 10 s of the kill
# or its silence runs to the end of the window (12 s) and the check fails.
while [ $((SECONDS - t_kill)) -lt 1 ]; do sleep 0.1; done
for j in 0 1 2; do eval "cc_at1_$j=$(values "$T/cc$j.out")"; done
while [ $((SECONDS - t_kill)) -lt 10 ]; do sleep 0.2; done
for j in 0 1 2; do eval "cc_at10_$j=$(values "$T/cc$j.out")"; done
while [ $((SECONDS - t_kill)) -lt 12 ]; do sleep 0.2; done
after=$(last_stats d12)
kill "$d12_PID"
wait "$d12_PID" 2>/dev/null
read -ra sil <<<"$(grep -m1 '^devices: silences_ms' "$T/d12.log" | sed 's/^devices: silences_ms//')"
hit=("${sil[@]:0:$k}") # the longest silences are the killed node's devices
p50=$(quantile 50 "${hit[@]}") p99=$(quantile 99 "${hit[@]}")
lost=$(($(field "$after" pings) - pings0 - ($(field "$after" pongs) - pongs0)))
reg_to=$(($(field "$after" registration_timeouts) - to0))
hs_caused=$(($(field "$after" handshakes) - hs0))
note "kill -9: requests lost: $lost CoAP pings of $(($(field "$after" pings) - pings0)) (one-shot" \
    "probes, not retransmitted), $reg_to registration updates (CON) failed"
note "kill -9: recovery per device of the killed node (longest silence, ms): p50 $p50, p99 $p99," \
    "max ${hit[0]:-}; includes up to one 1 s update interval"
note "kill -9: DTLS 1.2 handshakes caused: $hs_caused"
check "every DTLS 1.2 device was answered again within 10 s of the kill" \
    test "${sil[0]:-99999}" -le 10000
check "no DTLS 1.2 device handshook again" test "$hs_caused" = 0
check "no registration update (a CON, retransmitted) failed" test "$reg_to" = 0
hs13b=$(field "$(last_stats d13)" handshakes)
note "kill -9: DTLS 1.3: $v13 sessions were on the dead node; they cannot be checkpointed and" \
    "need a new handshake when their devices notice ($((hs13b - hs13)) so far, within 12 s)"
kill "$d13_PID"
wait "$d13_PID" 2>/dev/null
# Observers: the bench's longest silence between two notifications per
# session spans the kill; the coap-client ones must have new values
# between 1 s and 12 s after it (their devices' tunnels were on the dead
# node).
wait "$OBS_PID" 2>/dev/null
# Per observer, from the times its notifications came (wall clock): the
# first one after the kill, and its longest silence spanning or after the
# kill within the 12 s window (from its last notification before).
read -ra orec <<<"$(grep '^notified_at_ms' "$T/obs.log" | awk -v k="$kill_ms" '{
    last = 0; first = 0; gap = 0
    for (i = 3; i <= NF; i++) {
        t = $i; if (t > k + 12000) break
        if (t <= k) { last = t; continue }
        if (!first) first = t
        from = last ? last : k; if (t - from > gap) gap = t - from; last = t
    }
    from = last > k ? last : (last ? last : k); if (k + 12000 - from > gap) gap = k + 12000 - from
    printf "%d:%d ", first ? first - k : -1, gap }')"
ofirst=() ogap=()
for r in "${orec[@]}"; do ofirst+=("${r%%:*}") ogap+=("${r##*:}"); done
note "kill -9: observers through the balancer: first notification after the kill (ms):" \
    "${ofirst[*]}; longest silence across it (ms): ${ogap[*]}"
note "kill -9: observer recovery (longest silence, 7 observers): p50 $(quantile 50 "${ogap[@]}")" \
    "ms, max $(quantile 100 "${ogap[@]}") ms"
check "7 observers through the balancer reported" test "${#ogap[@]}" = 7
note "kill -9: observers of the dead node registered again on the adopter: $(sum observe.adopted)," \
    "relayed observations moved to it: $(sum cluster.xrelay.rehomed)"
check "the adopter took over the observers whose own sessions were on the dead node" \
    test "$(sum observe.adopted)" -ge 1
check "every observer through the balancer was notified again within 10 s of the kill" \
    test "$(quantile 100 "${ogap[@]}")" -le 10000 || note "$(tail -12 "$T/obs.log" | cut -c1-200)"
late=0
for j in 0 1 2; do
    eval "n1=\$cc_at1_$j n10=\$cc_at10_$j"
    note "coap-client observer $j of ${vdevs[$j]:-?}: $n1 values 1 s after the kill, $n10 at 10 s"
    [ "$n10" -gt "$n1" ] || late=$((late + 1))
done
check "every coap-client observer of a dead node's device was notified again within 10 s" \
    test "$late" = 0 || note "$(head -c 300 "$T"/cc*.out)"
# The observers go before their devices, so nothing waits for a device
# that is gone when the nodes drain below.
kill "${CC_PIDS[@]}" 2>/dev/null
wait "${CC_PIDS[@]}" 2>/dev/null
kill "$dobs_PID"
wait "$dobs_PID" 2>/dev/null

# The dead node comes back (same id, a new generation): records for the
# sessions it lost reach their adopter through it.
check "the killed node starts again" start_node "$victim"
for i in 1 2 3; do check "node $i sees 3 leases again" poll 100 alive3 "${A[$i]}"; done

# ---- 2. rolling restart ---------------------------------------------------------
devices roll --count "$N" --first 2000
check "$N devices register for the rolling restart" wait_log "$T/roll.log" "registered $N/$N" 40
ck0=$(sum sessions.checkpointed)
ckpt_roll() { [ "$(sum sessions.checkpointed)" -ge $((ck0 + 0)) ] &&
    [ "$(redis-cli -p "$RP" --scan --pattern 'tether:sess:{*}' | wc -l)" -ge "$N" ]; }
check "their sessions are checkpointed" poll 100 ckpt_roll
before=$(wait_stats "$T/roll.log" "handshakes >= $N" 5)
hs0=$(field "$before" handshakes) pings0=$(field "$before" pings) pongs0=$(field "$before" pongs)
to0=$(field "$before" registration_timeouts) er0=$(field "$before" registration_errors)
t_roll=$SECONDS
for id in 1 2 3; do
    pid_var="n${id}_PID"
    kill -TERM "${!pid_var}"
    exited() { ! kill -0 "$1" 2>/dev/null; }
    check "node $id hands its sessions over and exits on SIGTERM" poll 120 exited "${!pid_var}"
    grep -q 'lease released' "$T/n$id.log" || note "node $id logged no handover"
    mv "$T/n$id.log" "$T/n$id.log.$id.$SECONDS"
    check "node $id starts again" start_node "$id"
    for i in 1 2 3; do poll 100 alive3 "${A[$i]}" || note "node $i does not see 3 leases"; done
done
# Let every device speak a few times after the last restart.
wait_stats "$T/roll.log" "pings >= $(( $(field "$(last_stats roll)" pings) + 2 * N ))" 10 >/dev/null
after=$(last_stats roll)
kill "$roll_PID"
wait "$roll_PID" 2>/dev/null
read -ra sil <<<"$(grep -m1 '^devices: silences_ms' "$T/roll.log" | sed 's/^devices: silences_ms//')"
lost=$(($(field "$after" pings) - pings0 - ($(field "$after" pongs) - pongs0)))
reg_to=$(($(field "$after" registration_timeouts) - to0))
reg_er=$(($(field "$after" registration_errors) - er0))
hs_caused=$(($(field "$after" handshakes) - hs0))
note "rolling restart ($((SECONDS - t_roll)) s): handshakes $hs_caused, registration updates" \
    "failed $reg_to (errors answered $reg_er), pings lost $lost of" \
    "$(($(field "$after" pings) - pings0)); longest silence p50 $(quantile 50 "${sil[@]}") ms," \
    "p99 $(quantile 99 "${sil[@]}") ms, max ${sil[0]:-} ms"
check "rolling restart: no device handshook again" test "$hs_caused" = 0
check "rolling restart: no registration update failed" test "$reg_to" = 0
check "handed-over sessions were adopted by peers (cluster.handed_over, sessions.adopted)" \
    bash -c '[ "$(cat "$1"/n*.log* | grep -c "lease released")" -ge 3 ]' _ "$T"

finish
