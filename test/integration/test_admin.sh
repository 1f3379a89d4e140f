#!/usr/bin/env bash
# Admin endpoint (SPEC S6) against a real tetherd: routes, bearer auth,
# JSON errors, limits, keep-alive and pipelining, runtime log level,
# secret redaction, and a strict check of the Prometheus exposition.
. "$(dirname "$0")/lib.sh"

out=$("$TETHERD" --admin nonsense --check-config 2>&1)
check "a bad --admin is refused by --check-config, naming the key" grep -qF "key 'admin'" <<<"$out"
printf '{\n  "admin": "127.0.0.1:0",\n  "admin_max_connections": 0\n}\n' >"$T/bad_max.json"
out=$("$TETHERD" --config "$T/bad_max.json" --check-config 2>&1)
check "admin_max_connections out of range names file, line and key" \
    grep -qF "bad_max.json:3: key 'admin_max_connections'" <<<"$out"
printf '{\n  "admin_idle_timeout": "30"\n}\n' >"$T/bad_idle.json"
out=$("$TETHERD" --config "$T/bad_idle.json" --check-config 2>&1)
check "a non-integer admin_idle_timeout names file, line and key" \
    grep -qF "bad_idle.json:2: key 'admin_idle_timeout'" <<<"$out"

TOKEN="adm-$$-$RANDOM-secret-token"
CKEY="cluster-$$-$RANDOM-key"
export TETHER_ADMIN_TOKEN=$TOKEN TETHER_CLUSTER_KEY=$CKEY
start_tetherd a1 --listen coap://127.0.0.1:0 --admin 127.0.0.1:0 || {
    not_ok "tetherd starts with an admin endpoint"
    exit 1
}
unset TETHER_ADMIN_TOKEN TETHER_CLUSTER_KEY
APORT=$(admin_port a1)
A=http://127.0.0.1:$APORT
AUTH="Authorization: Bearer $TOKEN"
note "admin on $A"
check "the admin port is logged" test -n "$APORT"
l_admin=$(grep -n '"component":"admin","msg":"listening"' "$a1_LOG" | cut -d: -f1)
l_ready=$(grep -n '"msg":"ready"' "$a1_LOG" | cut -d: -f1)
check "the admin listening line comes before ready" test "${l_admin:-99}" -lt "${l_ready:-0}"


# --- liveness and readiness: no auth -----------------------------------------
req "$A/health"
check "GET /health without auth is 200 {\"status\":\"ok\"}" \
    eval '[ "$CODE" = 200 ] && jqe ".status == \"ok\""'
req "$A/ready"
check "GET /ready without auth is 200 {\"ready\":true}" \
    eval '[ "$CODE" = 200 ] && jqe ".ready == true"'
check "/ready reports the listeners that are up" jqe '.listeners == 1'

# --- auth ---------------------------------------------------------------------
req "$A/stats"
check "no Authorization header: 401 JSON" is_err 401
check "401 carries WWW-Authenticate: Bearer" grep -q '^www-authenticate: bearer' <<<"$HDRS"
req -H "Authorization: Basic dXNlcjpwYXNz" "$A/stats"
check "a non-Bearer Authorization header: 401" is_err 401
req -H "Authorization: Bearer wrong-$TOKEN" "$A/stats"
check "a wrong token: 403 JSON" is_err 403
req -H "Authorization: Bearer ${TOKEN%?}" "$A/stats"
check "a token prefix: 403" is_err 403
req -H "authorization: bearer $TOKEN" "$A/stats"
check "the scheme is case-insensitive" test "$CODE" = 200
req "$A/metrics"
check "/metrics needs auth too" is_err 401
# A peer guessing tokens: every guess counted, the log not flooded.
for i in $(seq 40); do
    curl -s -o /dev/null -H "Authorization: Bearer guess-$i" "$A/stats"
done
fails=$(curl -s -H "$AUTH" "$A/stats" | jq -r '.admin.auth_failures')
lines=$(grep -c '"msg":"wrong token"' "$a1_LOG")
check "42 wrong tokens: admin.auth_failures = 42 ($fails), at most 10 log lines ($lines)" \
    bash -c '[ "$1" = 42 ] && [ "$2" -le 10 ] && [ "$2" -ge 1 ]' _ "$fails" "$lines"

