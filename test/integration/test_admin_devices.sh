#!/usr/bin/env bash
# Admin device routes (SPEC S6) and the SIGTERM drain (S7) against a real
# tetherd: listing with cursor paging and filters, get, delete, and
# POST /devices/{name}/request down a real DTLS tunnel. Devices register
# with libcoap's coap-client over DTLS (it answers requests it gets with
# 4.04, which is enough for a round trip); the tether-bench section runs
# only once that binary exists.
. "$(dirname "$0")/lib.sh"

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
DEVKEY=dev-key-$$
MASTER=6d61737465722d$(hex "$$")
{
    printf '{"psk": ['
    for i in 1 2 3 4 5 6 7 8; do
        printf '{"identity": "dev%s", "key_hex": "%s", "role": "device"}, ' "$i" "$(hex "$DEVKEY")"
    done
    printf '{"identity": "app1", "key_hex": "%s", "role": "client"}],\n' "$(hex app-key)"
    printf ' "psk_derived": [{"identity_prefix": "sim", "role": "device", "master_hex": "%s"}]}\n' \
        "$MASTER"
} >"$T/creds.json"
# node_conf FILE QUEUE_TTL_MS DRAIN_TIMEOUT
node_conf() {
    cat >"$1" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "drain_timeout": $3,
 "proxy": {"queue_ttl_ms": $2, "ack_delay_ms": 0, "request_timeout_ms": 2000}}
JSON
}
TOKEN="adm-$$-$RANDOM"
export TETHER_ADMIN_TOKEN=$TOKEN
AUTH="Authorization: Bearer $TOKEN"
node_conf "$T/n1.json" 1500 10
start_tetherd n1 --config "$T/n1.json" || {
    not_ok "tetherd starts with DTLS and an admin endpoint"
    exit 1
}
A=http://127.0.0.1:$(admin_port n1)
URI=coaps://127.0.0.1:$n1_PORT

# register NAME [coap-client args...]: POST /rd?ep=NAME over DTLS as NAME.
register() {
    local name=$1
    shift
    timeout 20 coap-client-openssl -B 5 "$@" -u "$name" -k "$DEVKEY" -m post \
        "$URI/rd?ep=$name&lt=300" >/dev/null 2>&1
}
# queue_one NAME TIMEOUT_MS OUT: an operator request in the background (its
# pid in $cpid, status in OUT.code, body in OUT) for offline device NAME,
# held in the node's queue; returns once /stats counts it.
queue_one() {
    curl -s --max-time 25 -o "$3" -w '%{http_code}' -H "$AUTH" \
        -d "{\"path\": \"/temp\", \"timeout_ms\": $2}" "$A/devices/$1/request" >"$3.code" &
    cpid=$!
    for _ in $(seq 50); do
        [ "$(curl -s -H "$AUTH" "$A/stats" | jq .queue.pending)" = 1 ] && break
        sleep 0.05
    done
}
post_req() { # post_req NAME BODY [curl args...]
    local name=$1 body=$2
    shift 2
    req -H "$AUTH" -X POST -H 'Content-Type: application/json' -d "$body" "$@" \
        "$A/devices/$name/request"
}

# --- no devices yet -------------------------------------------------------------
req -H "$AUTH" "$A/devices"
check "GET /devices with none registered: 200, empty list, next_cursor null" \
    eval '[ "$CODE" = 200 ] && jqe ".devices == [] and .next_cursor == null"'
req "$A/devices"
check "GET /devices without a token: 401" is_err 401
req -H "Authorization: Bearer nope" "$A/devices/dev1"
check "GET /devices/{name} with a wrong token: 403" is_err 403
req -H "Authorization: Bearer nope" -X DELETE "$A/devices/dev1"
check "DELETE /devices/{name} with a wrong token: 403" is_err 403
req -X POST -d '{}' "$A/devices/dev1/request"
check "POST /devices/{name}/request without a token: 401" is_err 401
for q in limit=0 limit=1001 limit=abc limit= limit=5\&limit=6 online=maybe cursor=zz \
    cursor= bogus=1 limit; do
    req -H "$AUTH" "$A/devices?$q"
    check "GET /devices?$q: 400 JSON" is_err 400
