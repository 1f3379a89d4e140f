#!/usr/bin/env bash
# Group requests (draft-ietf-core-groupcomm-proxy-07, SPEC S4/S11): a
# client names a group in Uri-Host with a Multicast-Timeout T'; tether fans
# the request out to every member's tunnel and returns each response on
# its own with a Reply-From naming the device, until T'. A small raw-UDP
# CoAP client (data/coap_group_client.py) collects the many responses
# libcoap's coap-client cannot; libcoap's DTLS client checks the ACL.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
CLIENT=(python3 "$(dirname "$0")/data/coap_group_client.py")

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
MASTER=00112233445566778899aabbccddeeff
cat >"$T/creds.json" <<JSON
{"psk": [
  {"identity": "app1", "key_hex": "$(hex app1-secret)", "role": "client",
   "allow": [{"devices": "dev*"}, {"groups": "all*", "methods": ["GET"]}]},
  {"identity": "app2", "key_hex": "$(hex app2-secret)", "role": "client",
   "allow": [{"devices": "dev*"}]}
 ],
 "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"},
                 {"identity_prefix": "late", "role": "device", "master_hex": "$MASTER"}]}
JSON
cat >"$T/groups.json" <<JSON
{"groups": {"all": {"pattern": "dev*"}, "mixed": {"members": ["dev0", "dev1", "late0", "gone"]}}}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "groups_file": "$T/groups.json", "admin_token": "t0ken",
 "proxy": {"group_pacing_burst": 4, "group_pacing_interval_ms": 20}}
JSON

printf '{"groups": {"bad": {"members": [], "pattern": "x"}}}' >"$T/badg.json"
printf '{"groups_file": "%s", "listen": ["coap://127.0.0.1:0"]}' "$T/badg.json" >"$T/badc.json"
out=$(timeout 10 "$TETHERD" --config "$T/badc.json" --admin 127.0.0.1:0 2>&1)
check "a bad groups_file stops tetherd at start, naming the group" grep -q 'group bad' <<<"$out"

start_tetherd n1 --config "$T/tether.json" || { not_ok "tetherd starts"; exit 1; }
PLAIN_PORT=$(grep '"msg":"listening"' "$n1_LOG" | grep '"proto":"coap"' | sed -E 's/.*"port":"([0-9]+)".*/\1/')
ADMIN=http://127.0.0.1:$(admin_port n1)
AUTH=(-H 'Authorization: Bearer t0ken')
stat() { curl -s "${AUTH[@]}" "$ADMIN/stats" | jq -r ".$1"; }
jqs() { jq -se "$1" "$2" >/dev/null; } # jqs FILTER FILE: the JSON lines of FILE satisfy FILTER
start_dev() {
    "$BENCH" devices --server "127.0.0.1:$n1_PORT" --psk-master "$MASTER" "$@" >>"$T/dev.log" 2>&1 &
    PIDS+=("$!")
}
start_dev --count 20 --identity-prefix dev
start_dev --count 1 --identity-prefix late --response-delay 2500
for _ in $(seq 100); do
    [ "$(stat devices.registered)" = 21 ] && break
    sleep 0.2
done
check "21 devices register (20 dev*, one late0 answering after 2.5 s)" test "$(stat devices.registered)" = 21

# The 20-member group by pattern, T' = 2 s.
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host all --path temp --timeout 2 >"$T/all.out"
n=$(wc -l <"$T/all.out")
distinct=$(jq -r .reply_from "$T/all.out" | sort -u | grep -c '^dev')
note "group 'all': $n responses, $distinct distinct Reply-From, last at $(jq -s 'map(.t) | max' "$T/all.out") s"
check "a group GET to 20 devices returns 20 responses" test "$n" = 20
check "... with 20 distinct Reply-From values (dev0..dev19)" test "$distinct" = 20
check "... every one a 2.05 NON with the value, within T' (2 s)" \
    jqs 'all(.code == "2.05" and .type == "NON" and (.payload | test("^-?[0-9]+\\.[0-9]")) and .t < 2)' "$T/all.out"
check "... and the CON request was acknowledged first" jqs 'all(.acked)' "$T/all.out"
check "... paced (burst 4 every 20 ms): the last answer comes after 60 ms" \
    jqs 'map(.t) | max >= 0.06' "$T/all.out"