# --- /stats -------------------------------------------------------------------
S11="sessions.active sessions.handshakes_full sessions.handshakes_resumed sessions.address_changes
devices.registered proxy.requests proxy.cache_hits proxy.cache_misses observe.device_observations
observe.observers observe.notifications_sent queue.pending cluster.nodes_alive
cluster.forwarded_records memory.rss_bytes"
req -H "$AUTH" "$A/stats"
check "GET /stats is 200 JSON" eval '[ "$CODE" = 200 ] && jqe "type == \"object\""'
missing=""
for p in $S11; do
    jq -e --arg p "$p" 'getpath($p | split(".")) | type == "number"' <<<"$BODY" >/dev/null ||
        missing="$missing $p"
done
[ -z "$missing" ] || note "missing from /stats:$missing"
check "every S11 stats path exists and is a number" test -z "$missing"
check "memory.rss_bytes is read from /proc (> 0)" jqe '.memory.rss_bytes > 0'

# --- /metrics -----------------------------------------------------------------
cat >"$T/prom.awk" <<'AWK'
# Strict Prometheus text format 0.0.4: every line is "# HELP name text",
# "# TYPE name type" or "name{labels} value [timestamp]"; a family's TYPE
# comes before its samples, each family's lines are contiguous, and no
# name, HELP, TYPE or sample repeats.
function fail(why) { printf "line %d: %s: %s\n", NR, why, $0; bad = 1 }
function family(n,    b) {
    if (n in type) return n
    b = n
    if (sub(/_(bucket|sum|count)$/, "", b) && (b in type) &&
        (type[b] == "histogram" || type[b] == "summary")) return b
    return ""
}
function enter(f) {
    if (f != cur && (f in closed)) fail("family " f " is not contiguous")
    if (f != cur && cur != "") closed[cur] = 1
    cur = f
}
/^# HELP / {
    if (!match($0, /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]*( |$)/)) { fail("bad HELP"); next }
    n = $3; text = substr($0, length("# HELP " n) + 2)
    gsub(/\\\\|\\n/, "", text)
    if (index(text, "\\")) fail("bad escape in HELP")
    if (n in help) fail("second HELP for " n)
    if (n in sampled) fail("HELP after samples of " n)
    help[n] = 1; enter(n); next
}
/^# TYPE / {
    if ($0 !~ /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/) {
        fail("bad TYPE"); next
    }
    n = $3
    if (n in type) fail("second TYPE for " n)
    if (n in sampled) fail("TYPE after samples of " n)
    type[n] = $4; enter(n); next
}
/^#/ { fail("comment that is neither HELP nor TYPE"); next }
{
    line = $0
    if (!match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { fail("bad metric name"); next }
    n = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1); labels = ""
    if (substr(rest, 1, 1) == "{") {
        if (!match(rest, /^\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*")*,?)?\}/)) {
            fail("bad label set"); next
        }
        labels = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
    }
    if (rest !~ /^ [^ ]+( -?[0-9]+)?$/) { fail("expected ' value [timestamp]'"); next }
    split(substr(rest, 2), part, " ")
    v = part[1]
    if (v !~ /^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$/ &&
        v !~ /^[-+]?Inf$/ && v != "NaN") {
        fail("bad value"); next
    }
    f = family(n)
    if (f == "") { fail("sample without a TYPE line before it"); next }
    enter(f)
    if ((n labels) in seen) fail("duplicate sample")
    seen[n labels] = 1; sampled[f] = 1; samples++
}
END {
    if (NR == 0 || samples == 0) { print "no samples"; bad = 1 }
    exit bad
}
AWK
prom_ok() { # prom_ok FILE: the checker accepts FILE, which ends with a newline
    [ -s "$1" ] && [ "$(tail -c1 "$1" | od -An -c | tr -d ' ')" = '\n' ] &&
        awk -f "$T/prom.awk" "$1" >"$T/prom.out"
}
prom_bad() { ! prom_ok "$1"; }

# The checker itself must refuse broken expositions.
printf '# TYPE a counter\na 1\n' >"$T/p_good"
printf 'a 1\n' >"$T/p_notype"
printf '# TYPE a gauge\na one\n' >"$T/p_value"
printf '# TYPE 1a gauge\n1a 1\n' >"$T/p_name"
printf '# TYPE a gauge\na{l="x} 1\n' >"$T/p_label"
printf '# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n# random comment\n' >"$T/p_order"
printf '# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\na 3\n' >"$T/p_split"
printf '# TYPE a gauge\na 1' >"$T/p_eol"
check "the checker accepts a minimal exposition" prom_ok "$T/p_good"
check "the checker refuses a sample without TYPE" prom_bad "$T/p_notype"
check "the checker refuses a non-float value" prom_bad "$T/p_value"
check "the checker refuses a bad metric name" prom_bad "$T/p_name"
check "the checker refuses a broken label set" prom_bad "$T/p_label"
check "the checker refuses stray comments" prom_bad "$T/p_order"
check "the checker refuses a split family" prom_bad "$T/p_split"
check "the checker refuses a missing final newline" prom_bad "$T/p_eol"

req -H "$AUTH" "$A/metrics"
check "GET /metrics is 200" test "$CODE" = 200
check "/metrics is text/plain; version=0.0.4" \
    grep -q '^content-type: text/plain; version=0.0.4' <<<"$HDRS"
if prom_ok "$T/body"; then ok "/metrics passes the strict exposition-format check"; else
    not_ok "/metrics passes the strict exposition-format check"
    sed 's/^/#   /' "$T/prom.out" | head -20
fi
missing=""
for p in $S11; do
    m="tether_${p//./_}"
    grep -qE "^# TYPE ${m}(_total)? (counter|gauge)$" "$T/body" || missing="$missing $m"
done
[ -z "$missing" ] || note "missing from /metrics:$missing"
check "every S11 stat is a typed metric" test -z "$missing"
check "counters are typed counter with _total" \
    grep -qx '# TYPE tether_proxy_requests_total counter' "$T/body"
check "gauges are typed gauge" grep -qx '# TYPE tether_sessions_active gauge' "$T/body"
check "a labelled sample: tether_node_info" grep -qx 'tether_node_info{node_id="1"} 1' "$T/body"

# --- /config: effective values, secrets redacted ------------------------------
req -H "$AUTH" "$A/config"
check "GET /config is 200 JSON" eval '[ "$CODE" = 200 ] && jqe ".admin == \"127.0.0.1:0\""'
check "/config redacts admin_token as ***" jqe '.admin_token == "***"'
check "/config redacts cluster_key as ***" jqe '.cluster_key == "***"'
check "/config shows the effective log level" jqe '.log_level == "info"'
check "the token never appears in /config" eval '! grep -qF "$TOKEN" "$T/body"'
check "the cluster key never appears in /config" eval '! grep -qF "$CKEY" "$T/body"'

# --- errors --------------------------------------------------------------------
req -H "$AUTH" "$A/nope"
check "unknown route: 404 JSON" is_err 404
req "$A/stats/extra"
check "a longer path is not a route: 404" is_err 404
req -H "$AUTH" -X POST -d '{}' "$A/stats"
check "wrong method: 405 JSON" is_err 405
check "405 carries Allow: GET, HEAD" grep -q '^allow: get, head$' <<<"$HDRS"
req -X DELETE "$A/health"
check "DELETE /health: 405" is_err 405
req -H "$AUTH" -X POST "$A/devices/dev1"
check "POST /devices/{name}: 405" is_err 405
req -H "$AUTH" "$A/observations"
check "GET /observations without observers: 200, none" \
    eval '[ "$CODE" = 200 ] && jqe ".count == 0 and .observations == []"'
req -H "$AUTH" "$A/coap/dev1/temp"
check "GET /coap/dev1/temp of a device never seen: 404 (HTTP-to-CoAP, the node's 4.04)" \
    bash -c '[ "$1" = 404 ] && [ "$2" = "unknown device" ]' _ "$CODE" "$BODY"
req -H "$AUTH" "$A/cluster"
check "GET /cluster without Redis: static membership, this node alive, redis off" \
    jqe '.membership == "static" and .redis == "off" and ([.nodes[] | select(.self and .state == "alive")] | length == 1)'
req -H "$AUTH" -X PUT -d '{}' "$A/credentials/app1"
check "PUT /credentials/{identity} without Redis: 501 (edit the file, SIGHUP)" is_err 501
req "$A/coap/dev1/temp"
check "unimplemented routes still need auth: 401" is_err 401
req "$A/observations"
check "GET /observations needs auth: 401" is_err 401

# --- log level at runtime --------------------------------------------------------
req -H "$AUTH" "$A/log-level"
check "GET /log-level is info" eval '[ "$CODE" = 200 ] && jqe ".level == \"info\""'
req -H "$AUTH" -X PUT -H 'Content-Type: application/json' -d '{"level": "debug"' "$A/log-level"
check "bad JSON body: 400 JSON" is_err 400
check "the 400 detail has jansson's line and column" jqe '.detail | test("line 1 column [0-9]+")'
req -H "$AUTH" -X PUT -d '{"level": "loud"}' "$A/log-level"
check "an unknown level: 400" is_err 400
req -H "$AUTH" -X PUT -d '["debug"]' "$A/log-level"
check "a body that is not {\"level\":...}: 400" is_err 400
before=$(grep -c '"level":"debug"' "$a1_LOG")
req -H "$AUTH" -X PUT -d '{"level": "debug"}' "$A/log-level"
check "PUT /log-level debug: 200" \
    eval '[ "$CODE" = 200 ] && jqe ".level == \"debug\" and .previous == \"info\""'
curl -s --max-time 5 -o /dev/null "$A/health"
check "a following request logs at debug" \
    wait_log "$a1_LOG" '"level":"debug","component":"admin","msg":"request".*"path":"/health"' 5
check "the debug line carries no token" eval '! grep -qF "$TOKEN" "$a1_LOG"'
req -H "$AUTH" -X PUT -H 'Expect: 100-continue' -d '{"level": "info"}' "$A/log-level"
check "PUT with Expect: 100-continue works (back to info)" eval '[ "$CODE" = 200 ]'
n1=$(grep -c '"level":"debug"' "$a1_LOG")
curl -s --max-time 5 -o /dev/null "$A/health"
curl -s --max-time 5 -o /dev/null "$A/ready"
n2=$(grep -c '"level":"debug"' "$a1_LOG")
check "back at info no debug lines follow" test "$n1" = "$n2"
check "debug lines appeared only while debug was on" test "$n1" -gt "$before"

# --- limits ------------------------------------------------------------------------
head -c 70000 /dev/zero | tr '\0' 'x' >"$T/big"
req -H "$AUTH" -X PUT --data-binary @"$T/big" "$A/log-level"
check "a 70 KB body: 413 JSON" is_err 413
req -H "$AUTH" -H "X-Pad: $(head -c 70000 /dev/zero | tr '\0' 'y')" "$A/stats"
check "70 KB of header: 413 JSON" is_err 413
req -H "$AUTH" --max-time 10 "$A/$(head -c 9000 /dev/zero | tr '\0' 'u')"
check "a 9 KB request-target: 414" is_err 414

# raw TCP: send bytes, read until the server closes (bounded).
raw() { # raw BYTES: prints the answer
    exec {fd}<>"/dev/tcp/127.0.0.1/$APORT"
    printf '%b' "$1" >&"$fd"
    timeout 5 cat <&"$fd"
    local rc=$?
    exec {fd}>&-
    return $rc
}
out=$(raw 'GARBAGE\r\n\r\n')
check "malformed HTTP: 400 then close" eval 'grep -q "^HTTP/1.1 400 " <<<"$out"'
check "the 400 says Connection: close" grep -qi '^connection: close' <<<"$out"
out=$(raw 'GET /health HTTP/1.1\r\n\r\n')
check "HTTP/1.1 without Host: 400" grep -q '^HTTP/1.1 400 ' <<<"$out"
out=$(raw 'HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
check "HEAD /health: 200, the GET length, no body" \
    eval 'grep -q "^HTTP/1.1 200 " <<<"$out" && grep -qi "^content-length: 16" <<<"$out" &&
          ! grep -q "{" <<<"$out"'

# --- keep-alive and pipelining --------------------------------------------------------
curl -sv --max-time 10 -H "$AUTH" "$A/health" "$A/stats" >"$T/ka.out" 2>"$T/ka.err"
check "keep-alive: two requests on one connection" \
    grep -q 'Re-using existing connection' "$T/ka.err"
check "keep-alive: both answered" eval '[ "$(grep -c "^< HTTP/1.1 200" "$T/ka.err")" = 2 ]'
pipe="GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
pipe+="GET /log-level HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\n"
pipe+="Connection: close\r\n\r\n"
out=$(raw "$pipe")
order=$(grep -o '{"status":"ok"}\|{"ready":true\|{"level":"info"}' <<<"$out" | tr '\n' ' ')
check "pipelined requests are answered in order" \
    test "$order" = '{"status":"ok"} {"ready":true {"level":"info"} '
check "Connection: close ends the connection" test "$(grep -c '^HTTP/1.1 200' <<<"$out")" = 3
out=$(raw 'GET /health HTTP/1.0\r\n\r\n')
check "HTTP/1.0 is answered and closed" grep -q '^HTTP/1.1 200 ' <<<"$out"

# --- no token, connection limit, idle timeout (second node) ----------------------------
cat >"$T/b1.json" <<'JSON'
{"listen": ["coap://127.0.0.1:0"], "admin": "127.0.0.1:0",
 "admin_max_connections": 2, "admin_idle_timeout": 2}
JSON
start_tetherd b1 --config "$T/b1.json" || not_ok "a second node starts"
B=http://127.0.0.1:$(admin_port b1)
check "no token configured: a warning is logged" grep -q 'admin_token not configured' "$b1_LOG"
req "$B/health"
check "no token: /health still 200" test "$CODE" = 200
req "$B/ready"
check "no token: /ready still 200" test "$CODE" = 200
req -H "Authorization: Bearer anything" "$B/stats"
check "no token: /stats is 403 'admin_token not configured'" \
    eval 'is_err 403 && jqe ".detail == \"admin_token not configured\""'
req "$B/config"
check "no token: /config is 403 too" is_err 403

BPORT=$(admin_port b1)
exec {c1}<>"/dev/tcp/127.0.0.1/$BPORT"
exec {c2}<>"/dev/tcp/127.0.0.1/$BPORT"
req "$B/health"
check "over admin_max_connections: 503 JSON" is_err 503
exec {c1}>&- {c2}>&-
# health_200 URL: GET URL/health until it is 200 (closed connections take a
# moment to free their slots), at most 2 s.
health_200() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        req "$1/health"
        [ "$CODE" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}
check "closed connections free their slots" health_200 "$B"

exec {c3}<>"/dev/tcp/127.0.0.1/$BPORT"
SECONDS=0
timeout 8 cat <&"$c3" >/dev/null
rc=$?
exec {c3}>&-
check "an idle connection is closed after admin_idle_timeout" \
    eval '[ "$rc" = 0 ] && [ "$SECONDS" -le 5 ]'
exec {c4}<>"/dev/tcp/127.0.0.1/$BPORT"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&"$c4"
out=$(timeout 8 cat <&"$c4")
exec {c4}>&-
check "a request left unfinished gets 408" grep -q '^HTTP/1.1 408 ' <<<"$out"

# --- connections per address (third node) --------------------------------------------------
# The security review: one host that opens connections and never finishes a
# request held every admin connection (the operator's, the probes', every
# HTTP client's) for admin_idle_timeout, again and again.
cat >"$T/b2.json" <<'JSON'
{"listen": ["coap://127.0.0.1:0"], "admin": "127.0.0.1:0",
 "admin_max_connections": 8, "admin_max_connections_per_address": 2}
JSON
start_tetherd b2 --config "$T/b2.json" || not_ok "a third node starts"
B2PORT=$(admin_port b2)
exec {d1}<>"/dev/tcp/127.0.0.1/$B2PORT"
exec {d2}<>"/dev/tcp/127.0.0.1/$B2PORT"
req "http://127.0.0.1:$B2PORT/health"
check "a third connection from 127.0.0.1: 503 admin_max_connections_per_address" \
    eval 'is_err 503 && jqe ".detail | test(\"admin_max_connections_per_address\")"'
req --interface 127.0.0.2 "http://127.0.0.1:$B2PORT/health"
check "... while another address (127.0.0.2) is answered" test "$CODE" = 200
exec {d1}>&- {d2}>&-
check "once they close, 127.0.0.1 is answered again" health_200 "http://127.0.0.1:$B2PORT"

# --- shutdown with an admin connection open ------------------------------------------------
exec {c5}<>"/dev/tcp/127.0.0.1/$APORT"
kill -TERM "$a1_PID"
check "SIGTERM stops tetherd with an admin connection open" \
    wait_log "$a1_LOG" '"msg":"stopped"' 10
exec {c5}>&-
check "the token never appears in the log" eval '! grep -qF "$TOKEN" "$a1_LOG"'

finish
