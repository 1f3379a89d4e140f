/* /stats and /metrics (SPEC S6, S11): one stats tree (every S11 path,
 * the admin's own counters, then the process's hook) shown as JSON, and
 * rendered in the Prometheus text exposition format 0.0.4: every number or
 * boolean leaf is a metric tether_<path>, typed and described by the
 * table below (other leaves are gauges). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "tether/common.h"

/* SPEC S11: these dotted paths always exist in /stats. */
static const char *const s11_paths[] = {
    "sessions.active",
    "sessions.handshakes_full",
    "sessions.handshakes_resumed",
    "sessions.address_changes",
    "devices.registered",
    "proxy.requests",
    "proxy.cache_hits",
    "proxy.cache_misses",
    "observe.device_observations",
    "observe.observers",
    "observe.notifications_sent",
    "queue.pending",
    "cluster.nodes_alive",
    "cluster.forwarded_records",
    "memory.rss_bytes",
    "redis.backlog",
    "redis.reconnects",
    "redis.errors",
};

int tetherd_admin_stat_set(json_t *stats, const char *path, json_int_t value)
{
    char buf[128];
    if (!json_is_object(stats) || snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return TETHER_EINVAL;
    json_t *obj = stats;
    char *seg = buf;
    for (char *dot; (dot = strchr(seg, '.')) != NULL; seg = dot + 1) {
        *dot = 0;
        json_t *next = json_object_get(obj, seg);
        if (!next) {
            next = json_object();
            if (!next || json_object_set_new(obj, seg, next) < 0)
                return TETHER_ENOMEM;
        } else if (!json_is_object(next)) {
            return TETHER_EINVAL;
        }
        obj = next;
    }
    return json_object_set_new(obj, seg, json_integer(value)) < 0 ? TETHER_ENOMEM : 0;
}

/* Resident set size from /proc/self/statm (pages), 0 when unreadable. */
static json_int_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (json_int_t)(resident * (unsigned long long)page) : 0;
}

int tetherd_admin_default_stats(json_t *stats, void *user)
{
    (void)user;
    for (size_t i = 0; i < sizeof s11_paths / sizeof s11_paths[0]; i++) {
        int rc = tetherd_admin_stat_set(stats, s11_paths[i], 0);
        if (rc < 0)
            return rc;
    }
    json_t *redis = json_object_get(stats, "redis");
    if (!redis || json_object_set_new(redis, "state", json_string("off")) < 0)
        return TETHER_ENOMEM; /* "up"/"down" when the process has a Redis store */
    return tetherd_admin_stat_set(stats, "memory.rss_bytes", rss_bytes());
}

/* The /stats object: defaults, the admin's own counters, then the hook.
 * NULL on failure (the hook's error or no memory). */
static json_t *collect_stats(tetherd_admin_t *a)
{
    json_t *s = json_object();
    if (!s || tetherd_admin_default_stats(s, NULL) < 0 ||
        tetherd_admin_stat_set(s, "admin.connections", (json_int_t)a->nconns) < 0 ||
        tetherd_admin_stat_set(s, "admin.requests", (json_int_t)a->requests) < 0 ||
        tetherd_admin_stat_set(s, "admin.auth_failures", (json_int_t)a->authlog.failures) < 0 ||
        tetherd_admin_stat_set(s, "admin.waiting", (json_int_t)a->nwaiting) < 0 ||
        (a->hooks.stats && a->hooks.stats(s, a->hooks.user) < 0)) {
        json_decref(s);
        return NULL;
    }
    return s;
}

void admin_h_stats(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    json_t *s = collect_stats(c->a);
    if (!s) {
        admin_respond_error(c, 500, NULL, "collecting stats failed");
        return;
    }
    admin_respond_json(c, 200, s, NULL);
    json_decref(s);
}

typedef struct {
    const char *path;
    bool counter;
    const char *help;
} metric_info_t;

