#!/usr/bin/env bash
# A real NAT (security issue, abuse tests): a simulated device in its own
# network namespace reaches tetherd, in another, through a third that
# masquerades with nftables (random source ports) and whose UDP conntrack
# timeout is cut to T seconds. The device stays silent for gaps below and
# above T: after every gap longer than T the NAT gives it a new source
# port; every ping after every gap must be answered with no new handshake
# (DTLS Connection ID, RFC 9146), and tether's NAT-binding learning
# (GET /devices/{name}) must put the binding lifetime and its keep-alive
# advice within 20% of T.
. "$(dirname "$0")/lib.sh"
BENCH=$BUILD_DIR/tether-bench
MASTER=00112233445566778899aabbccddeeff
TIMEOUT_S=6
GAPS=3,4.2,5.4,6.6,7.8 # 0.5T .. 1.3T: three keep the binding, two lose it

if ! command -v nft >/dev/null || ! ip netns add "tn$$-probe" 2>/dev/null; then
    not_ok "network namespaces and nftables are available (make test installs nftables)"
    exit 1
fi
ip netns del "tn$$-probe"
D=tn$$-dev N=tn$$-nat S=tn$$-srv
netns_cleanup() {
    cleanup
    for ns in "$D" "$N" "$S"; do ip netns del "$ns" 2>/dev/null; done
}
trap netns_cleanup EXIT
for ns in "$D" "$N" "$S"; do ip netns add "$ns" && ip -n "$ns" link set lo up; done
ip link add "d$$" netns "$D" type veth peer name "nd$$" netns "$N"
ip link add "s$$" netns "$S" type veth peer name "ns$$" netns "$N"
ip -n "$D" addr add 10.77.1.2/24 dev "d$$" && ip -n "$D" link set "d$$" up
ip -n "$D" route add default via 10.77.1.1
ip -n "$N" addr add 10.77.1.1/24 dev "nd$$" && ip -n "$N" link set "nd$$" up
ip -n "$N" addr add 10.77.2.1/24 dev "ns$$" && ip -n "$N" link set "ns$$" up
ip -n "$S" addr add 10.77.2.2/24 dev "s$$" && ip -n "$S" link set "s$$" up
ip netns exec "$N" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$N" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=$TIMEOUT_S \
    net.netfilter.nf_conntrack_udp_timeout_stream=$TIMEOUT_S
ip netns exec "$N" nft -f - <<NFT
table ip nat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "ns$$" masquerade random
    }
}
NFT
check "the NAT namespace masquerades with conntrack UDP timeout ${TIMEOUT_S}s" \
    test "$(ip netns exec "$N" sysctl -n net.netfilter.nf_conntrack_udp_timeout)" = $TIMEOUT_S

cat >"$T/creds.json" <<JSON
{"psk_derived": [{"identity_prefix": "dev", "role": "device", "master_hex": "$MASTER"}]}
JSON
log=$T/srv.log
ip netns exec "$S" "$TETHERD" --listen coaps://10.77.2.2:5684 --admin 127.0.0.1:8080 \
    --config <(echo "{\"credentials_file\": \"$T/creds.json\", \"admin_token\": \"t0ken\"}") \
    2>"$log" &
PIDS+=("$!")
SRV=$!
wait_log "$log" '"msg":"ready"' 15 || { not_ok "tetherd starts in its namespace"; exit 1; }
api() { ip netns exec "$S" curl -s -H 'Authorization: Bearer t0ken' "http://127.0.0.1:8080$1"; }

ip netns exec "$D" "$BENCH" devices --server 10.77.2.2:5684 --count 1 --identity-prefix dev \
    --psk-master "$MASTER" --ping-gaps "$GAPS" --stats-every 1 >"$T/dev.log" 2>&1 &
PIDS+=("$!")
DEV=$!
check "the device behind the NAT registers" wait_log "$T/dev.log" 'registered 1/1' 20
check "every ping after every gap is answered, with no new handshake" \
    wait_log "$T/dev.log" '^devices: stats .*handshakes=1 .* pings=5 pongs=5 ' 60
kill "$DEV" 2>/dev/null
dev=$(api /devices/dev0)
note "GET /devices/dev0: $(jq -c '{addr, nat_binding_min_ms, nat_binding_max_ms, keepalive_ms}' <<<"$dev")"
changes=$(api /stats | jq -r .sessions.address_changes)
note "address changes seen by tetherd: $changes"
check "the NAT gave new source ports after the long gaps only (2 moves)" test "$changes" = 2
within() { # within VALUE: VALUE ms is within 20% of the conntrack timeout
    [ -n "$1" ] && [ "$1" != null ] && [ "$1" -ge $((TIMEOUT_S * 800)) ] &&
        [ "$1" -le $((TIMEOUT_S * 1200)) ]
}
check "learnt binding lifetime: at least the longest kept gap, within 20% of ${TIMEOUT_S}s" \
    within "$(jq -r .nat_binding_min_ms <<<"$dev")"
check "learnt binding lifetime: at most the shortest lost gap, within 20% of ${TIMEOUT_S}s" \
    within "$(jq -r .nat_binding_max_ms <<<"$dev")"
check "keep-alive advice within 20% of ${TIMEOUT_S}s" within "$(jq -r .keepalive_ms <<<"$dev")"
check "tetherd alive" kill -0 "$SRV"

finish
