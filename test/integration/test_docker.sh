#!/usr/bin/env bash
# tether-test: serial (measures against what the machine can do; runs alone)
# The container image and the deployment files, for real (SPEC S8).
#
# docker/Dockerfile is built unchanged with Debian's podman
# (`podman build --isolation chroot --network host`) on a base image that
# debootstrap makes from this machine's Debian mirror, imported under the
# Dockerfile's default base name so FROM resolves without a registry. No
# container can run here, so the built image's filesystem (`podman image
# mount`) is run the way a runtime would: each compose service gets its own
# network namespace on one bridge, its host names in /etc/hosts, a writable
# overlay over the image, the compose file's mounts, environment, command
# and user (chroot --userspec). Redis and nginx are Debian's, run with the
# compose file's command and mounts. The simulated devices and the load of
# the compose bench services, and a libcoap client, go through the
# load balancer; the image's HEALTHCHECK command must pass. The image must
# hold no compiler, headers or wolfSSL source. The compose file, every
# Kubernetes manifest, the systemd unit, the Prometheus config and the
# Grafana dashboard are checked against what tetherd really reads and
# exports (test/integration/deploy_check.py).
#
# The base (debootstrap, about 1.5 min) and podman's layer cache live in
# TETHER_CACHE (default /var/cache/tether): a cold first run also builds
# wolfSSL inside the image (several minutes); later runs rebuild only the
# layers whose sources changed.
. "$(dirname "$0")/lib.sh"
CHECK=(python3 "$TOP/test/integration/deploy_check.py")
CACHE=${TETHER_CACHE:-/var/cache/tether}
COMPOSE=$TOP/docker/compose.yml

if [ "$(id -u)" != 0 ]; then
    echo "# SKIP test_docker: needs root (chroot, network namespaces, mounts)"
    exit 0
fi
for tool in podman debootstrap; do
    if ! command -v "$tool" >/dev/null; then
        echo "# SKIP test_docker: $tool is not installed (deploy/deps.sh test installs it)"
        exit 0
    fi
done