check "... the Multicast-Timeout is not forwarded (no option 2 in the answers)" \
    jqs 'all(.options | has("2") | not)' "$T/all.out"

# A member answering after T' is not forwarded; an unregistered one is skipped.
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host mixed --path temp --timeout 1 --listen 4 >"$T/mixed.out"
note "group 'mixed': $(jq -c '[.reply_from, .t]' "$T/mixed.out" | tr '\n' ' ')"
check "group of dev0, dev1, late0 (2.5 s), gone: dev0 and dev1 answer within T' = 1 s" \
    test "$(jq -r .reply_from "$T/mixed.out" | sort | tr '\n' ' ')" = "dev0 dev1 "
check "late0's response after T' is dropped (nothing more in 4 s)" test "$(wc -l <"$T/mixed.out")" = 2
check "groups.members_unanswered counts it" test "$(stat groups.members_unanswered)" -ge 1

# Errors (draft §3.2).
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host all --path temp --no-timeout --listen 2 >"$T/nomt.out"
check "no Multicast-Timeout: one 4.00" bash -c '[ "$(wc -l <"$1")" = 1 ] && jq -e ".code == \"4.00\"" "$1" >/dev/null' _ "$T/nomt.out"
check "... carrying a Multicast-Timeout of value 0 (empty) and a diagnostic" \
    jqs '.[0].options["2"] == "" and (.[0].payload | test("Multicast-Timeout"))' "$T/nomt.out"
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host all --path temp --timeout 0 --listen 2 >"$T/zero.out"
check "T' = 0: the request goes out, no response comes back" test ! -s "$T/zero.out"
COAPS=coaps://127.0.0.1:$n1_PORT
out=$(timeout 20 coap-client-openssl -B 5 -u app2 -k app2-secret -m get -O 3,all -O 2,0x02 "$COAPS/temp" 2>&1)
check "a DTLS client without a \"groups\" ACL rule: 4.03" grep -qF '4.03' <<<"$out"
out=$(timeout 20 coap-client-openssl -B 5 -u app1 -k app1-secret -m get -O 3,all "$COAPS/temp" 2>&1)
check "a DTLS client allowed the group, without Multicast-Timeout: 4.00" grep -qF '4.00' <<<"$out"
out=$(timeout 20 coap-client-openssl -B 3 -u app1 -k app1-secret -m get -O 3,all -O 2,0x01 "$COAPS/temp" 2>&1)
check "... and with it, it gets a member's response (libcoap shows the first)" grep -qE '^-?[0-9]+\.[0-9]' <<<"$out"
out=$(timeout 20 coap-client-openssl -B 5 -u app1 -k app1-secret -m put -e 1 -O 3,all -O 2,0x01 "$COAPS/temp" 2>&1)
check "... but not with a method its group rule lacks (PUT): 4.03" grep -qF '4.03' <<<"$out"

# Observe on a group (draft §3.2.2, §3.5.2): tether observes every member,
# sharing the device-side observation with a direct observer of the same
# resource, and forwards each member's notifications with its Reply-From,
# past T', until the client goes (its -s ends its DTLS session).
obs_stat() { stat "observe.$1"; }
obs_is() { test "$(obs_stat "$1")" = "$2"; } # for poll, which re-runs it
timeout 20 coap-client-openssl -v 6 -s 9 -B 11 -u app1 -k app1-secret -m get -O 3,dev0 \
    "$COAPS/temp" >"$T/direct.out" 2>&1 &
DIRECT=$!
PIDS+=("$DIRECT")
check "a direct observer of dev0/temp: one device-side observation" \
    poll 50 obs_is device_observations 1
timeout 20 coap-client-openssl -v 6 -s 4 -B 6 -u app1 -k app1-secret -m get -O 3,all -O 2,0x01 \
    "$COAPS/temp" >"$T/gobs.out" 2>&1 &
GOBS=$!
PIDS+=("$GOBS")
check "a group observation of 'all' (20 members, T' = 1 s): 21 observers" \
    poll 50 obs_is observers 21 || note "observers: $(obs_stat observers)"
check "... over 20 device-side observations (dev0's is shared)" \
    test "$(obs_stat device_observations)" = 20 || note "observations: $(obs_stat device_observations)"