done
req -H "$AUTH" "$A/devices?limit=1000&online=false&name=dev*"
check "GET /devices with limit=1000, online and name: 200" test "$CODE" = 200
req -H "$AUTH" "$A/devices/nosuch"
check "GET /devices/nosuch: 404 JSON" is_err 404
req -H "$AUTH" "$A/devices/no%20such"
check "the name in the path is percent-decoded" jqe '.detail | test("no such")'
req -H "$AUTH" "$A/devices/%zz"
check "a bad percent-escape in the name: 400" is_err 400
req -H "$AUTH" -X DELETE "$A/devices/nosuch"
check "DELETE /devices/nosuch: 404 JSON" is_err 404
post_req nosuch '{"path": "/temp"}'
check "POST /devices/nosuch/request: 404 JSON" is_err 404
req -H "$AUTH" -X PUT "$A/devices/dev1"
check "PUT /devices/{name}: 405" is_err 405
req -H "$AUTH" "$A/devices/dev1/request"
check "GET /devices/{name}/request: 405 with Allow: POST" \
    eval 'is_err 405 && grep -q "^allow: post$" <<<"$HDRS"'

post_req nosuch '{"path": '
check "a truncated JSON body: 400" is_err 400
check "the 400 names jansson's line and column" jqe '.detail | test("line 1 column [0-9]+")'
big=$(head -c 2000 /dev/zero | tr '\0' 'p')
for b in '[]' '{"method": "BREW"}' '{"bogus": 1}' '{"path": 5}' '{"query": [1]}' \
    '{"payload": "a", "payload_base64": "YQ=="}' '{"payload_base64": "!!!"}' \
    '{"timeout_ms": 5}' '{"content_format": 70000}' '{"method": "GET", "method": "PUT"}'; do
    post_req nosuch "$b"
    check "body $b: 400 JSON" is_err 400
done
post_req nosuch "{\"payload\": \"$big\"}"
check "a payload over one datagram: 413 JSON" is_err 413

# --- devices registered over DTLS (they leave: offline) ----------------------------
for i in 1 2 3 4 5; do register "dev$i"; done
req -H "$AUTH" "$A/devices"
check "five devices listed in registration order" \
    jqe '[.devices[].name] == ["dev1","dev2","dev3","dev4","dev5"] and .next_cursor == null'
check "every field is there with its type" jqe '.devices | all(
    (.name|type=="string") and (.regid|type=="string") and (.online|type=="boolean") and
    (.queue_mode|type=="boolean") and (.lifetime_s==300) and (.registered_at_ms|type=="number")
    and (.last_seen_ms|type=="number") and (.last_seen_ago_ms>=0) and (.expires_in_s<=300) and
    (.addr|test("^127\\.0\\.0\\.1:[0-9]+$")) and (.nat_binding_min_ms|type=="number") and
    (.keepalive_ms>0) and (.queued==0) and (.links|type=="string"))'
now_ms=$(date +%s%3N)
check "registered_at_ms is Unix time in ms (within a minute of now)" \
    eval 'jq -e --argjson now "$now_ms" \
        ".devices | all((.registered_at_ms - \$now) | fabs < 60000)" <<<"$BODY" >/dev/null'
check "devices that left are offline" jqe '.devices | all(.online == false)'

pages=() cursor="" full=1
for _ in 1 2 3 4 5; do
    req -H "$AUTH" "$A/devices?limit=2${cursor:+&cursor=$cursor}"
    pages+=("$(jq -c '[.devices[].name]' <<<"$BODY")")
    n=$(jq '.devices | length' <<<"$BODY")
    cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
    [ -n "$cursor" ] && [ "$n" != 2 ] && full=0
    [ -z "$cursor" ] && break
done
note "pages: ${pages[*]}"
check "paging with limit=2 and next_cursor walks all five once, in order" \
    test "${pages[*]}" = '["dev1","dev2"] ["dev3","dev4"] ["dev5"]'
check "only the last page holds fewer than limit" test "$full" = 1
req -H "$AUTH" "$A/devices?name=dev%5B24%5D"
check "name=GLOB filters (dev[24])" jqe '[.devices[].name] == ["dev2","dev4"]'
req -H "$AUTH" "$A/devices?name=dev%5B24%5D&limit=1"
c1=$(jq -r '.next_cursor // empty' <<<"$BODY")
check "filtering while paging: first page full (dev2) with a cursor" \
    eval 'jqe "[.devices[].name] == [\"dev2\"]" && [ -n "$c1" ]'
req -H "$AUTH" "$A/devices?name=dev%5B24%5D&limit=1&cursor=$c1"
check "the next filtered page is dev4" jqe '[.devices[].name] == ["dev4"]'
req -H "$AUTH" "$A/devices?online=true"
check "online=true: none" jqe '.devices == [] and .next_cursor == null'
req -H "$AUTH" "$A/devices?online=false&limit=1000"
check "online=false: all five" jqe '.devices | length == 5'

