#!/bin/bash
# The image's HEALTHCHECK: exits 0 when tetherd's admin endpoint answers
# GET /health with 200 (liveness, no token needed: conf/README.md "Admin
# endpoint"). Plain bash (/dev/tcp), so the runtime image needs no HTTP
# client. The HEALTHCHECK's --timeout bounds a connect that hangs; a reply
# is awaited at most 5 s.
#
#   tether-healthcheck [HOST:PORT]     (default 127.0.0.1:8080, the image's admin)
addr=${1:-127.0.0.1:8080}
host=${addr%:*}
port=${addr##*:}
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$addr" >&3
read -r -t 5 _ status _ <&3 || exit 1
[ "$status" = 200 ]
