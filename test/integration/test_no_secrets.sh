#!/usr/bin/env bash
# No secret is ever logged (issue 5, S10): the admin token, the cluster key
# and every PSK / fleet master key stay out of the log through auth
# failures, DTLS handshakes with right and wrong keys, SIGHUP reloads (good
# and broken files), a runtime switch to debug, and /config.
. "$(dirname "$0")/lib.sh"

hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
TOKEN="tok-$$-$RANDOM-admin"
CKEY="ck-$$-$RANDOM-cluster"
K1="dkey-$$-one" K2="akey-$$-two" K3="nkey-$$-three"
MASTER=$(hex "master-$$-fleet")
creds() { # creds KEY...: devices d1.. with those keys, a client and a fleet master
    local sep="" i=1
    printf '{"psk": ['
    for k in "$@"; do
        printf '%s{"identity": "d%s", "key_hex": "%s", "role": "device"}' "$sep" "$i" "$(hex "$k")"
        sep=", " i=$((i + 1))
    done
    printf ', {"identity": "app1", "key_hex": "%s", "role": "client"}],' "$(hex "$K2")"
    printf ' "psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "%s"}]}\n' \
        "$MASTER"
}
creds "$K1" >"$T/creds.json"
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "admin_token": "$TOKEN", "cluster_key": "$CKEY", "dtls": {"handshake_timeout": 1}}
JSON
start_tetherd s1 --config "$T/tether.json" || {
    not_ok "tetherd starts with a token, a cluster key and credentials"
    exit 1
}
A=http://127.0.0.1:$(admin_port s1)
URI=coaps://127.0.0.1:$s1_PORT
AUTH="Authorization: Bearer $TOKEN"

req -H "$AUTH" -X PUT -d '{"level": "debug"}' "$A/log-level"
check "PUT /log-level debug" test "$CODE" = 200
req -H "Authorization: Bearer ${TOKEN}x" "$A/stats"
check "a token with an extra byte: 403" is_err 403
req -H "Authorization: Bearer ${TOKEN%????}" "$A/config"
check "a token prefix: 403" is_err 403
req -H "Authorization: $TOKEN" "$A/stats"
check "the token without the scheme: 401" is_err 401
req "$A/stats?token=$TOKEN&key=$CKEY"
check "secrets in a query string: 401" is_err 401
req -H "$AUTH" "$A/config"
check "/config redacts both secrets" jqe '.admin_token == "***" and .cluster_key == "***"'
req -H "$AUTH" -X PUT -d "{\"level\": \"$TOKEN\"}" "$A/log-level"
check "a secret as a bad log level: 400" is_err 400

stat() { curl -s -H "$AUTH" "$A/stats" | jq -r ".$1"; }
# Each secret must really have been used, or its absence from the log
# proves nothing: the handshakes and reloads below are confirmed.
out=$(timeout 20 coap-client-openssl -B 3 -u d1 -k "$K1" -m post "$URI/rd?ep=d1" 2>&1)
check "a device registers with its key" wait_log "$s1_LOG" '"msg":"registered","ep":"d1"' 5
failed0=$(stat sessions.handshakes_failed)
timeout 20 coap-client-openssl -B 2 -u d1 -k "wrong-$K1" -m get "$URI/node" >/dev/null 2>&1
# A wrong key never gets past the Finished; the attempt fails at
# dtls.handshake_timeout (1 s).
for _ in $(seq 50); do
    [ "$(stat sessions.handshakes_failed)" -gt "$failed0" ] && break
    sleep 0.1
done
check "the handshake with a wrong key was refused by the server" \
    test "$(stat sessions.handshakes_failed)" -gt "$failed0"
out=$(timeout 20 coap-client-openssl -B 2 -u app1 -k "$K2" -m get "$URI/node" 2>&1)
check "the client handshakes with its key and is answered" grep -qF '"node_id"' <<<"$out"

creds "$K1" "$K3" >"$T/creds.json"
kill -HUP "$s1_PID"
check "SIGHUP reload" wait_log "$s1_LOG" '"msg":"reloaded"' 5
out=$(timeout 20 coap-client-openssl -B 3 -u d2 -k "$K3" -m post "$URI/rd?ep=d2" 2>&1)
check "the reload took effect: d2 handshakes with the new key and registers" \
    wait_log "$s1_LOG" '"msg":"registered","ep":"d2"' 5
# A broken file whose syntax error sits inside a key string: the parser's
# error text must not carry the key into the log.
printf '{"psk": [{"identity": "d9", "key_hex": "%s' "$(hex "$K3")" >"$T/creds.json"
kill -HUP "$s1_PID"
check "a broken credentials file is reported" wait_log "$s1_LOG" 'reload failed' 5
printf '{"psk": [{"identity": "d9", "key_hex": "%sZZ", "role": "device"}]}\n' "$(hex "$K3")" \
    >"$T/creds.json"
kill -HUP "$s1_PID"
check "a credentials file with a bad key_hex is reported" wait_log "$s1_LOG" 'must be 1\.\.' 5
# The same for the config file itself (printed at start).
printf '{"admin_token": "%s\n' "$TOKEN" >"$T/broken.json"
"$TETHERD" --config "$T/broken.json" --check-config >"$T/check.log" 2>&1
printf '{"cluster_key": "%s' "$CKEY" >"$T/broken.json"
"$TETHERD" --config "$T/broken.json" --check-config >>"$T/check.log" 2>&1
check "broken config files are reported" test "$(grep -c 'invalid JSON' "$T/check.log")" = 2
kill -TERM "$s1_PID"
wait "$s1_PID"
check "the node stopped" grep -q '"msg":"stopped"' "$s1_LOG"
check "debug lines were logged meanwhile" grep -q '"level":"debug"' "$s1_LOG"

leaks=""
for s in "$TOKEN" "$CKEY" "$K1" "$K2" "$K3" "$(hex "$K1")" "$(hex "$K2")" "$(hex "$K3")" \
    "$MASTER" "${MASTER:0:16}" "${TOKEN:0:12}"; do
    cat "$s1_LOG" "$T/check.log" | grep -qiF -- "$s" && leaks="$leaks $s"
done
[ -z "$leaks" ] || note "leaked:$leaks"
grep -hiF -e "$TOKEN" -e "$CKEY" -e "$(hex "$K3")" "$s1_LOG" "$T/check.log" | head -4 |
    sed 's/^/#   /'
check "no token, cluster key, key_hex or master_hex appears anywhere in the log" test -z "$leaks"

finish