# --- the files alone ---------------------------------------------------------
# Environment names tetherd reads (the key table, server/config/keys.c), plus SPEC S11's.
{
    grep -ohE '"TETHER_[A-Z_]+"' "$TOP"/server/config/*.c | tr -d '"'
    printf '%s\n' TETHER_NODE_ID TETHER_REDIS_URL TETHER_ADMIN_TOKEN TETHER_CLUSTER_KEY \
        TETHER_CLUSTER_LISTEN
} | sort -u >"$T/env-names"
note "environment names: $(tr '\n' ' ' <"$T/env-names")"
"${CHECK[@]}" compose "$COMPOSE" "$T/env-names"
"${CHECK[@]}" k8s "$TOP/deploy/k8s" "$T/env-names" "$T/k8s"
"${CHECK[@]}" prometheus "$TOP/deploy/grafana/prometheus.yml" "$COMPOSE"
"${CHECK[@]}" compose-config "$COMPOSE" >"$T/compose.json" || not_ok "compose file resolves"

# The systemd unit: no warning from systemd's own parser, and hardened by
# its measure (exposure 2.0 "OK" at most). Paths point at this build.
sed -e "s#/usr/local/bin/tetherd#$TETHERD#g" -e 's#^EnvironmentFile=#EnvironmentFile=-#' \
    "$TOP/deploy/systemd/tetherd.service" >"$T/tetherd.service"
check "systemd: systemd-analyze verify has nothing to say about deploy/systemd/tetherd.service" \
    bash -c '[ -z "$(systemd-analyze verify "$1" 2>&1)" ]' _ "$T/tetherd.service"
exposure=$(systemd-analyze security --offline=yes "$T/tetherd.service" 2>&1 | tail -n1)
note "systemd: $exposure"
check "systemd: the unit is hardened (systemd-analyze security exposure <= 2.0)" bash -c \
    'systemd-analyze security --offline=yes --threshold=20 "$1" >/dev/null 2>&1' _ "$T/tetherd.service"
check "systemd: DynamicUser, ProtectSystem=strict, no capabilities, a file limit" bash -c \
    'grep -qx DynamicUser=yes "$1" && grep -qx ProtectSystem=strict "$1" &&
     grep -qx CapabilityBoundingSet= "$1" && grep -qE "^LimitNOFILE=[0-9]{5,}$" "$1"' \
    _ "$TOP/deploy/systemd/tetherd.service"

# --- podman, the base image, the build --------------------------------------
P=(podman --root "$CACHE/podman" --runroot /run/tether-podman)
if ! "${P[@]}" info >"$T/podman-info.log" 2>&1; then
    P=(podman --root "$CACHE/podman-vfs" --runroot /run/tether-podman-vfs --storage-driver vfs)
    "${P[@]}" info >"$T/podman-info.log" 2>&1 || {
        not_ok "podman works (see podman info)"
        sed 's/^/#   /' "$T/podman-info.log" | tail -n 5
        exit 1
    }
fi
note "podman $("${P[@]}" version --format '{{.Client.Version}}'), storage $("${P[@]}" info --format '{{.Store.GraphDriverName}}') in ${P[2]}"

base=$(sed -nE 's/^ARG BASE=(.+)$/\1/p' "$TOP/docker/Dockerfile")
case "$base" in */*) base_ref=$base ;; *) base_ref=docker.io/library/$base ;; esac
suite=${base##*:}
suite=${suite%-slim}
mkdir -p "$CACHE"
exec 9>"$CACHE/base.lock"
flock 9 # one run at a time makes or imports the base
if ! "${P[@]}" image exists "$base_ref"; then
    tarball=$CACHE/$suite-minbase.tar.gz
    if [ ! -s "$tarball" ]; then
        mirror=$("$TOP/deploy/mirror.sh") || { not_ok "a Debian mirror in /etc/apt"; exit 1; }
        t0=$(date +%s)
        if ! debootstrap --variant=minbase "$suite" "$T/rootfs" "$mirror" >"$T/debootstrap.log" 2>&1; then
            not_ok "debootstrap --variant=minbase $suite"
            tail -n 5 "$T/debootstrap.log" | sed 's/^/#   /'
            exit 1
        fi
        # Like the slim images: no package cache, lists, documentation. This
        # machine's apt settings (Acquire::*, not hooks) come along, so apt in
        # the build behaves as apt does here (the mirror may be a snapshot).
        rm -rf "$T/rootfs"/var/cache/apt/archives/*.deb "$T/rootfs"/var/lib/apt/lists/* \
            "$T/rootfs"/usr/share/doc/* "$T/rootfs"/usr/share/man/* "$T/rootfs"/usr/share/locale/*
        for f in /etc/apt/apt.conf.d/*; do
            grep -q 'Acquire::' "$f" && ! grep -q 'Invoke' "$f" && cp "$f" "$T/rootfs/etc/apt/apt.conf.d/"
        done
        tar -C "$T/rootfs" -czf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$T/rootfs"
        note "debootstrap of $suite took $(($(date +%s) - t0)) s (cached in $tarball)"
    fi
    "${P[@]}" import -q "$tarball" "$base_ref" >/dev/null
fi
flock -u 9
check "the base image $base_ref is present locally (no registry)" "${P[@]}" image exists "$base_ref"

IMAGE=localhost/tether-test:latest
old=$("${P[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t0=$(date +%s)
if "${P[@]}" build --isolation chroot --network host --format docker \
    -f "$TOP/docker/Dockerfile" -t "$IMAGE" "$TOP" >"$T/build.log" 2>&1; then
    ok "podman build --isolation chroot --network host -f docker/Dockerfile"
else
    not_ok "podman build of docker/Dockerfile"
    tail -n 20 "$T/build.log" | sed 's/^/#   /'
    exit 1
fi
note "image build took $(($(date +%s) - t0)) s ($(grep -c -- '--> Using cache' "$T/build.log") cached steps)"
new=$("${P[@]}" image inspect --format '{{.Id}}' "$IMAGE")
# The previous image goes; the build stage's layers stay as the cache.
[ -n "$old" ] && [ "$old" != "$new" ] && "${P[@]}" rmi -f "$old" >/dev/null 2>&1
cfg() { "${P[@]}" image inspect --format "{{json .Config.$1}}" "$IMAGE"; }
IMG_USER=$(cfg User | jq -r .)
IMG_ENV=$(cfg Env)
IMG_ENTRY=$(cfg Entrypoint)
IMG_CMD=$(cfg Cmd)
HEALTH=$(cfg Healthcheck)
size=$("${P[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${P[@]}" image inspect --format '{{.Size}}' "$base_ref")
note "image size $((size / 1000000)) MB (base $base_ref $((base_size / 1000000)) MB, tether adds $(((size - base_size) / 1000000)) MB)"

ROOT=$("${P[@]}" image mount "$IMAGE")
MOUNTS=()
NETNS=()
docker_cleanup() {
    local m n
    for p in "${PIDS[@]-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
    PIDS=()
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null; done
    for n in "${NETNS[@]-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
    "${P[@]}" image unmount "$IMAGE" >/dev/null 2>&1
    cleanup
}
trap docker_cleanup EXIT
trap 'exit 1' TERM INT

# --- what the image holds -----------------------------------------------------
check "the image runs as a numeric non-root user that its /etc/passwd names" bash -c \
    '[[ $1 =~ ^[1-9][0-9]*:[0-9]+$ ]] && awk -F: -v u="${1%%:*}" "\$3 == u {f=1} END {exit !f}" "$2/etc/passwd"' \
    _ "$IMG_USER" "$ROOT"
check "the image has no compiler (gcc, cc, cpp, as, ld, make)" bash -c \
    'for t in gcc cc cpp as ld make; do for d in usr/bin bin usr/local/bin; do
         [ -e "$1/$d/$t" ] && { echo "# found /$d/$t"; exit 1; }; done; done; exit 0' _ "$ROOT"
check "the image has no C headers" bash -c \
    '[ -z "$(find "$1" -xdev \( -name "*.h" -o -name "*.hpp" \) -print -quit)" ]' _ "$ROOT"
check "the image has no wolfSSL source, library or build tree" bash -c \
    '[ -z "$(find "$1" -xdev \( -iname "*wolfssl*" -o -name ".deps" -o -path "*/src/lib" \) -print -quit)" ]' _ "$ROOT"