req -H "$AUTH" "$A/devices/dev3"
check "GET /devices/dev3: 200 with its fields" \
    eval '[ "$CODE" = 200 ] && jqe ".name == \"dev3\" and .online == false and .lifetime_s == 300"'
req -H "$AUTH" -X DELETE "$A/devices/dev5"
check "DELETE /devices/dev5: 200 {removed: true}" \
    eval '[ "$CODE" = 200 ] && jqe ".name == \"dev5\" and .removed == true"'
check "the removal is logged" wait_log "$n1_LOG" '"msg":"device removed","ep":"dev5"' 5
req -H "$AUTH" "$A/devices/dev5"
check "a removed device is 404" is_err 404
req -H "$AUTH" "$A/devices?cursor=$(jq -r '.regid' <<<"$(curl -s -H "$AUTH" "$A/devices/dev4")")"
check "a cursor whose successor was removed ends the listing" \
    jqe '.devices == [] and .next_cursor == null'

# An offline device: the node queues the request; its queue TTL (1.5 s)
# answers 5.04, which is HTTP 504 with the CoAP answer in the body.
post_req dev1 '{"path": "/temp", "timeout_ms": 5000}'
check "offline device, queue TTL: 504 with CoAP 5.04 in the body" \
    eval 'is_err 504 && jqe ".code == \"5.04\""'
post_req dev1 '{"path": "/temp", "timeout_ms": 300}'
check "timeout_ms before any answer: 504 'no answer'" \
    eval 'is_err 504 && jqe ".detail | test(\"no answer\")" && jqe "has(\"code\") | not"'
curl -s --max-time 0.3 -H "$AUTH" -d '{"path": "/temp", "timeout_ms": 3000}' \
    "$A/devices/dev1/request" >/dev/null
req -H "$AUTH" "$A/stats"
check "a client that leaves drops its waiting entry (admin.waiting 0)" jqe '.admin.waiting == 0'
req -H "$AUTH" "$A/health"
check "the endpoint still answers after that" test "$CODE" = 200

# A device whose tunnel is up: coap-client repeats its registration every
# second (-G) and meanwhile answers what tether relays to it (4.04: it
# serves no resources). ack_delay_ms 0 makes tether answer the operator's
# request separately (empty ACK, then a CON that tetherd must acknowledge).
register dev2 -G 8 -B 12 &
dev2_pid=$!
online=""
for _ in $(seq 50); do
    online=$(curl -s -H "$AUTH" "$A/devices/dev2" | jq -r .online)
    [ "$online" = true ] && break
    sleep 0.1
done
check "a device with its tunnel up is online" test "$online" = true
req -H "$AUTH" "$A/devices?online=true"
check "online=true lists it" jqe '[.devices[].name] == ["dev2"]'
post_req dev2 '{"method": "GET", "path": "/temp", "query": ["unit=C"]}'
check "POST /devices/dev2/request: HTTP 200 with the device's own 4.04" \
    eval '[ "$CODE" = 200 ] && jqe ".code == \"4.04\" and (.options | type == \"array\")"'
check "a text payload comes as \"payload\"" jqe '.payload | type == "string"'
post_req dev2 '{"method": "PUT", "path": "a/b", "payload_base64": "AAEC/w==", "content_format": 42}'
check "a binary PUT reaches the device (200)" eval '[ "$CODE" = 200 ] && jqe ".code == \"4.04\""'
r0=$(curl -s -H "$AUTH" "$A/stats" | jq .coap.retransmissions)
sleep 3.5 # past ACK_TIMEOUT * ACK_RANDOM_FACTOR: an unacknowledged CON would be resent
r1=$(curl -s -H "$AUTH" "$A/stats" | jq .coap.retransmissions)
check "separate responses are acknowledged on the internal link (no retransmission)" \
    test "$r0" = "$r1"
wait "$dev2_pid"