/* Types and help for known stats; other numeric leaves become gauges. */
static const metric_info_t metric_info[] = {
    {"sessions.active", false, "DTLS sessions established now"},
    {"sessions.handshakes_full", true, "Full DTLS handshakes completed"},
    {"sessions.handshakes_resumed", true, "Resumed DTLS handshakes completed"},
    {"sessions.tickets_refused", true,
     "Session tickets refused (key, period, altered, credential)"},
    {"sessions.address_changes", true, "Sessions that moved to a new peer address"},
    {"devices.registered", false, "Devices registered on this node"},
    {"proxy.requests", true, "Requests relayed down device tunnels"},
    {"proxy.cache_hits", true, "Requests answered from the cache"},
    {"proxy.cache_misses", true, "Cacheable requests that missed the cache"},
    {"proxy.cache_revalidated", true, "Stale cache entries refreshed by a device's 2.03 Valid"},
    {"proxy.cache_invalidations", true, "Cache entries invalidated by unsafe requests"},
    {"proxy.cache_evictions", true, "Cache entries evicted to stay within proxy.cache_bytes"},
    {"proxy.cache_entries", false, "Responses held in the cache"},
    {"proxy.cache_bytes", false, "Bytes held by the cache (entries, keys, representations)"},
    {"proxy.block_transfers", true, "Block2 representations reassembled from devices"},
    {"proxy.block_blocks_fetched", true, "Block2 blocks tether asked devices for"},
    {"proxy.block_restarts", true, "Block2 transfers restarted because the ETag changed"},
    {"proxy.block_failed", true, "Block2 transfers abandoned (device error, bounds, timeout)"},
    {"proxy.block_served", true, "Block2 blocks tether served to clients"},
    {"proxy.block_transfers_active", false, "Block2 transfers running or representations kept"},
    {"proxy.uploads_completed", true, "Block1 uploads the device answered finally"},
    {"proxy.uploads_rejected", true, "Block1 blocks refused by tether (4.00, 4.08, 4.13, 5.03)"},
    {"proxy.uploads_abandoned", true, "Block1 uploads the client stopped continuing"},
    {"proxy.upload_blocks", true, "Block1 blocks relayed to devices"},
    {"proxy.uploads_active", false, "Block1 uploads in progress"},
    {"groups.defined", false, "Groups defined on this node"},
    {"groups.requests", true, "Group requests fanned out to members"},
    {"groups.requests_active", false, "Group requests whose Multicast-Timeout has not passed"},
    {"groups.members_sent", true, "Member requests of group requests sent or queued"},
    {"groups.responses", true, "Member responses forwarded to group clients"},
    {"groups.members_unanswered", true, "Member requests still out when their group request ended"},
    {"groups.rejected", true, "Group requests refused (4.00, 4.03, 5.03)"},
    {"groups.from_cache", true, "Group requests answered from the cache alone (Group-ETag)"},
    {"observe.device_observations", false, "Observations held on devices"},
    {"observe.observers", false, "Clients observing through this node"},
    {"observe.notifications_sent", true, "Notifications sent to observers"},
    {"observe.rejected", true, "Observe registrations refused (5.03) at an observer limit"},
    {"queue.pending", false, "Requests queued for sleeping devices"},
    {"cluster.nodes_alive", false, "Cluster nodes seen alive"},
    {"cluster.forwarded_records", true, "DTLS records forwarded to other nodes"},
    {"cluster.nodes_configured", false, "Cluster nodes configured, this one included"},
    {"cluster.forwarded_in", true, "DTLS records other nodes forwarded to this one"},
    {"cluster.replies_out", true, "Datagrams sent to clients through another node"},
    {"cluster.replies_in", true, "Other nodes' datagrams sent to clients from this node"},
    {"cluster.rejected", true, "Internal channel messages refused (MAC, age, malformed)"},
    {"cluster.unroutable", true, "Records whose CID names a node not configured"},
    {"memory.rss_bytes", false, "Resident set size of tetherd in bytes"},
    {"admin.connections", false, "Open admin HTTP connections"},
    {"admin.requests", true, "Admin HTTP requests answered"},
    {"admin.auth_failures", true,
     "Admin requests refused for a wrong token (logged at most 10 per 10 s)"},
    {"admin.waiting", false, "Admin requests waiting for a device's CoAP answer"},
};

