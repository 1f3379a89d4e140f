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

printf '{\n  "udp": {\n    "recv_bufer": 1\n  }\n}\n' >"$T/udp_typo.json"
out=$("$TETHERD" --config "$T/udp_typo.json" --check-config 2>&1)
check "an unknown key in udp names file, line and key" \
    grep -qF "udp_typo.json:3: key 'recv_bufer': unknown key in udp" <<<"$out"
printf '{\n  "udp": {"send_buffer": -1}\n}\n' >"$T/udp_range.json"
out=$("$TETHERD" --config "$T/udp_range.json" --check-config 2>&1)
check "a negative udp.send_buffer is refused" grep -qF "key 'send_buffer'" <<<"$out"

# udp: socket buffers as configured (Linux reports twice the request), and
# replies leave through the batched send path (counted in /stats).
cat >"$T/udp.json" <<'JSON'
{"listen": ["coap://127.0.0.1:0"], "admin_token": "t0k", "udp": {"recv_buffer": 65536, "send_buffer": 0}}
JSON
start_tetherd u1 --config "$T/udp.json" || not_ok "tetherd starts with a udp object"
line=$(grep -m1 '"msg":"listening"' "$u1_LOG")
note "$line"
check "the listening line shows recvmmsg and the effective receive buffer" \
    grep -qE '"recvmmsg":"yes","rcvbuf":"131072","sndbuf":"[1-9][0-9]*"' <<<"$line"
for i in 1 2 3; do
    out=$(coap-client-notls -B 5 -m get "coap://127.0.0.1:$u1_PORT/node" 2>&1)
done
check "plain CoAP answers through the batched path" grep -qF '"node_id"' <<<"$out"
jq_on() { jq -e "$2" <<<"$1" >/dev/null; } # jq_on JSON FILTER
stats=$(curl -s --max-time 5 -H "Authorization: Bearer t0k" "http://127.0.0.1:$(admin_port u1)/stats")
check "/stats counts datagrams sent and none dropped" \
    jq_on "$stats" '.udp.tx_datagrams >= 3 and .udp.tx_calls >= 1 and .udp.tx_dropped == 0'
cfg=$(curl -s --max-time 5 -H "Authorization: Bearer t0k" "http://127.0.0.1:$(admin_port u1)/config")
check "/config shows the udp buffer sizes" \
    jq_on "$cfg" '.udp.recv_buffer == 65536 and .udp.send_buffer == 0'

start_tetherd n1 --config "$TOP/conf/tether.json" --listen coap://127.0.0.1:0 --node-id 42 ||
    not_ok "tetherd starts with the example config"
out=$(coap-client-notls -B 5 -m get "coap://127.0.0.1:$n1_PORT/node" 2>&1)
check "CLI --node-id overrides the config file" grep -qF '"node_id":42' <<<"$out"

finish