wait "$GOBS"
# Reply-From per notification: libcoap prints the unknown option 248 as
# \xNN bytes; the CRI [-1, "<device>"] has the name from the 4th byte on.
grep -o '248:[^] ]*' "$T/gobs.out" | python3 -c '
import sys, collections
c = collections.Counter(bytes.fromhex(l.strip()[4:].replace("\\x", ""))[3:].decode() for l in sys.stdin)
for k, v in sorted(c.items()): print(k, v)' >"$T/gobs.count"
note "notifications per member: $(tr '\n' ' ' <"$T/gobs.count")"
check "the group observer got notifications from 20 members (distinct Reply-From)" \
    test "$(grep -c '^dev' "$T/gobs.count")" = 20
check "... at least 3 from each (one a second for 4 s: past T' = 1 s)" \
    awk '$2 < 3 { exit 1 }' "$T/gobs.count"
check "its session ended: the members' observations end, dev0's stays for the direct observer" \
    poll 50 obs_is device_observations 1
check "... with 1 observer left" test "$(obs_stat observers)" = 1
wait "$DIRECT"
check "the direct observer got dev0's notifications throughout" \
    test "$(grep -c '2\.05' "$T/direct.out")" -ge 5
check "... then no observation is left" poll 50 obs_is device_observations 0

# The admin API.
req "${AUTH[@]}" "$ADMIN/groups"
check "GET /groups lists the groups_file's groups" \
    jqe '[.groups[].name] == ["all", "mixed"] and .groups[0].pattern == "dev*"'
# a device named twice (any case) is one member, asked once
req "${AUTH[@]}" -X PUT -d '{"members": ["dev3", "dev4", "DEV3", "dev5", "dev4"]}' "$ADMIN/groups/trio"
check "PUT /groups/trio: 200 with the group, duplicates dropped" jqe '.name == "trio" and (.members | length == 3)'
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host TRIO --path temp --timeout 1 >"$T/trio.out"
check "the new group answers at once (its name in any case): 3 responses" \
    test "$(jq -r .reply_from "$T/trio.out" | sort | tr '\n' ' ')" = "dev3 dev4 dev5 "
# Group-ETag (draft §5.2-5.3): /static (Max-Age 3600) of every member in
# the cache answers the group request alone, one Group-ETag naming the set.
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host trio --path static --timeout 1 --listen 1.2 >"$T/st1.out"
hits0=$(stat groups.from_cache)
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host trio --path static --timeout 1 --listen 0.5 >"$T/st2.out"
check "again: answered from the cache alone (groups.from_cache)" \
    test "$(stat groups.from_cache)" = $((hits0 + 1))
check "... 3 responses, each with one 8-byte Group-ETag, the same" \
    jqs 'length == 3 and (map(.options["24"]) | unique | length == 1 and (.[0] | length == 16))' \
    "$T/st2.out" || note "$(cat "$T/st2.out")"
tag=$(jq -rs '.[0].options["24"]' "$T/st2.out")
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host trio --path static --timeout 1 --listen 0.5 \
    --opt "24=$tag" >"$T/st3.out"
check "that Group-ETag back: a single 2.03 Valid carrying it" \
    jq -se --arg t "$tag" 'length == 1 and .[0].code == "2.03" and .[0].options["24"] == $t' \
    "$T/st3.out" >/dev/null || note "$(cat "$T/st3.out")"
req "${AUTH[@]}" -X PUT -d '{"members": ["dev3"], "pattern": "x*"}' "$ADMIN/groups/bad"
check "PUT with both members and a pattern: 400" is_err 400
req "${AUTH[@]}" -X PUT -d '{"members": "dev3"}' "$ADMIN/groups/bad"
check "PUT with members not a list: 400" is_err 400
req "${AUTH[@]}" -X DELETE "$ADMIN/groups/trio"
check "DELETE /groups/trio: 200" jqe '.removed == true'
req "${AUTH[@]}" "$ADMIN/groups/trio"
check "GET /groups/trio afterwards: 404" is_err 404
"${CLIENT[@]}" 127.0.0.1 "$PLAIN_PORT" --host trio --path temp --timeout 1 --listen 2 >"$T/gone.out"
check "a request for the removed group: an unknown device (4.04)" jqs '.[0].code == "4.04"' "$T/gone.out"
check "/stats counts the group requests" test "$(stat groups.requests)" -ge 4
check "tetherd is still up" kill -0 "$n1_PID"
finish