/* Appends s to b with HELP-text escaping (backslash, newline). */
static void put_help_text(tetherd_abuf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            tetherd_abuf_put(b, "\\\\", 2);
        else if (*s == '\n')
            tetherd_abuf_put(b, "\\n", 2);
        else
            tetherd_abuf_put(b, s, 1);
    }
}

/* Emits one family (HELP, TYPE, sample) for a numeric leaf. `seen` holds
 * names already emitted: two stats that map to one name keep the first. */
static void put_metric(tetherd_abuf_t *b, json_t *seen, const char *name, const char *dotted,
                       json_t *v)
{
    const metric_info_t *mi = NULL;
    for (size_t i = 0; i < sizeof metric_info / sizeof metric_info[0]; i++)
        if (strcmp(metric_info[i].path, dotted) == 0)
            mi = &metric_info[i];
    char full[176];
    size_t nl = strlen(name);
    bool counter = mi && mi->counter;
    snprintf(full, sizeof full, "%s%s", name,
             counter && !(nl > 6 && strcmp(name + nl - 6, "_total") == 0) ? "_total" : "");
    if (json_object_get(seen, full))
        return;
    json_object_set_new(seen, full, json_true());
    tetherd_abuf_printf(b, "# HELP %s ", full);
    if (mi) {
        put_help_text(b, mi->help);
    } else {
        put_help_text(b, "tether stat ");
        put_help_text(b, dotted);
    }
    tetherd_abuf_printf(b, "\n# TYPE %s %s\n%s ", full, counter ? "counter" : "gauge", full);
    if (json_is_integer(v)) {
        tetherd_abuf_printf(b, "%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isnan(d))
            tetherd_abuf_printf(b, "NaN\n");
        else if (isinf(d))
            tetherd_abuf_printf(b, "%sInf\n", d < 0 ? "-" : "+");
        else
            tetherd_abuf_printf(b, "%.17g\n", d);
    } else {
        tetherd_abuf_printf(b, "%d\n", json_is_true(v) ? 1 : 0);
    }
}

/* Walks the stats tree; every number or boolean leaf becomes a metric
 * tether_<path with non [a-zA-Z0-9_] characters as '_'>. */
static void put_metrics(tetherd_abuf_t *b, json_t *seen, json_t *obj, const char *name,
                        const char *dotted, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        char n2[160], d2[160];
        int nl = snprintf(n2, sizeof n2, "%s_%s", name, k);
        int dl = snprintf(d2, sizeof d2, "%s%s%s", dotted, *dotted ? "." : "", k);
        if (nl < 0 || nl >= (int)sizeof n2 || dl < 0 || dl >= (int)sizeof d2)
            continue;
        for (char *p = n2; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_'))
                *p = '_';
        if (json_is_object(v) && depth < 8)
            put_metrics(b, seen, v, n2, d2, depth + 1);
        else if (json_is_number(v) || json_is_boolean(v))
            put_metric(b, seen, n2, d2, v);
    }
}

/* Prometheus text exposition format 0.0.4, from the same data as /stats. */
void admin_h_metrics(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    tetherd_admin_t *a = c->a;
    json_t *s = collect_stats(a);
    json_t *seen = json_object();
    if (!s || !seen) {
        json_decref(s);
        json_decref(seen);
        admin_respond_error(c, 500, NULL, "collecting stats failed");
        return;
    }
    tetherd_abuf_t *b = &a->scratch;
    b->len = 0;
    tetherd_abuf_printf(b,
                        "# HELP tether_node_info Identity of this tether node\n"
                        "# TYPE tether_node_info gauge\n"
                        "tether_node_info{node_id=\"%u\"} 1\n",
                        a->cfg->node_id);
    put_metrics(b, seen, s, "tether", "", 0);
    json_decref(s);
    json_decref(seen);
    admin_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b->p, b->len, NULL);
}

/* A JSON string, or a marker when the bytes are not UTF-8 (argv, env). */
