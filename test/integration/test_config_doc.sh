#!/usr/bin/env bash
# The config key table (server/config/keys.c), as `tetherd --help` lists it,
# and conf/README.md agree: every key is documented with its environment
# variable and flag, and the README documents no key tetherd lacks. Plus
# the S11 names, and the keys added with the table, doing what they say.
. "$(dirname "$0")/lib.sh"

README=$TOP/conf/README.md
help=$("$TETHERD" --help)
check "--help exits 0 and lists the config keys" grep -q '^config keys:' <<<"$help"

# --help: "  KEY   FORM, default D" then the doc line, then "env X, flag --y".
keys=$(sed -n '/^config keys:/,$p' <<<"$help" | grep -E '^  [a-z]' | awk '{print $1}' | sort)
# README: the first cell of a key table row, "| `dtls.cid_length` | ...".
doc=$(grep -oE '^\| `[a-z_]+(\.[a-z_]+)?` \|' "$README" | sed -E 's/^\| `([^`]+)` \|$/\1/' | sort)
note "$(wc -l <<<"$keys") keys in the table, $(wc -l <<<"$doc") documented"
missing=$(comm -23 <(echo "$keys") <(echo "$doc"))
extra=$(comm -13 <(echo "$keys") <(echo "$doc"))
[ -z "$missing" ] || note "not in conf/README.md: $missing"
[ -z "$extra" ] || note "in conf/README.md but not in tetherd: $extra"
check "the table has keys (parsing --help worked)" test "$(wc -w <<<"$keys")" -ge 30
check "conf/README.md documents every key of the table" test -z "$missing"
check "conf/README.md documents no key the table lacks" test -z "$extra"

# Each key's README row names its env variable and flag as --help gives them.
undoc=""
while read -r key; do
    line=$(sed -n "/^  $key /,/^  [a-z]/p" <<<"$help" | grep -E '^      (env|flag) ' || true)
    row=$(grep -F "| \`$key\` |" "$README")
    for name in $(grep -oE 'TETHER_[A-Z_]+|--[a-z-]+' <<<"$line"); do
        grep -qF -- "\`$name\`" <<<"$row" || undoc="$undoc $key:$name"
    done
done <<<"$keys"
[ -z "$undoc" ] || note "README rows missing their env/flag:$undoc"
check "each README row names the key's env variable and flag" test -z "$undoc"

# SPEC S11: these names stay.
s11=""
for name in TETHER_NODE_ID TETHER_REDIS_URL TETHER_ADMIN_TOKEN TETHER_CLUSTER_KEY \
    TETHER_CLUSTER_LISTEN --config --node-id --listen --admin --redis --cluster-listen \
    --log-level --check-config; do
    grep -qF -- "$name" <<<"$help" || s11="$s11 $name"
done
check "--help names every S11 flag and env variable" test -z "$s11"

# The keys the table added: cluster.listen from env and flag (the channel
# then needs a cluster key), cluster.advertise, redis_url from --redis.
out=$(TETHER_CLUSTER_LISTEN=127.0.0.1:0 "$TETHERD" --check-config 2>&1)
check "TETHER_CLUSTER_LISTEN turns the internal channel on" grep -qF "needs a cluster_key" <<<"$out"
out=$("$TETHERD" --cluster-listen 127.0.0.1:0 --check-config 2>&1)
check "--cluster-listen turns the internal channel on" grep -qF "needs a cluster_key" <<<"$out"
out=$("$TETHERD" --cluster-listen nonsense --check-config 2>&1)
check "a bad --cluster-listen names the key" grep -qF "key 'cluster.listen'" <<<"$out"
printf '{\n  "cluster": {\n    "advertise": "no port"\n  }\n}\n' >"$T/adv.json"
out=$("$TETHERD" --config "$T/adv.json" --check-config 2>&1)
check "a bad cluster.advertise is refused" grep -qF "key 'cluster.advertise'" <<<"$out"
printf '{\n  "cluster": {\n    "advertise": 7\n  }\n}\n' >"$T/adv7.json"
out=$("$TETHERD" --config "$T/adv7.json" --check-config 2>&1)
check "a non-string cluster.advertise names file, line and key" \
    grep -qF "adv7.json:3: key 'advertise': must be a string" <<<"$out"

out=$("$TETHERD" --redis redis://127.0.0.1:1 --check-config 2>&1)
check "--redis without a cluster key is refused (it seals stored credentials)" \
    grep -qF "key 'redis_url': the shared store needs a cluster_key" <<<"$out"
TETHER_CLUSTER_KEY=key-of-the-config-doc-test \
TETHER_ADMIN_TOKEN=t0k TETHER_CLUSTER_ADVERTISE=10.0.0.7:5700 start_tetherd c1 \
    --listen coap://127.0.0.1:0 --redis redis://user:pw@127.0.0.1:1/0 ||
    not_ok "tetherd starts with --redis and TETHER_CLUSTER_ADVERTISE"
cfg=$(curl -s --max-time 5 -H "Authorization: Bearer t0k" "http://127.0.0.1:$(admin_port c1)/config")
note "$cfg"
cfg_has() { jq -e "$1" <<<"$cfg" >/dev/null; }
check "/config shows cluster.advertise from the environment" \
    cfg_has '.cluster.advertise == "10.0.0.7:5700"'
check "/config shows --redis with its password hidden" \
    cfg_has '.redis_url == "redis://***@127.0.0.1:1/0"'
check "an unreachable Redis is no reason not to start; its password is never logged" \
    bash -c 'grep -q "\"msg\":\"ready\"" "$1" && ! grep -qF "pw@" "$1" && ! grep -qF ":pw" "$1"' \
    _ "$c1_LOG"

finish
