#!/usr/bin/env bash
# X.509 client certificates (ECDSA P-256) checked with an independent DTLS
# stack, libcoap over OpenSSL: a listed device certificate completes an
# ECDHE-ECDSA handshake and GETs over coaps; an expired certificate, one
# from another CA and one whose CN is not in the credentials are refused and
# counted; PSK keeps working next to certificates.
. "$(dirname "$0")/lib.sh"

"$TOP/test/certs/gen.sh" "$T/pki" || { not_ok "test PKI generated"; exit 1; }
P=$T/pki
cat >"$T/creds.json" <<JSON
{"psk": [{"identity": "app1", "key_hex": "$(printf secret-key-app | od -An -tx1 | tr -d ' \n')", "role": "client"}],
 "x509": [{"identity": "dev7", "role": "device"}, {"identity_prefix": "dev9", "role": "device"}]}
JSON
cat >"$T/tether.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "credentials_file": "$T/creds.json",
 "admin_token": "t0k",
 "dtls": {"ca_file": "$P/ca.pem", "cert_file": "$P/server.pem", "key_file": "$P/server.key"}}
JSON

start_tetherd n1 --config "$T/tether.json" --log-level debug || { not_ok "tetherd starts with certificates"; exit 1; }
ok "tetherd starts with a CA, a certificate and a key"
URI=coaps://127.0.0.1:$n1_PORT

get() { # get CERTNAME PATH: GET over coaps with a client certificate
    timeout 20 coap-client-openssl -B 5 -c "$P/$1.pem" -j "$P/$1.key" -C "$P/ca.pem" \
        -m get "$URI$2" 2>&1
}

out=$(get dev7 /.well-known/core)
note "dev7: $out"
check "certificate dev7: ECDHE-ECDSA handshake and GET /.well-known/core" \
    grep -qF '</.well-known/core>;ct=40' <<<"$out"

for bad in expired rogue stranger; do
    out=$(timeout 20 coap-client-openssl -B 3 -c "$P/$bad.pem" -j "$P/$bad.key" -C "$P/ca.pem" \
        -m get "$URI/node" 2>&1)
    check "certificate $bad: refused, no response" bash -c '! grep -qF node_id <<<"$1"' _ "$out"
done
check "the three refusals are counted as failed certificate handshakes" \
    wait_log "$n1_LOG" '"reason":"certificate","handshakes_failed":"3"' 5

out=$(timeout 20 coap-client-openssl -B 5 -u app1 -k secret-key-app -m get "$URI/node" 2>&1)
check "PSK still works next to certificates" grep -qF '"node_id":1' <<<"$out"

# A key file that is not a PEM key stops tetherd at start with a message.
cat >"$T/bad.json" <<JSON
{"listen": ["coaps://127.0.0.1:0"], "dtls": {"cert_file": "$P/server.pem", "key_file": "$T/creds.json"}}
JSON
out=$(timeout 10 "$TETHERD" --config "$T/bad.json" --admin 127.0.0.1:0 2>&1)
check "an unusable key file stops tetherd at start" grep -qF 'DTLS setup failed' <<<"$out"
cat >"$T/bad2.json" <<JSON
{"dtls": {"cert_file": "$P/server.pem"}}
JSON
out=$("$TETHERD" --config "$T/bad2.json" --check-config 2>&1)
check "--check-config: cert_file without key_file is an error" grep -qF 'cert_file and key_file' <<<"$out"
check "process still alive" kill -0 "$n1_PID"

finish
