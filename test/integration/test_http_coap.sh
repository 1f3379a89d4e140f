#!/usr/bin/env bash
# HTTP-to-CoAP on the admin port (RFC 8075, SPEC S4/S11): curl reaches
# simulated devices through /coap/{device}/{path} with a client's HTTP
# bearer token (its ACL applies) or the admin token; status codes,
# Content-Type, ETag/If-None-Match and binary payloads are mapped; an
# `Accept: text/event-stream` GET streams Observe notifications.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
TOK1=app1-http-token-0123456789
TOK2=app2-http-token-9876543210
TOK2_SHA=$(printf '%s' "$TOK2" | sha256sum | cut -d' ' -f1)
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client", "http_token": "$TOK1",
   "allow": [{"devices": "dev*", "methods": ["GET", "PUT", "POST", "DELETE"]}]},
  {"identity": "app2", "key_hex": "$(hex app2-secret)", "role": "client",
   "http_token_sha256": "$TOK2_SHA",
   "allow": [{"devices": "dev9*", "methods": ["GET"]}]}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "admin_token": "t0ken", "admin_coap_streams_per_identity": 2,
 "admin_coap_waiting_per_identity": 2,
 "proxy": {"request_timeout_ms": 3000}}
JSON

# The token's hash is all tetherd keeps: a short token is refused at start.
printf '{"psk": [{"identity": "x", "key_hex": "00", "role": "client", "http_token": "short"}]}' \
    >"$T/bad.json"