check "tetherd and tether-bench are in the image and start (--version)" bash -c \
    'chroot --userspec="$2" "$1" /usr/local/bin/tetherd --version >/dev/null &&
     chroot --userspec="$2" "$1" /usr/local/bin/tether-bench --help >/dev/null' \
    _ "$ROOT" "$IMG_USER"

# --- a network like compose's ------------------------------------------------
# One bridge in a hub namespace; every service its own namespace and address.
HUB=tt$$-hub
SUBNET=10.231.0
ip netns add "$HUB" && NETNS+=("$HUB")
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
declare -A IP NS
n=10
svc_names=$(jq -r '.services | keys[]' "$T/compose.json")
: >"$T/hosts"
echo "127.0.0.1 localhost" >>"$T/hosts"
for s in $svc_names; do
    n=$((n + 1))
    ns=tt$$-$n
    ip netns add "$ns" && NETNS+=("$ns")
    ip -n "$HUB" link add "v$n" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "v$n" master br0 up
    ip -n "$ns" addr add "$SUBNET.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    IP[$s]=$SUBNET.$n
    NS[$s]=$ns
    echo "$SUBNET.$n $s $(jq -r --arg s "$s" '.services[$s].hostname' "$T/compose.json")" >>"$T/hosts"
done
svc() { jq -r --arg s "$1" ".services[\$s]$2" "$T/compose.json"; }
NODES=$(jq -r '.services | to_entries[] | select(.value.build and (.value.profiles | not)) | .key' "$T/compose.json")

