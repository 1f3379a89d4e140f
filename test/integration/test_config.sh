#!/usr/bin/env bash
# Configuration errors name the file, line and key; overrides apply.
. "$(dirname "$0")/lib.sh"

check "shipped example config is valid" "$TETHERD" --config "$TOP/conf/tether.json" --check-config

cat >"$T/typo.json" <<'JSON'
{
  "node_id": 3,
  "listen": ["127.0.0.1:5683"],
  "log_levle": "debug"
}
JSON
out=$("$TETHERD" --config "$T/typo.json" --check-config 2>&1)
rc=$?
note "$out"
check "a typo in a key fails --check-config" test "$rc" -ne 0
check "the error names file, line 4 and the key" grep -qF "typo.json:4: key 'log_levle': unknown key" <<<"$out"

printf '{\n  "node_id": 300\n}\n' >"$T/range.json"
out=$("$TETHERD" --config "$T/range.json" --check-config 2>&1)
check "an out-of-range value names its key and line" grep -qF "range.json:2: key 'node_id'" <<<"$out"

printf '{\n  "node_id": 3,\n  "listen": [\n}\n' >"$T/broken.json"
out=$("$TETHERD" --config "$T/broken.json" --check-config 2>&1)
check "broken JSON names its line" grep -qE "broken.json:4: invalid JSON" <<<"$out"

printf '{"listen": ["0.0.0.0:5683"]}\n' >"$T/public.json"
out=$("$TETHERD" --config "$T/public.json" --check-config 2>&1)
check "plain CoAP on a public address is refused by default" grep -qF "plain_coap_public" <<<"$out"

out=$(TETHER_NODE_ID=9 "$TETHERD" --check-config 2>&1)
check "env TETHER_NODE_ID is accepted" grep -q "configuration ok" <<<"$out"
out=$(TETHER_NODE_ID=900 "$TETHERD" --check-config 2>&1)
check "a bad env value is refused with its name" grep -qF "TETHER_NODE_ID" <<<"$out"
out=$("$TETHERD" --node-id 0 --check-config 2>&1)
check "a bad CLI value is refused with its flag" grep -qF -- "--node-id" <<<"$out"

start_tetherd n1 --config "$TOP/conf/tether.json" --listen coap://127.0.0.1:0 --node-id 42 ||
    not_ok "tetherd starts with the example config"
out=$(coap-client-notls -B 5 -m get "coap://127.0.0.1:$n1_PORT/node" 2>&1)
check "CLI --node-id overrides the config file" grep -qF '"node_id":42' <<<"$out"

finish