printf '{"credentials_file": "%s"}' "$T/bad.json" >"$T/badc.json"
out=$(timeout 10 "$TETHERD" --config "$T/badc.json" --admin 127.0.0.1:0 --listen coap://127.0.0.1:0 2>&1)
check "an http_token under 16 bytes is refused at start" grep -q 'http_token.*16' <<<"$out"

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
"$BENCH" devices --server "127.0.0.1:$n1_PORT" --count 10 --identity-prefix dev \
    --psk-master "$MASTER" >"$T/devices.log" 2>&1 &
PIDS+=("$!")
wait_log "$T/devices.log" 'registered 10/10' 30 || not_ok "10 devices register"

A1=(-H "Authorization: Bearer $TOK1")
req "${A1[@]}" "$ADMIN/coap/dev7/temp"
note "GET /coap/dev7/temp: $CODE $BODY"
check "curl GET /coap/dev7/temp with a client's token: 200 and the value" \
    bash -c '[ "$1" = 200 ] && grep -qE "^-?[0-9]+\.[0-9]" <<<"$2"' _ "$CODE" "$BODY"
check "Content-Format 0 is Content-Type text/plain; charset=utf-8" \
    grep -q '^content-type: text/plain; charset=utf-8' <<<"$HDRS"
check "Max-Age 1 is Cache-Control: max-age=1" grep -q '^cache-control: max-age=1' <<<"$HDRS"
req -H "Authorization: Bearer t0ken" "$ADMIN/coap/dev7/temp"
check "the admin token acts for every device" test "$CODE" = 200

req "$ADMIN/coap/dev7/temp"
check "no token: 401" bash -c '[ "$1" = 401 ] && grep -q "^www-authenticate: bearer" <<<"$2"' _ "$CODE" "$HDRS"
req -H "Authorization: Bearer not-a-known-token-at-all" "$ADMIN/coap/dev7/temp"
check "an unknown token: 401 invalid_token" bash -c '[ "$1" = 401 ] && grep -q invalid_token <<<"$2"' _ "$CODE" "$HDRS"
req -H "Authorization: Bearer $TOK2" "$ADMIN/coap/dev7/temp"
check "a client outside its ACL (app2: dev9* only): 403" test "$CODE" = 403
req -H "Authorization: Bearer $TOK2" "$ADMIN/coap/dev9/temp"
check "the same client inside its ACL (token given as http_token_sha256): 200" test "$CODE" = 200
req -H "Authorization: Bearer $TOK2" -X PUT -H "Content-Type: text/plain" --data 1 "$ADMIN/coap/dev9/echo"
check "a method outside its ACL (app2 PUT): 403" test "$CODE" = 403
req "${A1[@]}" "$ADMIN/coap/dev-never-seen/temp"
check "unknown device: 404" test "$CODE" = 404
req "${A1[@]}" "$ADMIN/coap/dev3/nothing-here"
check "the device's own 4.04 is 404" test "$CODE" = 404
req "${A1[@]}" -X POST -H "Content-Type: text/plain" --data x "$ADMIN/coap/dev3/temp"
check "the device's 4.05 maps to 400 (RFC 8075 §7)" test "$CODE" = 400
req "${A1[@]}" -X PUT -H 'Content-Type: image/x-unheard-of' --data x "$ADMIN/coap/dev3/echo"
check "a Content-Type without a Content-Format: 415" test "$CODE" = 415

# Binary payloads go through byte for byte (NUL, 0xff, CR LF).
printf '\x00\x01\xff\xfe\r\n\x00tether\x80' >"$T/bin"
CODE=$(curl -s --max-time 10 "${A1[@]}" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$T/bin" -o "$T/put.out" -D "$T/put.hdrs" -w '%{http_code}' "$ADMIN/coap/dev3/echo")
check "binary PUT: 2.04 with the echoed payload is 200" test "$CODE" = 200
check "the PUT answer's payload is the bytes sent" cmp -s "$T/bin" "$T/put.out"
check "Content-Format 42 is application/octet-stream" grep -qi '^content-type: application/octet-stream' "$T/put.hdrs"
curl -s --max-time 10 "${A1[@]}" -o "$T/get.out" "$ADMIN/coap/dev3/echo"
check "a GET afterwards returns the same bytes (the PUT invalidated the cache)" cmp -s "$T/bin" "$T/get.out"
curl -s --max-time 10 "${A1[@]}" -X PUT -H "Content-Type: application/coap-payload; cf=60" --data-binary @"$T/bin" -o /dev/null -D "$T/cbor.hdrs" "$ADMIN/coap/dev3/echo"
HDRS=$(tr A-Z a-z <"$T/cbor.hdrs")
check "application/coap-payload; cf=60 goes as Content-Format 60 and comes back as application/cbor" \
    grep -q '^content-type: application/cbor' <<<"$HDRS"

# Query string -> Uri-Query; ETag / If-None-Match -> validation (2.03 -> 304).
req "${A1[@]}" "$ADMIN/coap/dev4/static?a=1&b=%20x"
check "GET with a query string: 200" test "$CODE" = 200
check "the CoAP ETag s1 is ETag \"7331\"" grep -q '^etag: "7331"' <<<"$HDRS"
req "${A1[@]}" -H 'If-None-Match: "7331"' "$ADMIN/coap/dev4/static?a=1&b=%20x"
check "If-None-Match with that tag: 304 (2.03 Valid)" test "$CODE" = 304
req "${A1[@]}" -H 'If-None-Match: "0000"' "$ADMIN/coap/dev4/static?a=1&b=%20x"
check "If-None-Match with another tag: 200 and the representation" \
    bash -c '[ "$1" = 200 ] && [ "$2" = static ]' _ "$CODE" "$BODY"

# Server-sent events: one observation, a notification every second.
start=$SECONDS
timeout 10 curl -sN --max-time 6 "${A1[@]}" -H 'Accept: text/event-stream' \
    -D "$T/sse.hdrs" "$ADMIN/coap/dev5/temp" >"$T/sse.out"
n=$(grep -c '^data: ' "$T/sse.out")
note "SSE: $n events in $((SECONDS - start)) s: $(head -c 120 "$T/sse.out" | tr '\n' '|')"
check "an SSE stream receives >= 5 notifications in 6 s" test "$n" -ge 5
check "the stream is text/event-stream" grep -qi '^content-type: text/event-stream' "$T/sse.hdrs"
check "each event carries the Observe value as its id" grep -q '^id: [0-9]' "$T/sse.out"
# The client left: the observer is gone (and with it the device-side observation).
obs=""
for _ in $(seq 50); do
    obs=$(stat observe.observers)
    [ "$obs" = 0 ] && break
    sleep 0.1
done
check "the client's disconnect deregisters the observer (observe.observers 0)" test "$obs" = 0
check "... and the device-side observation is cancelled" test "$(stat observe.device_observations)" = 0

# At most admin_coap_streams_per_identity (2) streams per identity.
streams=()
for i in 1 2; do
    curl -sN --max-time 8 "${A1[@]}" -H 'Accept: text/event-stream' "$ADMIN/coap/dev6/temp" >"$T/s$i.out" &
    PIDS+=("$!")
    streams+=("$!")
done
for _ in $(seq 50); do
    [ "$(stat observe.observers)" = 2 ] && break
    sleep 0.1
done
req "${A1[@]}" -H 'Accept: text/event-stream' "$ADMIN/coap/dev6/temp"
check "a third stream of the same identity: 429" test "$CODE" = 429
req -H "Authorization: Bearer $TOK2" -H 'Accept: text/event-stream' --max-time 2 "$ADMIN/coap/dev9/temp"
check "another identity may still open one (200 streaming)" test "$CODE" = 200
# The security review: one client's token could park as many requests as
# there are admin connections (streams, or requests to a sleeping device),
# locking the operator and every other client out of the admin port. At
# most admin_coap_waiting_per_identity (2) wait per client, streams included.
req "${A1[@]}" "$ADMIN/coap/dev6/temp"
check "a plain request of a client whose 2 streams fill its waiting slots: 429" \
    bash -c '[ "$1" = 429 ] && grep -q admin_coap_waiting_per_identity <<<"$2"' _ "$CODE" "$BODY"
req -H "Authorization: Bearer $TOK2" "$ADMIN/coap/dev9/temp"
check "... while another client's request is answered" test "$CODE" = 200
req -H "Authorization: Bearer t0ken" "$ADMIN/coap/dev6/temp"
check "... and the operator's" test "$CODE" = 200
kill "${streams[@]}" 2>/dev/null
for _ in $(seq 50); do
    [ "$(stat observe.observers)" = 0 ] && break
    sleep 0.1
done
req "${A1[@]}" "$ADMIN/coap/dev6/temp"
check "once its streams end, the client's requests are answered again" test "$CODE" = 200

# Block-wise (RFC 7959): tether collects every block; the HTTP body is the whole.
awk 'BEGIN { for (i = 0; i < 4096; i++) printf "%c", 97 + i % 26 }' >"$T/big.want"
curl -s --max-time 10 "${A1[@]}" -o "$T/big.got" -w '%{http_code}' "$ADMIN/coap/dev2/big" >"$T/big.code"
check "GET /coap/dev2/big (4096 bytes, Block2) returns the whole representation" \
    bash -c '[ "$(cat "$1")" = 200 ] && cmp -s "$2" "$3"' _ "$T/big.code" "$T/big.want" "$T/big.got"
curl -s --max-time 20 "${A1[@]}" -o "$T/large.got" -D "$T/large.hdrs" "$ADMIN/coap/dev2/large"
check "GET /coap/dev2/large: 65536 bytes with the device's ETag" \
    bash -c '[ "$(stat -c %s "$1")" = 65536 ] && grep -qi "^etag: \"4c31\"" "$2"' _ "$T/large.got" "$T/large.hdrs"
check "tetherd is still up" kill -0 "$n1_PID"
finish