# --- tether-bench devices (S11) -------------------------------------------------------
if [ -x "$BUILD_DIR/tether-bench" ]; then
    "$BUILD_DIR/tether-bench" devices --server "127.0.0.1:$n1_PORT" --count 3 \
        --identity-prefix sim --psk-master "$MASTER" --duration 20 >"$T/bench.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        [ "$(curl -s -H "$AUTH" "$A/devices?name=sim*" | jq '.devices | length')" = 3 ] && break
        sleep 0.1
    done
    req -H "$AUTH" "$A/devices?name=sim*&online=true"
    check "tether-bench: three simulated devices online" jqe '.devices | length == 3'
    post_req sim0 '{"path": "/temp"}'
    check "GET sim0/temp: 2.05 with a payload" \
        eval '[ "$CODE" = 200 ] && jqe ".code == \"2.05\" and (.payload | length > 0)"'
    post_req sim1 '{"method": "POST", "path": "/echo", "payload": "hello tether"}'
    check "POST sim1/echo echoes the payload" jqe '.payload == "hello tether"'
    post_req sim2 '{"path": "/slow"}'
    check "GET sim2/slow: the separate response arrives" \
        eval '[ "$CODE" = 200 ] && jqe ".code | startswith(\"2.\")"'
else
    skip_needs "tether-bench devices section: $BUILD_DIR/tether-bench is not built"
fi

# --- SIGTERM drain (S7) ---------------------------------------------------------------
# n1 is idle: it drains at once and exits 0.
SECONDS=0
kill -TERM "$n1_PID"
wait "$n1_PID"
rc=$?
check "an idle node exits 0 on SIGTERM, promptly" eval '[ "$rc" = 0 ] && [ "$SECONDS" -le 3 ]'
check "it logs draining, drained, stopped" eval 'grep -q "\"msg\":\"draining\"" "$n1_LOG" &&
    grep -q "\"msg\":\"drained\"" "$n1_LOG" && grep -q "\"msg\":\"stopped\"" "$n1_LOG"'

# drain_node NAME QUEUE_TTL_MS DRAIN_TIMEOUT DEVICE WAIT_MS: a fresh node
# with one operator request queued for an offline DEVICE, then SIGTERM
# (SECONDS counts from there).
drain_node() {
    node_conf "$T/$1.json" "$2" "$3"
    start_tetherd "$1" --config "$T/$1.json" || not_ok "node $1 starts"
    local pv=${1}_PORT
    A=http://127.0.0.1:$(admin_port "$1")
    URI=coaps://127.0.0.1:${!pv}
    register "$4"
    queue_one "$4" "$5" "$T/$1.req"
    SECONDS=0
    local pid=${1}_PID
    kill -TERM "${!pid}"
}

# n2: a request in flight (queued for an offline device, TTL 2 s) finishes
# during the drain; meanwhile /ready is 503 and /health stays 200.
drain_node n2 2000 10 dev6 8000
wait_log "$n2_LOG" '"msg":"draining"' 5
req "$A/ready"
check "draining: /ready is 503 {ready: false, detail: draining}" \
    eval 'is_err 503 && jqe ".ready == false and .detail == \"draining\""'
req "$A/health"
check "draining: /health is still 200" test "$CODE" = 200
check "the draining line counts the pending relay and the waiting admin request" \
    grep -q '"msg":"draining".*"pending":"1","admin_waiting":"1"' "$n2_LOG"
wait "$cpid"
check "the request in flight completes during the drain (504 from the queue TTL)" \
    eval '[ "$(cat "$T/n2.req.code")" = 504 ] && jq -e ".code == \"5.04\"" "$T/n2.req" >/dev/null'
wait "$n2_PID"
rc=$?
check "then the node exits 0, well within drain_timeout" eval '[ "$rc" = 0 ] && [ "$SECONDS" -le 6 ]'
check "it logs drained (nothing left pending)" grep -q '"msg":"drained","pending":"0"' "$n2_LOG"

# n3: a request that outlives drain_timeout (1 s): the node stops anyway.
drain_node n3 30000 1 dev7 20000
wait "$n3_PID"
rc=$?
check "drain_timeout bounds the drain: exit 0 after about 1 s" \
    eval '[ "$rc" = 0 ] && [ "$SECONDS" -le 3 ]'
check "the timeout is logged with what was pending" \
    grep -q '"msg":"drain timeout: stopping with requests pending"' "$n3_LOG"
check "and stopped" grep -q '"msg":"stopped"' "$n3_LOG"
wait "$cpid"

printf '{\n  "drain_timeout": -1\n}\n' >"$T/bad_drain.json"
out=$("$TETHERD" --config "$T/bad_drain.json" --check-config 2>&1)
check "a bad drain_timeout names file, line and key" \
    grep -qF "bad_drain.json:2: key 'drain_timeout'" <<<"$out"

finish
