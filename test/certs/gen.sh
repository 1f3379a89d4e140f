#!/usr/bin/env bash
# Generates the ECDSA P-256 test PKI into DIR (openssl CLI): a CA, the
# server's certificate (CN tether, SAN 127.0.0.1/localhost), client
# certificates dev7 (valid), stranger (valid but not in the credentials),
# expired (dev9, already expired), and rogue (dev7 signed by another CA).
# Every file is PEM: NAME.pem (certificate) and NAME.key (private key).
set -euo pipefail
dir=${1:?usage: gen.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }
ca() { # ca NAME CN
    key "$1"
    openssl req -new -x509 -key "$1.key" -subj "/CN=$2" -days 36500 -sha256 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$1.pem" 2>/dev/null
}
leaf() { # leaf NAME CN ISSUER DAYS [EXT]
    key "$1"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "${5:-extendedKeyUsage=clientAuth}" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days "$4" \
        -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "tether test CA"
ca otherca "some other CA"
leaf server tether ca 36500 \
    "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf dev7 dev7 ca 36500
leaf stranger stranger ca 36500
leaf expired dev9 ca -1 # notAfter before notBefore: expired from the start
leaf rogue dev7 otherca 36500
rm -f ./*.srl