# container NAME [SRC:DST]...: a writable root for NAME over the image,
# with /proc, /dev, the network's /etc/hosts, and the bind mounts of the
# compose service NAME (if it is one) plus the SRC:DST pairs given.
container() {
    local s=$1 c=$T/c/$1 src dst
    shift
    mkdir -p "$c/up" "$c/work" "$c/root"
    mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$c/up,workdir=$c/work" "$c/root" &&
        MOUNTS+=("$c/root") || return 1
    cp "$T/hosts" "$c/root/etc/hosts"
    mount -t proc proc "$c/root/proc" && MOUNTS+=("$c/root/proc")
    mount --bind /dev "$c/root/dev" && MOUNTS+=("$c/root/dev")
    while IFS=$'\t' read -r src dst; do
        [ -n "$src" ] || continue
        mkdir -p "$(dirname "$c/root$dst")"
        if [ -d "$src" ]; then mkdir -p "$c/root$dst"; else : >"$c/root$dst"; fi
        mount --bind "$src" "$c/root$dst" && MOUNTS+=("$c/root$dst")
    done < <(jq -r --arg s "$s" '.services[$s].volumes // [] | .[] | select(.type == "bind") |
                 "\(.source)\t\(.target)"' "$T/compose.json"
        for m in "$@"; do printf '%s\t%s\n' "${m%%:*}" "${m#*:}"; done)
}
# run_as NAME NETNS ENV ARGV...: runs ARGV in NAME's container (and NETNS,
# unless empty) as the image's user, with the image's environment plus ENV
# (KEY=VALUE lines). $WRAP, if set, goes before it (e.g. timeout 3); with
# EXEC=exec the calling (sub)shell becomes the process (background starts).
run_as() {
    local s=$1 ns=$2 extra=$3 env=()
    shift 3
    mapfile -t env < <(jq -r '.[]' <<<"$IMG_ENV"
        [ -n "$extra" ] && printf '%s\n' "$extra")
    ${EXEC-} ${ns:+ip netns exec "$ns"} ${WRAP-} env -i "${env[@]}" \
        /usr/sbin/chroot --userspec="$IMG_USER" --groups="${IMG_USER#*:}" "$T/c/$s/root" "$@"
}
# exec_in SVC ARGV...: ARGV in compose service SVC's container and namespace,
# with its environment (and HOSTNAME, as a runtime sets it).
exec_in() {
    local s=$1
    shift
    run_as "$s" "${NS[$s]}" "$(echo "HOSTNAME=$(svc "$s" .hostname)"
        svc "$s" '.environment | to_entries[] | "\(.key)=\(.value)"')" "$@"
}
# argv_of SVC: the service's command as a runtime builds it (NUL-separated):
# the image's entrypoint and command apply to services of the tether image.
argv_of() {
    local e=null c=null
    [ "$(svc "$1" .image)" = "$(svc tether1 .image)" ] && e=$IMG_ENTRY c=$IMG_CMD
    jq -j --argjson e "$e" --argjson c "$c" --arg s "$1" \
        '.services[$s] as $v | (if $v.entrypoint then $v.entrypoint + ($v.command // [])
         else ($e // []) + ($v.command // $c // []) end) | map(. + "\u0000") | add' "$T/compose.json"
}
# start_in SVC LOG ARGV...: ARGV in SVC's container in the background; its
# pid (the process itself) goes to PIDS and LAST_PID.
start_in() {
    local s=$1 log=$2
    shift 2
    (EXEC=exec exec_in "$s" "$@" >"$log" 2>&1) &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
fails() { ! "$@"; }
# in_ns SVC CMD...: a host program in SVC's namespace, seeing its /etc/hosts.
in_ns() {
    local s=$1
    shift
    ip netns exec "${NS[$s]}" bash -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' _ \
        "$T/hosts" "$@"
}

# Redis: Debian's redis-server with the compose command, in /data's stead $T/redis.
mapfile -d '' -t rargv < <(jq -j '.services.redis.command | map(. + "\u0000") | add' "$T/compose.json")
mkdir -p "$T/redis"
(cd "$T/redis" && exec ip netns exec "${NS[redis]}" "${rargv[@]}" >"$T/redis.log" 2>&1) &
PIDS+=("$!")
check "redis runs with the compose command" wait_log "$T/redis.log" 'Ready to accept connections' 15

# The three nodes from the image, as compose runs them.
TOKEN=$(svc tether1 '.environment.TETHER_ADMIN_TOKEN')
for s in $NODES; do
    container "$s" || { not_ok "container root for $s"; exit 1; }
    mapfile -d '' -t argv < <(argv_of "$s")
    start_in "$s" "$T/$s.log" "${argv[@]}"
    printf -v "pid_$s" %s "$LAST_PID"
done
for s in $NODES; do
    check "$s starts from the image with the compose environment (node $(svc "$s" .environment.TETHER_NODE_ID))" \
        wait_log "$T/$s.log" "\"msg\":\"ready\",\"node_id\":\"?$(svc "$s" .environment.TETHER_NODE_ID)\b" 20 ||
        sed 's/^/#   /' "$T/$s.log" | tail -n 5
done
pid=pid_tether1
check "tetherd runs as the image's user, not root" bash -c \
    'u=$(awk "/^Uid:/ {print \$2}" /proc/$1/status); g=$(awk "/^Gid:/ {print \$2}" /proc/$1/status);
     [ "$u:$g" = "$2" ]' _ "${!pid}" "$IMG_USER"
admin() { # admin SVC PATH: the node's admin endpoint, from the bench namespace
    in_ns bench curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "http://$(svc "$1" .hostname):8080$2"
}
wait_alive() {
    for _ in $(seq 100); do
        [ "$(admin "$1" /stats | jq -r .cluster.nodes_alive)" = 3 ] && return 0
        sleep 0.1 # polling a counter: there is no event to wait on
    done
    return 1
}
for s in $NODES; do check "$s hears all 3 nodes on the internal channel" wait_alive "$s"; done
rpw=$(jq -r '.services.redis.command as $c | $c[($c | index("--requirepass")) + 1]' "$T/compose.json")
check "GET /config shows the Redis URL with its password hidden" bash -c \
    'jq -e ".redis_url | test(\"^redis://[*]+@redis:6379\")" <<<"$1" >/dev/null && ! grep -qF "$2" <<<"$1"' \
    _ "$(admin tether1 /config)" "$rpw"
pong=$(in_ns tether1 redis-cli -h redis -a "$rpw" --no-auth-warning ping 2>&1)
check "redis answers at the host and password of TETHER_REDIS_URL (from tether1's namespace)" \
    test "$pong" = PONG

# The image's HEALTHCHECK, in a node's container; in a container where no
# tetherd listens it must fail.
mapfile -t hc < <(jq -r '.Test[]' <<<"$HEALTH")
case ${hc[0]} in
CMD) hcmd=("${hc[@]:1}") ;;
CMD-SHELL) hcmd=(/bin/sh -c "${hc[1]}") ;;
*) hcmd=() ;;
esac
check "the image has a HEALTHCHECK command (${hcmd[*]})" test ${#hcmd[@]} -gt 0
hc_timeout=$(jq -r '.Timeout / 1000000000 | floor' <<<"$HEALTH")
WRAP="timeout $hc_timeout"
check "the image's HEALTHCHECK command succeeds in tether2's container" exec_in tether2 "${hcmd[@]}"
container bench-devices || { not_ok "container root for bench-devices"; exit 1; }
check "the HEALTHCHECK command fails where no tetherd answers" fails \
    run_as bench-devices "${NS[bench-devices]}" "" "${hcmd[@]}" 2>/dev/null
unset WRAP

# The image's own configuration, and the Kubernetes one with the Secret's
# files and values, pass tetherd --check-config from the image.
container probe "$TOP/conf/credentials.json:/etc/tether/credentials.json"
out=$(run_as probe "" "" /usr/local/bin/tetherd --config /etc/tether/tether.json --check-config 2>&1)
check "the image's /etc/tether/tether.json passes --check-config" grep -q 'configuration ok' <<<"$out"
kc=$T/k8s/container.json
container k8s "$T/k8s/tether.json:/etc/tether/tether.json" \
    "$T/k8s/credentials.json:$(jq -r .credentials_path "$kc")"
kenv="HOSTNAME=$(jq -r .pod "$kc")
$(jq -r '.env | to_entries[] | "\(.key)=\(.value)"' "$kc")"
mapfile -t kargv < <(jq -r '.command + .args | .[]' "$kc")
out=$(run_as k8s "" "$kenv" "${kargv[@]}" --check-config 2>&1)
check "k8s: the StatefulSet's command, ConfigMap and Secret pass --check-config" \
    grep -q 'configuration ok' <<<"$out" || note "$out"
# The same command with tetherd swapped for printenv: pod tether-2 is node 3.
mapfile -t kargv < <(jq -r '.command[:-1] + ["/usr/bin/printenv", "TETHER_NODE_ID"] | .[]' "$kc")
got=$(run_as k8s "" "$kenv" "${kargv[@]}" 2>&1)
check "k8s: pod $(jq -r .pod "$kc") gets TETHER_NODE_ID $(jq -r .expect_node_id "$kc") (ordinal + 1)" \
    test "$got" = "$(jq -r .expect_node_id "$kc")"

# The load balancer: Debian's nginx with the compose mounts over its /etc/nginx.
mkdir -p "$T/lb"
cp -a /etc/nginx "$T/lb/etc-nginx"
while IFS=$'\t' read -r src dst; do
    case $dst in /etc/nginx/*) cp "$src" "$T/lb/etc-nginx/${dst#/etc/nginx/}" ;; esac
done < <(svc lb '.volumes[] | select(.type == "bind") | "\(.source)\t\(.target)"')
mapfile -d '' -t largv < <(argv_of lb)
ip netns exec "${NS[lb]}" bash -c 'mount --bind "$1" /etc/nginx && mount --bind "$2" /etc/hosts &&
    mount -t tmpfs tmpfs /run && shift 2 && exec "$@"' _ "$T/lb/etc-nginx" "$T/hosts" \
    "${largv[@]}" 2>"$T/lb.log" &
PIDS+=("$!")
check "nginx runs the compose lb configuration (deploy/nginx/tether-udp.conf)" \
    wait_log "$T/lb.log" 'start worker process' 10 || tail -n 5 "$T/lb.log" | sed 's/^/#   /'

# The compose bench-devices service: simulated devices through lb.
mapfile -d '' -t dargv < <(argv_of bench-devices)
ndev=$(grep -oE -- '--count [0-9]+' <<<"${dargv[*]}" | grep -oE '[0-9]+')
start_in bench-devices "$T/devices.log" "${dargv[@]}"
if wait_log "$T/devices.log" "registered $ndev/$ndev" 60; then
    ok "the bench-devices service registers its $ndev devices through the load balancer"
else
    not_ok "the bench-devices service registers its $ndev devices through the load balancer"
    tail -n 2 "$T/devices.log" | sed 's/^/#   /'
    for s in $NODES; do note "$s: $(admin "$s" /stats | jq -c .sessions)"; done
fi
regs=()
for s in $NODES; do regs+=("$(admin "$s" /stats | jq -r .devices.registered)"); done
note "devices registered per node: ${regs[*]}"
check "every node holds some of the tunnels and together all $ndev" bash -c \
    'sum=0; for r in "${@:2}"; do [ "$r" -gt 0 ] || exit 1; sum=$((sum + r)); done; [ "$sum" = "$1" ]' \
    _ "$ndev" "${regs[@]}"

# A libcoap client through lb, as app1 (the compose credentials). One
# source port keeps one balancer session, so its requests reach one node:
# it asks that node's id (/node), then a device whose tunnel is there
# (until the device directory is shared between nodes, S5, only that node
# can relay to it).
creds=$(jq -r '.services.tether1.volumes[] | select(.target == "/etc/tether/credentials.json") | .source' "$T/compose.json")
hexkey=$(jq -r '.psk[] | select(.identity == "app1") | .key_hex' "$creds")
key=$(printf "$(sed 's/../\\x&/g' <<<"$hexkey")")
client() { in_ns bench timeout 20 coap-client-openssl -B 10 -p 45683 -u app1 -k "$key" "$@" 2>&1; }
lbaddr=${IP[lb]}:$(grep -oE '[0-9]+' "$T/lb/etc-nginx/tether-listen.conf" | head -n1)
nodeinfo=$(client -m get "coaps://$lbaddr/node")
nid=$(jq -r .node_id <<<"$nodeinfo" 2>/dev/null)
check "coap-client (DTLS PSK) reaches a node through lb: /node is $nodeinfo" \
    bash -c '[[ $1 =~ ^[1-3]$ ]]' _ "$nid"
owner=$(for s in $NODES; do [ "$(svc "$s" .environment.TETHER_NODE_ID)" = "$nid" ] && echo "$s"; done)
dev=$(admin "$owner" '/devices?limit=1' | jq -r '.devices[0].name')
temp=$(client -m get -O "3,$dev" "coaps://$lbaddr/temp")
check "coap-client gets $dev's /temp through lb and node $nid: '$temp'" \
    bash -c '[[ $1 =~ ^-?[0-9]+(\.[0-9]+)?$ ]]' _ "$temp"

# The compose bench service: closed-loop load from app1 through lb.
container bench || { not_ok "container root for bench"; exit 1; }
mapfile -d '' -t bargv < <(argv_of bench)
exec_in bench "${bargv[@]}" >"$T/load.log" 2>&1
rc=$?
note "load: $(grep -m1 '^requests' "$T/load.log"); $(grep -m1 '^throughput' "$T/load.log")"
check "the bench service's load run ends normally and gets 2.xx answers through lb" bash -c \
    '[ "$1" = 0 ] && grep -qE "^requests .* 2xx [1-9]" "$2"' _ "$rc" "$T/load.log" ||
    tail -n 8 "$T/load.log" | sed 's/^/#   /'

# The dashboard's queries against what tether1 really exports.
admin tether1 /metrics >"$T/metrics"
check "GET /metrics of tether1 is Prometheus text with tether_ names" \
    grep -qE '^tether_sessions_active [0-9]' "$T/metrics"
# Named in SPEC S11 for the Redis cluster work, not exported yet.
printf '%s\n' tether_redis_backlog tether_sessions_checkpointed tether_sessions_adopted \
    tether_cluster_adoptions >"$T/future"
"${CHECK[@]}" dashboard "$TOP/deploy/grafana/tether-dashboard.json" "$T/metrics" "$T/future"

# docker stop: SIGTERM drains and tetherd exits 0.
kill -TERM "$pid_tether3"
wait "$pid_tether3"
rc=$?
check "tether3 stops on SIGTERM with status 0 (logs stopped)" bash -c \
    '[ "$1" = 0 ] && grep -q "\"msg\":\"stopped\"" "$2"' _ "$rc" "$T/tether3.log"

finish
