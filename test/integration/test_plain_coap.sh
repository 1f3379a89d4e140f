#!/usr/bin/env bash
# tetherd on its embedded defaults answers plain CoAP on loopback, checked
# with Debian's libcoap client (an independent implementation).
. "$(dirname "$0")/lib.sh"

start_tetherd n1 --listen coap://127.0.0.1:0 --node-id 7 || { not_ok "tetherd starts"; exit 1; }
ok "tetherd starts and listens"
URI=coap://127.0.0.1:$n1_PORT

out=$(coap-client-notls -B 5 -m get "$URI/.well-known/core" 2>&1)
note "/.well-known/core -> $out"
check "GET /.well-known/core lists itself in link-format" grep -qF '</.well-known/core>;ct=40' <<<"$out"
check "GET /.well-known/core lists /node" grep -qF '</node>;ct=50;rt="tether.node"' <<<"$out"

out=$(coap-client-notls -B 5 -m get "$URI/node" 2>&1)
check "GET /node names the node id" grep -qF '"node_id":7' <<<"$out"

out=$(coap-client-notls -B 5 -m get "$URI/no/such" 2>&1)
check "unknown resource -> 4.04" grep -q '4\.04' <<<"$out"

out=$(coap-client-notls -B 5 -m put -e x "$URI/node" 2>&1)
check "PUT on a read-only resource -> 4.05" grep -q '4\.05' <<<"$out"

out=$(coap-client-notls -B 5 -m get -O 25,x "$URI/node" 2>&1)
check "unknown critical option -> 4.02" grep -q '4\.02' <<<"$out"

out=$(coap-client-notls -B 5 -m get -N "$URI/.well-known/core" 2>&1)
check "NON request gets a NON response" grep -qF '</node>' <<<"$out"

# Garbage datagrams must not take the node down.
for junk in 'x' '\x40' '\x4f\x01\x00\x01' '\x40\x01\x00\x01\xf1' '\xff\xff\xff\xff\xff'; do
    printf "$junk" >/dev/udp/127.0.0.1/$n1_PORT
done
out=$(coap-client-notls -B 5 -m get "$URI/node" 2>&1)
check "still answers after malformed datagrams" grep -qF '"node_id":7' <<<"$out"
check "process still alive" kill -0 "$n1_PID"

finish
