# Shared helpers for integration tests: start real processes on loopback,
# wait for events in their logs (never fixed sleeps), report TAP-style lines.
set -u
TOP=${TETHER_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=${TETHER_BUILD:-$TOP/build}
TETHERD=$BUILD_DIR/tetherd
T=$(mktemp -d /tmp/tether-it.XXXXXX)
PIDS=()
NFAIL=0

cleanup() {
    for p in "${PIDS[@]-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
    [ "$NFAIL" -eq 0 ] && [ -z "${TETHER_KEEP_LOGS:-}" ] && rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
not_ok() {
    echo "not ok - $*"
    NFAIL=$((NFAIL + 1))
}
# port_base N: the first of N consecutive ports for a test's fixed ports
# (Redis, the balancer, cluster channels): below the ephemeral range
# (ip_local_port_range starts at 32768 here; a port there can be taken by
# any process's port-0 socket between our choice and our bind), derived
# from the test's pid so tests running at once differ, and moved on while
# anything listens on one of them.
port_base() {
    local n=$1 b=$((10000 + ($$ * 11) % 20000)) _
    for _ in 1 2 3 4 5 6 7 8; do
        ss -Htuln | awk '{print $5}' | grep -qE ":($(seq -s'|' "$b" $((b + n - 1))))\$" ||
            break
        b=$((10000 + (b + 997) % 20000))
    done
    echo "$b"
}
# check DESC CMD...: passes when CMD exits 0; returns CMD's verdict so that
# `check ... || note WHY` can say what went wrong.
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; return 1; fi
}
note() { echo "# $*"; }
# skip DESC: a section that cannot run on this machine; test/run.sh counts
# the TAP "# SKIP" line as skipped (never as passed).
skip() { echo "ok - $* # SKIP"; }
# skip_needs DESC: a section whose dependency `make test` itself provides
# (deploy/deps.sh test or the build): skipped when run by hand, a failure
# under CI=true, where it can only mean the set-up is broken.
skip_needs() {
    if [ "${CI:-}" = true ]; then not_ok "$* (CI=true: make test provides this)"; else skip "$*"; fi
}

# wait_log FILE REGEX [SECONDS]: blocks until a line matching REGEX appears
# in FILE (follows the file as it grows); fails after SECONDS (default 10).
wait_log() {
    local file=$1 re=$2 secs=${3:-10}
    timeout "$secs" bash -c 'tail -n +1 -F "$1" 2>/dev/null | grep -m1 -qE "$2"' _ "$file" "$re"
}

# poll COUNT CMD...: CMD every 0.1 s until it succeeds, at most COUNT
# times (for counters and store contents, which have no event to wait on).
poll() {
    local n=$1
    shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}

# redis_nodes_start REDIS_PORT CLUSTER_PORT...: nodes n1, n2, ... (node id
# = position) sharing the redis-server on REDIS_PORT, each started with
# only --node-id, --redis, --cluster-listen and the cluster key from the
# environment, plus a DTLS listener on a free port and the test's limits
# in $T/node.json (written here: no per-source handshake limits, since
# every simulated device and client shares 127.0.0.1). Sets A[i] (admin
# URL) and P[i] (DTLS port) of node i; fails when a node does not start.
# The array REDIS_NODES_ARGS, when set, adds arguments (a second listener).
redis_nodes_start() {
    local rp=$1 id=0
    shift
    echo '{"dtls": {"handshake_rate_per_source": 0, "max_handshakes_per_source": 0}}' \
        >"$T/node.json"
    A=("") P=("")
    for cl in "$@"; do
        id=$((id + 1))
        start_tetherd "n$id" --config "$T/node.json" --node-id "$id" \
            --redis "redis://127.0.0.1:$rp" --cluster-listen "127.0.0.1:$cl" \
            --listen coaps://127.0.0.1:0 ${REDIS_NODES_ARGS[@]+"${REDIS_NODES_ARGS[@]}"} ||
            { not_ok "node $id starts"; return 1; }
        A+=("http://127.0.0.1:$(admin_port "n$id")")
        eval "P+=(\"\$n${id}_PORT\")"
    done
}

# nginx_lb_conf LISTEN_PORT NODE_PORT...: writes $T/nginx/nginx.conf, the
# deployment's own UDP load balancer (deploy/nginx/tether-udp.conf, used as
# is) listening on 127.0.0.1:LISTEN_PORT in front of the nodes' ports.
nginx_lb_conf() {
    local lb=$1
    shift
    mkdir -p "$T/nginx"
    cat >"$T/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
# Every rebinding device opens a new UDP session that lives proxy_timeout
# (deploy/nginx/tether-udp.conf): 200 devices rebinding every 3 s hold
# ~8,000 sessions, two connections each; 4,096 ran out within 30 s.
events { worker_connections 16384; }
include $TOP/deploy/nginx/tether-udp.conf;
CONF
    echo "listen 127.0.0.1:$lb udp;" >"$T/nginx/tether-listen.conf"
    printf 'server 127.0.0.1:%s;\n' "$@" >"$T/nginx/tether-nodes.conf"
}
# nginx_lb_start: runs the balancer nginx_lb_conf wrote, until the test ends.
nginx_lb_start() {
    nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" 2>"$T/nginx/stderr.log" &
    PIDS+=("$!")
    wait_log "$T/nginx/error.log" 'start worker process' 10 || note "nginx did not log its start"
}

# wait_stats FILE CONDITION [SECONDS]: blocks until a "devices: stats" or
# "devices: final" line of FILE (tether-bench devices) makes the bash
# arithmetic CONDITION true, with each numeric key=value of the line as a
# variable (e.g. 'handshakes == 10 && rebinds >= 5 && pongs == pings');
# fails after SECONDS (default 10). The matching line goes to stdout.
wait_stats() {
    local file=$1 cond=$2 line tok end=$((SECONDS + ${3:-10}))
    while :; do
        while IFS= read -r line; do
            if (
                for tok in ${line#devices: * }; do
                    [[ $tok =~ ^([a-z_]+)=([0-9]+)$ ]] && declare "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
                done
                (($cond)) 2>/dev/null
            ); then
                echo "$line"
                return 0
            fi
        done < <(grep -E '^devices: (stats|final) ' "$file" 2>/dev/null)
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.2
    done
}

# start_tetherd NAME ARGS...: starts tetherd, waits for its "ready" line, and
# sets ${NAME}_PID and ${NAME}_LOG. Listeners given as port 0 get a free port:
# ${NAME}_PORT is the first listener's bound port.
start_tetherd() {
    local name=$1
    shift
    local log=$T/$name.log
    : >"$log"
    # A free admin port unless the test chose one: parallel runs never collide.
    local admin=(--admin 127.0.0.1:0)
    case " $* " in *" --admin "*) admin=() ;; esac
    "$TETHERD" "${admin[@]}" "$@" 2>"$log" &
    local pid=$!
    PIDS+=("$pid")
    printf -v "${name}_PID" %s "$pid"
    printf -v "${name}_LOG" %s "$log"
    if ! wait_log "$log" '"msg":"ready"' 15; then
        note "tetherd $name did not become ready; log:"
        sed 's/^/#   /' "$log"
        return 1
    fi
    local port
    port=$(grep -m1 '"msg":"listening"' "$log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')
    printf -v "${name}_PORT" %s "$port"
}

finish() {
    [ "$NFAIL" -eq 0 ]
}

# admin_port NAME: prints the admin endpoint's bound port of tetherd NAME
# (from its {"component":"admin","msg":"listening"} log line).
admin_port() {
    local log_var="${1}_LOG"
    grep -m1 '"component":"admin","msg":"listening"' "${!log_var}" |
        sed -E 's/.*"port":"([0-9]+)".*/\1/'
}

# req ARGS...: one curl call; sets CODE, BODY and HDRS (headers, lower-cased).
req() {
    CODE=$(curl -s --max-time 10 -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$@")
    BODY=$(cat "$T/body")
    HDRS=$(tr 'A-Z' 'a-z' <"$T/hdrs" | tr -d '\r')
}
# is_err STATUS: the last answer had that status and a JSON error body.
is_err() {
    [ "$CODE" = "$1" ] && jq -e '(.error | type == "string") and (.detail | type == "string")' \
        <<<"$BODY" >/dev/null && grep -q '^content-type: application/json' <<<"$HDRS"
}
# jqe FILTER: the last answer's body satisfies the jq filter.
jqe() { jq -e "$1" <<<"$BODY" >/dev/null; }
