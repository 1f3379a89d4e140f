#!/usr/bin/env bash
# The proxy's response cache (SPEC S4 "Caching", RFC 7252 §5.6-5.7): real
# tetherd, simulated devices (tether-bench devices: /temp changes every
# second with Max-Age 1, /echo keeps the last POST, /static has Max-Age
# 3600) and Debian's libcoap clients.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
   "allow": [{"devices": "dev*", "methods": ["GET", "POST"]}]}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
 "credentials_file": "$T/creds.json", "admin_token": "t0ken",
 "proxy": {"request_timeout_ms": 2000}}
JSON

# Config first: the key is known, ranged, and 0 is accepted (caching off).
cfg() { printf '{"credentials_file": "%s", "proxy": {"cache_bytes": %s}}' "$T/creds.json" "$1" >"$T/c.json"
    "$TETHERD" --config "$T/c.json" --check-config 2>&1; }
check "proxy.cache_bytes 0 (caching off) is accepted" cfg 0
out=$(cfg -1)
check "a negative proxy.cache_bytes is refused, naming the key" grep -q 'cache_bytes' <<<"$out"
out=$(cfg '"64M"')
check "a string proxy.cache_bytes is refused" grep -q 'cache_bytes' <<<"$out"

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
stat() { curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/stats" | jq -r ".$1"; }
COAPS=coaps://127.0.0.1:$n1_PORT
PLAIN=coap://127.0.0.1:$PLAIN_PORT
app1() { timeout 30 coap-client-openssl -B 20 -u app1 -k app1-secret "$@" 2>&1; }
# plain DEVICE PATH [ARGS...]: a loopback plain-CoAP client (no handshake: fast)
plain() {
    local dev=$1 path=$2
    shift 2
    timeout 20 coap-client-notls -B 10 -O "3,$dev" "$@" "$PLAIN/$path" 2>&1
}

"$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
    --count 4 --stats-every 0 >"$T/fleet.log" 2>&1 &
PIDS+=("$!")
if wait_log "$T/fleet.log" 'registered 4/4' 60; then ok "4 simulated devices register"; else
    not_ok "4 simulated devices register"
    tail -5 "$T/fleet.log" | sed 's/^/#   /'
fi
check "/stats starts with proxy.cache_hits 0 and limits.cache_bytes 64 MiB" \
    test "$(stat proxy.cache_hits)/$(stat limits.cache_bytes)" = "0/67108864"

# --- freshness: two GETs within /temp's Max-Age (1 s) give the same value,
# the second from the cache. Each pair is timed; a pair slower than 0.8 s
# (a very loaded machine) is tried again rather than judged.
same=0
for try in 1 2 3; do
    h0=$(stat proxy.cache_hits)
    m0=$(stat proxy.cache_misses)
    t0=$(date +%s%N)
    v1=$(plain dev1 temp -m get)
    v2=$(plain dev1 temp -m get)
    ms=$((($(date +%s%N) - t0) / 1000000))
    note "try $try: $v1 then $v2 in $ms ms"
    [ "$ms" -lt 800 ] || { sleep 1.1; continue; } # let the entry expire, then again
    h1=$(stat proxy.cache_hits)
    m1=$(stat proxy.cache_misses)
    same=1
    break
done
if [ $same = 1 ]; then
    check "GET dev1/temp returns a temperature" grep -qE '^[0-9]+\.[0-9]$' <<<"$v1"
    check "a second GET within Max-Age returns the same value" test "$v1" = "$v2"
    check "... answered from the cache (proxy.cache_hits +1, cache_misses +1 for the first)" \
        test "$((h1 - h0))/$((m1 - m0))" = "1/1"
else
    not_ok "two GETs within Max-Age (never managed both within 0.8 s)"
fi

# --- expiry: once Max-Age has passed the device is asked again. Its value
# changes every second, so the answer is new.
sleep 1.2 # waiting out /temp's Max-Age (1 s) is the point of the check
m0=$(stat proxy.cache_misses)
v3=$(plain dev1 temp -m get)
note "after Max-Age: $v3"
check "after Max-Age the GET reaches the device (cache_misses +1)" test "$(stat proxy.cache_misses)" = $((m0 + 1))
check "... and brings the device's new value" test "$v3" != "$v1"

# --- invalidation: /echo has no Max-Age (cacheable for 60 s); a POST makes
# the next GET go to the device instead of serving the old payload.
out=$(plain dev2 echo -m post -e 'first')
check "POST dev2/echo 'first'" grep -qx first <<<"$out"
check "GET dev2/echo returns 'first'" test "$(plain dev2 echo -m get)" = first
h0=$(stat proxy.cache_hits)
check "GET dev2/echo again returns 'first'" test "$(plain dev2 echo -m get)" = first
check "... from the cache" test "$(stat proxy.cache_hits)" = $((h0 + 1))
i0=$(stat proxy.cache_invalidations)
plain dev2 echo -m post -e 'second' >/dev/null
check "after POST 'second', GET dev2/echo returns 'second', not the cached 'first'" \
    test "$(plain dev2 echo -m get)" = second
check "proxy.cache_invalidations counted it" test "$(stat proxy.cache_invalidations)" -gt "$i0"

# --- one cache for every client: a plain client fills it, a DTLS client
# (PSK) hits it. libcoap's forward-proxy requests (Proxy-Uri) carry
# Hop-Limit 16, which is part of the cache key (RFC 8768 §3): they share
# an entry among themselves.
check "GET dev3/static (plain) returns 'static'" test "$(plain dev3 static -m get)" = static
h0=$(stat proxy.cache_hits)
r0=$(stat proxy.requests)
out=$(app1 -m get -O 3,dev3 "$COAPS/static")
check "a DTLS client gets dev3/static" test "$out" = static
check "... from the cache: cache_hits +1, nothing relayed" \
    test "$(($(stat proxy.cache_hits) - h0))/$(($(stat proxy.requests) - r0))" = 1/0
fwd() { timeout 20 coap-client-notls -B 10 -m get -P "$PLAIN" coap://dev3/static 2>&1; }
check "a Proxy-Uri client gets dev3/static" test "$(fwd)" = static
h0=$(stat proxy.cache_hits)
check "a second Proxy-Uri client gets dev3/static" test "$(fwd)" = static
check "... from the cache" test "$(stat proxy.cache_hits)" = $((h0 + 1))
# The served Max-Age is what is left of the device's 3600 s.
out=$(plain dev3 static -m get -v 8)
ma=$(grep -oE 'Max-Age:[0-9]+' <<<"$out" | head -1 | cut -d: -f2)
note "served Max-Age: ${ma:-none}"
check "a hit carries the remaining Max-Age (<= 3600, > 3500)" \
    bash -c '[ -n "$1" ] && [ "$1" -le 3600 ] && [ "$1" -gt 3500 ]' _ "$ma"

# --- a device that went silent: what was cached is still served at once;
# what was not gets 5.04 after the request timeout.
"$BENCH" devices --server "127.0.0.1:$n1_PORT" --identity-prefix dev --psk-master "$MASTER" \
    --count 1 --first 500 --stats-every 0 >"$T/lone.log" 2>&1 &
lone=$!
PIDS+=("$lone")
wait_log "$T/lone.log" 'registered 1/1' 30 || not_ok "dev500 registers"
check "GET dev500/static while it is up" test "$(plain dev500 static -m get)" = static
kill -KILL "$lone"
wait "$lone" 2>/dev/null
t0=$(date +%s%N)
out=$(plain dev500 static -m get)
ms=$((($(date +%s%N) - t0) / 1000000))
check "dev500 killed: /static still answered from the cache (${ms} ms)" test "$out" = static
out=$(plain dev500 temp -m get)
check "... /temp, never cached, gets 5.04" grep -qF '5.04' <<<"$out"

# --- the counters operators see
check "/stats: proxy.cache_entries and cache_bytes are non-zero" \
    bash -c '[ "$1" -gt 0 ] && [ "$2" -gt 0 ]' _ "$(stat proxy.cache_entries)" "$(stat proxy.cache_bytes)"
metrics=$(curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/metrics")
hits=$(stat proxy.cache_hits)
check "/metrics: tether_proxy_cache_hits_total is a counter equal to /stats ($hits)" \
    bash -c 'grep -qx "# TYPE tether_proxy_cache_hits_total counter" <<<"$1" &&
             grep -qx "tether_proxy_cache_hits_total $2" <<<"$1"' _ "$metrics" "$hits"
check "/config shows proxy.cache_bytes" test "$(curl -s -H 'Authorization: Bearer t0ken' "$ADMIN/config" | jq -r .proxy.cache_bytes)" = 67108864

finish
