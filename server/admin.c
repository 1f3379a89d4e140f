/* Admin endpoint (SPEC S6): HTTP/1.1 connections on libuv, routing, JSON.
 *
 * Connection life: read into a fixed buffer, feed the sans-I/O parser
 * (lib/util/http.c), answer each complete request synchronously and in
 * order into a pair of output buffers (one being written, one filling).
 * When too much output waits, reading pauses (pipelining cannot grow memory
 * without bound). An answer that ends the connection is followed by a
 * write-side shutdown and a short lingering read, so the client sees the
 * answer rather than a reset. Handles are closed with uv_close and the
 * connection is freed in the last close callback. */
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "admin_coap.h"
#include "tether/common.h"
#include "tether/http.h"
#include "tether/log.h"

#define READ_BUF 16384
#define OUT_HIGH (256 * 1024) /* pause reading while this much output waits */
#define OUT_KEEP 65536        /* larger output buffers are freed once written */
#define LINGER_MS 2000        /* reading after our FIN, and writing a final answer */
#define REJECT_EXTRA 16       /* connections over the limit that still get a 503 */
#define BACKLOG 128
#define LIST_DEFAULT 100 /* GET /devices page size */
#define LIST_MAX 1000
#define REQ_TIMEOUT_SLACK_MS 1000 /* default wait: the node's request timeout plus this */

typedef struct tetherd_admin_conn conn_t;

struct tetherd_admin_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    tetherd_admin_t *a;
    conn_t *prev, *next;
    tether_http_parser_t http;
    tetherd_abuf_t out[2]; /* out[fill] collects answers; the other one is being written */
    int fill;
    size_t rlen, roff; /* unparsed input is rbuf[roff..rlen) */
    int handles;       /* libuv handles not yet closed */
    bool reading, writing, closing, close_after_flush, shutting, lingering, peer_eof;
    /* the request being answered */
    bool head_only, http10_keep_alive;
    int status;
    /* an operator CoAP request waiting for its answer (a->waiting list);
     * nothing after it on the connection is parsed meanwhile */
    bool waiting, in_send, resume;
    uint64_t wait_id;
    uint32_t wait_ms;
    conn_t *wprev, *wnext;
    char wpath[128];
    char peer[64];
    char rbuf[READ_BUF];
};

typedef void (*handler_fn)(conn_t *c, const tether_http_request_t *r);

typedef struct {
    const char *pattern; /* '*' one path segment, '**' the (non-empty) rest */
    unsigned methods;    /* bits of tether_http_method_t; GET implies HEAD */
    bool auth;
    handler_fn fn; /* NULL: 501 for now */
} route_t;

#define M(m) (1u << (m))

/* --- growable buffers ------------------------------------------------------ */

/* Makes room for `more` bytes plus a NUL. 0 or TETHER_ENOMEM. */
static int abuf_reserve(tetherd_abuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return TETHER_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int abuf_put(tetherd_abuf_t *b, const void *data, size_t n)
{
    if (abuf_reserve(b, n) < 0)
        return TETHER_ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static int abuf_printf(tetherd_abuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends formatted text. 0 or TETHER_ENOMEM. */
static int abuf_printf(tetherd_abuf_t *b, const char *fmt, ...)
{
    for (int pass = 0; pass < 2; pass++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return TETHER_EINVAL;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        if (abuf_reserve(b, (size_t)n) < 0)
            return TETHER_ENOMEM;
    }
    return TETHER_ENOMEM;
}

static void abuf_free(tetherd_abuf_t *b)
{
    free(b->p);
    *b = (tetherd_abuf_t){0};
}

/* --- stats ----------------------------------------------------------------- */

/* SPEC S11: these dotted paths always exist in /stats. */
static const char *const s11_paths[] = {
    "sessions.active",          "sessions.handshakes_full",   "sessions.handshakes_resumed",
    "sessions.address_changes", "devices.registered",         "proxy.requests",
    "proxy.cache_hits",         "proxy.cache_misses",         "observe.device_observations",
    "observe.observers",        "observe.notifications_sent", "queue.pending",
    "cluster.nodes_alive",      "cluster.forwarded_records",  "memory.rss_bytes",
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
        tetherd_admin_stat_set(s, "admin.waiting", (json_int_t)a->nwaiting) < 0 ||
        (a->hooks.stats && a->hooks.stats(s, a->hooks.user) < 0)) {
        json_decref(s);
        return NULL;
    }
    return s;
}

/* --- connection plumbing -------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->a->nconns--;
    tether_http_parser_free(&c->http);
    abuf_free(&c->out[0]);
    abuf_free(&c->out[1]);
    free(c);
}

/* Takes c off the list of connections waiting for a CoAP answer. */
static void wait_unlink(conn_t *c)
{
    if (!c->waiting)
        return;
    c->waiting = false;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        c->a->waiting = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
    c->a->nwaiting--;
}

/* Starts closing both handles; safe to call more than once and from any
 * callback of the connection (memory goes in on_handle_closed). A CoAP
 * answer that arrives later finds nobody waiting and is dropped. */
static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    wait_unlink(c);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t);
static void wait_done(conn_t *c);

static void arm_timer(conn_t *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    /* Reading only runs while rbuf holds nothing unparsed. */
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_on(conn_t *c)
{
    if (!c->reading && !c->closing && !c->peer_eof) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    }
}

static void read_off(conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    /* Read and drop whatever the client still sends until it closes, so our
     * answer is not destroyed by a reset; bounded by LINGER_MS. */
    c->lingering = true;
    c->roff = c->rlen = 0;
    read_on(c);
    arm_timer(c, LINGER_MS);
}

static void begin_shutdown(conn_t *c)
{
    if (c->shutting || c->closing)
        return;
    c->shutting = true;
    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void on_write(uv_write_t *req, int status);

/* Starts writing the filled buffer unless a write is in flight; after the
 * last answer of a closing connection, shuts the write side down. */
static void flush(conn_t *c)
{
    if (c->writing || c->closing)
        return;
    tetherd_abuf_t *b = &c->out[c->fill];
    if (b->len == 0) {
        if (c->close_after_flush)
            begin_shutdown(c);
        return;
    }
    uv_buf_t ub = uv_buf_init(b->p, (unsigned)b->len);
    c->wreq.data = c;
    c->writing = true;
    c->fill ^= 1;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_write) < 0)
        conn_close(c);
}

static size_t pending_output(const conn_t *c)
{
    return c->out[0].len + c->out[1].len;
}

static void process(conn_t *c);

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    c->writing = false;
    if (c->closing) /* cancelled by uv_close */
        return;
    tetherd_abuf_t *done = &c->out[c->fill ^ 1];
    done->len = 0;
    if (done->cap > OUT_KEEP)
        abuf_free(done);
    if (status < 0) {
        conn_close(c);
        return;
    }
    process(c); /* input that waited for the output to drain; then flush */
}

/* --- responses -------------------------------------------------------------- */

/* Queues one answer to the current request: head, then the body unless the
 * request was HEAD. `extra` holds complete header lines or is NULL. */
static void respond(conn_t *c, int status, const char *ctype, const char *body, size_t blen,
                    const char *extra)
{
    char hdrs[512];
    snprintf(hdrs, sizeof hdrs, "Cache-Control: no-store\r\n%s%s",
             c->http10_keep_alive && !c->close_after_flush ? "Connection: keep-alive\r\n" : "",
             extra ? extra : "");
    tetherd_abuf_t *b = &c->out[c->fill];
    size_t hl;
    c->status = status;
    if (abuf_reserve(b, 256 + strlen(hdrs) + blen) < 0 ||
        tether_http_format_head(b->p + b->len, b->cap - b->len, status, ctype, blen,
                                c->close_after_flush, hdrs, &hl) < 0) {
        conn_close(c);
        return;
    }
    b->len += hl;
    if (!c->head_only && blen)
        abuf_put(b, body, blen); /* room reserved above */
}

/* Serialises j (borrowed) as the body of a JSON answer. */
static void respond_json(conn_t *c, int status, const json_t *j, const char *extra)
{
    tetherd_abuf_t *s = &c->a->scratch;
    s->len = 0;
    size_t n = j ? json_dumpb(j, s->p, s->cap, JSON_COMPACT) : 0;
    if (n == 0 || (n + 1 >= s->cap && (abuf_reserve(s, n + 1) < 0 ||
                                       json_dumpb(j, s->p, s->cap, JSON_COMPACT) != n))) {
        static const char oom[] = "{\"error\":\"internal server error\",\"detail\":\"out of "
                                  "memory\"}\n";
        respond(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    s->p[n] = '\n';
    respond(c, status, "application/json", s->p, n + 1, extra);
}

static void respond_error(conn_t *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sends `j` (an object, or NULL for a new one; the reference is taken)
 * with "error": "<reason phrase, lower case>" and "detail": `detail`. */
static void respond_error_obj(conn_t *c, int status, const char *extra, json_t *j,
                              const char *detail)
{
    char reason[64];
    snprintf(reason, sizeof reason, "%s", tether_http_reason(status));
    for (char *p = reason; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!j)
        j = json_object();
    json_t *d = json_stringn(detail, strlen(detail));
    if (j) {
        json_object_set_new(j, "error", json_string(reason));
        /* a detail quoting client bytes may not be UTF-8 */
        json_object_set_new(j, "detail", d ? d : json_string("(not UTF-8)"));
    } else {
        json_decref(d);
    }
    respond_json(c, status, j, extra);
    json_decref(j);
}

/* {"error": "<reason phrase, lower case>", "detail": "<fmt...>"}. */
static void respond_error(conn_t *c, int status, const char *extra, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    respond_error_obj(c, status, extra, NULL, detail);
}

/* The request body as JSON; NULL after answering 400 with jansson's line,
 * column and reason. */
static json_t *parse_body(conn_t *c, const tether_http_request_t *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        respond_error(c, 400, NULL, "invalid JSON at line %d column %d: %s", err.line, err.column,
                      err.text);
    return j;
}

/* --- handlers --------------------------------------------------------------- */

static void h_health(conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    respond(c, 200, "application/json", ok, sizeof ok - 1, NULL);
}

static void h_ready(conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    tetherd_admin_t *a = c->a;
    json_t *j = json_object();
    if (!j) {
        respond_json(c, 500, NULL, NULL);
        return;
    }
    json_object_set_new(j, "ready", json_false());
    bool ready = !a->draining;
    if (!ready)
        json_object_set_new(j, "detail", json_string("draining"));
    else if (a->hooks.ready)
        ready = a->hooks.ready(j, a->hooks.user);
    json_object_set_new(j, "ready", json_boolean(ready));
    if (!ready) {
        json_object_set_new(j, "error", json_string("not ready"));
        if (!json_is_string(json_object_get(j, "detail")))
            json_object_set_new(j, "detail", json_string("not ready"));
    }
    respond_json(c, ready ? 200 : 503, j, NULL);
    json_decref(j);
}

static void h_stats(conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    json_t *s = collect_stats(c->a);
    if (!s) {
        respond_error(c, 500, NULL, "collecting stats failed");
        return;
    }
    respond_json(c, 200, s, NULL);
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
    {"admin.waiting", false, "Admin requests waiting for a device's CoAP answer"},
};

/* Appends s to b with HELP-text escaping (backslash, newline). */
static void put_help_text(tetherd_abuf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            abuf_put(b, "\\\\", 2);
        else if (*s == '\n')
            abuf_put(b, "\\n", 2);
        else
            abuf_put(b, s, 1);
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
    abuf_printf(b, "# HELP %s ", full);
    if (mi) {
        put_help_text(b, mi->help);
    } else {
        put_help_text(b, "tether stat ");
        put_help_text(b, dotted);
    }
    abuf_printf(b, "\n# TYPE %s %s\n%s ", full, counter ? "counter" : "gauge", full);
    if (json_is_integer(v)) {
        abuf_printf(b, "%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isnan(d))
            abuf_printf(b, "NaN\n");
        else if (isinf(d))
            abuf_printf(b, "%sInf\n", d < 0 ? "-" : "+");
        else
            abuf_printf(b, "%.17g\n", d);
    } else {
        abuf_printf(b, "%d\n", json_is_true(v) ? 1 : 0);
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
static void h_metrics(conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    tetherd_admin_t *a = c->a;
    json_t *s = collect_stats(a);
    json_t *seen = json_object();
    if (!s || !seen) {
        json_decref(s);
        json_decref(seen);
        respond_error(c, 500, NULL, "collecting stats failed");
        return;
    }
    tetherd_abuf_t *b = &a->scratch;
    b->len = 0;
    abuf_printf(b,
                "# HELP tether_node_info Identity of this tether node\n"
                "# TYPE tether_node_info gauge\n"
                "tether_node_info{node_id=\"%u\"} 1\n",
                a->cfg->node_id);
    put_metrics(b, seen, s, "tether", "", 0);
    json_decref(s);
    json_decref(seen);
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b->p, b->len, NULL);
}

/* A JSON string, or a marker when the bytes are not UTF-8 (argv, env). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    return j ? j : json_string("(not UTF-8)");
}

static json_t *jsecret(const char *s)
{
    return json_string(*s ? "***" : "");
}

/* Replaces the userinfo of a URL (user:password before the @) with three stars. */
static json_t *jurl_redacted(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    if (!at)
        return jstr(url);
    char buf[300];
    snprintf(buf, sizeof buf, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    return jstr(buf);
}

/* The effective configuration; secrets are "***" when set, "" when not. */
static void h_config(conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    const tetherd_config_t *cfg = c->a->cfg;
    json_t *listen = json_array();
    for (size_t i = 0; listen && i < cfg->nlisten; i++) {
        const tetherd_listen_t *l = &cfg->listen[i];
        char buf[100];
        bool v6 = strchr(l->host, ':') != NULL;
        snprintf(buf, sizeof buf, "%s://%s%s%s:%u",
                 l->proto == TETHERD_PROTO_COAP ? "coap" : "coaps", v6 ? "[" : "", l->host,
                 v6 ? "]" : "", l->port);
        json_array_append_new(listen, jstr(buf));
    }
    json_t *j = json_pack(
        "{s:o, s:I, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:s, s:o, s:b,"
        " s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I}}",
        "file", jstr(cfg->file), "node_id", (json_int_t)cfg->node_id, "listen", listen, "admin",
        jstr(cfg->admin), "admin_token", jsecret(cfg->admin_token), "admin_max_connections",
        (json_int_t)cfg->admin_max_connections, "admin_idle_timeout",
        (json_int_t)cfg->admin_idle_timeout, "drain_timeout", (json_int_t)cfg->drain_timeout,
        "redis_url", jurl_redacted(cfg->redis_url), "cluster_key", jsecret(cfg->cluster_key),
        "log_level", tether_log_level_name(tether_log_get_level()), "credentials_file",
        jstr(cfg->credentials_file), "plain_coap_public", (int)cfg->plain_coap_public,
        "coap_options", "multicast_timeout", (json_int_t)cfg->opt_multicast_timeout, "reply_from",
        (json_int_t)cfg->opt_reply_from, "dtls", "cid_length", (json_int_t)cfg->dtls_cid_length,
        "max_sessions", (json_int_t)cfg->dtls_max_sessions, "max_handshakes",
        (json_int_t)cfg->dtls_max_handshakes, "handshake_timeout",
        (json_int_t)cfg->dtls_handshake_timeout, "idle_timeout",
        (json_int_t)cfg->dtls_idle_timeout);
    json_t *dtls = j ? json_object_get(j, "dtls") : NULL;
    if (dtls) { /* paths are not secrets; the key file's contents never leave it */
        json_object_set_new(dtls, "ca_file", jstr(cfg->dtls_ca_file));
        json_object_set_new(dtls, "cert_file", jstr(cfg->dtls_cert_file));
        json_object_set_new(dtls, "key_file", jstr(cfg->dtls_key_file));
        json_object_set_new(dtls, "handshake_rate_per_source", json_integer(cfg->dtls_hs_rate));
        json_object_set_new(dtls, "handshake_burst_per_source", json_integer(cfg->dtls_hs_burst));
    }
    json_t *proxy = j ? json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "request_timeout_ms",
                                  (json_int_t)cfg->proxy_request_timeout_ms, "ack_delay_ms",
                                  (json_int_t)cfg->proxy_ack_delay_ms, "queue_max",
                                  (json_int_t)cfg->proxy_queue_max, "queue_ttl_ms",
                                  (json_int_t)cfg->proxy_queue_ttl_ms, "queue_awake_ms",
                                  (json_int_t)cfg->proxy_queue_awake_ms, "max_devices",
                                  (json_int_t)cfg->proxy_max_devices, "max_pending",
                                  (json_int_t)cfg->proxy_max_pending, "cache_bytes",
                                  (json_int_t)cfg->proxy_cache_bytes)
                      : NULL;
    if (proxy) {
        json_object_set_new(proxy, "max_observers", json_integer(cfg->proxy_max_observers));
        json_object_set_new(proxy, "max_observers_per_resource",
                            json_integer(cfg->proxy_max_observers_per_resource));
        json_object_set_new(j, "proxy", proxy);
    }
    if (j) {
        json_t *nodes = json_object();
        for (size_t i = 0; i < cfg->ncluster_nodes; i++) {
            char id[8];
            snprintf(id, sizeof id, "%u", cfg->cluster_nodes[i].id);
            json_object_set_new(nodes, id, json_string(cfg->cluster_nodes[i].addr));
        }
        json_object_set_new(j, "cluster",
                            json_pack("{s:s, s:o}", "listen", cfg->cluster_listen, "nodes", nodes));
    }
    if (j)
        json_object_set_new(j, "udp",
                            json_pack("{s:I, s:I}", "recv_buffer", (json_int_t)cfg->udp_recv_buffer,
                                      "send_buffer", (json_int_t)cfg->udp_send_buffer));
    if (!j) {
        respond_error(c, 500, NULL, "building the configuration failed");
        return;
    }
    respond_json(c, 200, j, NULL);
    json_decref(j);
}

static void reply_level(conn_t *c, tether_log_level_t lvl, const char *previous)
{
    json_t *j = previous ? json_pack("{s:s, s:s}", "level", tether_log_level_name(lvl), "previous",
                                     previous)
                         : json_pack("{s:s}", "level", tether_log_level_name(lvl));
    respond_json(c, 200, j, NULL);
    json_decref(j);
}

/* GET: the current level. PUT {"level": "debug"}: changes it at runtime. */
static void h_log_level(conn_t *c, const tether_http_request_t *r)
{
    tether_log_level_t old = tether_log_get_level();
    if (r->method != TETHER_HTTP_M_PUT) {
        reply_level(c, old, NULL);
        return;
    }
    json_t *j = parse_body(c, r);
    if (!j)
        return;
    json_t *lv = json_object_get(j, "level");
    tether_log_level_t lvl;
    if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_string(lv)) {
        respond_error(c, 400, NULL, "expected {\"level\": \"error|warn|info|debug\"}");
    } else if (tether_log_level_parse(json_string_value(lv), &lvl) < 0) {
        respond_error(c, 400, NULL, "level must be one of error, warn, info, debug");
    } else {
        /* Log the change at info, on whichever side of it info is enabled. */
        if (lvl >= TETHER_LOG_INFO)
            tether_log_set_level(lvl);
        tether_log_kv(TETHER_LOG_INFO, "admin", "log level changed", "from",
                      tether_log_level_name(old), "to", tether_log_level_name(lvl), NULL);
        tether_log_set_level(lvl);
        reply_level(c, lvl, tether_log_level_name(old));
    }
    json_decref(j);
}

/* --- devices (S6) ------------------------------------------------------------- */

/* Percent-decodes s[0..n) into out[cap], NUL-terminated; with plus_space
 * (query strings) '+' is a space. TETHER_EINVAL for a bad escape, an
 * encoded NUL, or output longer than cap - 1. */
static int pct_decode(const char *s, size_t n, bool plus_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            unsigned v;
            char hx[3] = {i + 1 < n ? s[i + 1] : 0, i + 2 < n ? s[i + 2] : 0, 0};
            if (strspn(hx, "0123456789abcdefABCDEF") != 2 || sscanf(hx, "%x", &v) != 1 || !v)
                return TETHER_EINVAL;
            ch = (char)v;
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return TETHER_EINVAL;
        out[o++] = ch;
    }
    out[o] = 0;
    return 0;
}

/* The {name} of /devices/{name}[/...], decoded into name[cap]. Answers 400
 * and returns false when it cannot be decoded. */
static bool path_device(conn_t *c, const tether_http_request_t *r, char *name, size_t cap)
{
    const size_t pre = sizeof "/devices/" - 1;
    const char *seg = r->path + pre, *end = r->path + r->path_len;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    if (pct_decode(seg, (size_t)((slash ? slash : end) - seg), false, name, cap) < 0) {
        respond_error(c, 400, NULL, "bad device name in the path (bad %%-escape or over %zu bytes)",
                      cap - 1);
        return false;
    }
    return true;
}

/* A device as JSON. Times are Unix epoch milliseconds (registered_at_ms,
 * last_seen_ms), converted from the loop's monotonic clock, plus ages. */
static json_t *device_json(const tetherd_admin_t *a, const tether_device_info_t *d)
{
    uint64_t now = uv_now(a->loop);
    uv_timeval64_t tv;
    int64_t wall = uv_gettimeofday(&tv) == 0 ? tv.tv_sec * 1000 + tv.tv_usec / 1000 : 0;
    uint64_t reg_age = now > d->registered_at ? now - d->registered_at : 0;
    uint64_t seen_age = now > d->last_seen ? now - d->last_seen : 0;
    char addr[64];
    tether_addr_str(&d->addr, addr, sizeof addr);
    return json_pack(
        "{s:o, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:o, s:I, s:I, s:o}", "name",
        jstr(d->name), "regid", d->regid, "online", (int)d->online, "queue_mode",
        (int)d->queue_mode, "lifetime_s", (json_int_t)d->lifetime_s, "registered_at_ms",
        (json_int_t)(wall - (int64_t)reg_age), "last_seen_ms",
        (json_int_t)(wall - (int64_t)seen_age), "last_seen_ago_ms", (json_int_t)seen_age,
        "expires_in_s", (json_int_t)(d->expires > now ? (d->expires - now) / 1000 : 0), "addr",
        addr, "nat_binding_min_ms", (json_int_t)d->nat_binding_min_ms, "nat_binding_max_ms",
        d->nat_binding_max_ms ? json_integer(d->nat_binding_max_ms) : json_null(), "keepalive_ms",
        (json_int_t)d->keepalive_ms, "queued", (json_int_t)d->queued, "links", jstr(d->links));
}

/* Answers 501 and returns false when the process wired no device hooks. */
static bool have_device_hooks(conn_t *c, const tether_http_request_t *r)
{
    const tetherd_admin_hooks_t *h = &c->a->hooks;
    if (h->device && h->device_next && h->device_remove && h->coap_send)
        return true;
    respond_error(c, 501, NULL, "%s %.*s is not available in this process", r->method_name,
                  (int)(r->path_len > 200 ? 200 : r->path_len), r->path);
    return false;
}

typedef struct {
    long limit;
    int online; /* -1: any */
    bool has_cursor, has_glob;
    char cursor[16];
    char glob[2 * TETHER_IDENTITY_MAX];
} list_query_t;

/* Parses ?limit=&cursor=&online=&name= (each at most once, nothing else).
 * Answers 400 and returns false on anything bad. */
static bool parse_list_query(conn_t *c, const tether_http_request_t *r, list_query_t *q)
{
    *q = (list_query_t){.limit = LIST_DEFAULT, .online = -1};
    unsigned seen = 0;
    const char *p = r->query, *end = r->query + r->query_len;
    for (; p && p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        char key[16], val[sizeof q->glob];
        if (item_end == p) {
            p = item_end + 1;
            continue;
        }
        if (!eq || pct_decode(p, (size_t)(eq - p), true, key, sizeof key) < 0 ||
            pct_decode(eq + 1, (size_t)(item_end - eq - 1), true, val, sizeof val) < 0) {
            respond_error(c, 400, NULL, "bad query parameter '%.*s' (expected key=value)",
                          (int)(item_end - p > 100 ? 100 : item_end - p), p);
            return false;
        }
        static const char *const keys[] = {"limit", "cursor", "online", "name"};
        unsigned k = 0;
        while (k < 4 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 4 || (seen & (1u << k))) {
            respond_error(c, 400, NULL,
                          "%s query parameter '%s' (known: limit, cursor, "
                          "online, name; each once)",
                          k == 4 ? "unknown" : "repeated", key);
            return false;
        }
        seen |= 1u << k;
        char *e = NULL;
        if (k == 0) {
            q->limit = strtol(val, &e, 10);
            if (!*val || *e || q->limit < 1 || q->limit > LIST_MAX) {
                respond_error(c, 400, NULL, "limit must be an integer from 1 to %d", LIST_MAX);
                return false;
            }
        } else if (k == 1) {
            size_t n = strlen(val);
            if (n == 0 || n >= sizeof q->cursor || strspn(val, "0123456789abcdef") != n) {
                respond_error(c, 400, NULL, "cursor must be a next_cursor value from a listing");
                return false;
            }
            memcpy(q->cursor, val, n + 1);
            q->has_cursor = true;
        } else if (k == 2) {
            if (strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
                respond_error(c, 400, NULL, "online must be true or false");
                return false;
            }
            q->online = val[0] == 't';
        } else {
            memcpy(q->glob, val, strlen(val) + 1);
            q->has_glob = true;
        }
        p = item_end + 1;
    }
    return true;
}

/* GET /devices: registration order, filtered while paging, so a page
 * holds fewer than `limit` devices only at the end of the listing. */
static void h_devices(conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    list_query_t q;
    if (!have_device_hooks(c, r) || !parse_list_query(c, r, &q))
        return;
    json_t *list = json_array();
    tether_device_info_t info;
    long n = 0;
    bool has = q.has_cursor;
    while (list && n < q.limit &&
           a->hooks.device_next(has ? q.cursor : NULL, &info, a->hooks.user) == 0) {
        snprintf(q.cursor, sizeof q.cursor, "%s", info.regid);
        has = true;
        if ((q.online >= 0 && info.online != (q.online == 1)) ||
            (q.has_glob && fnmatch(q.glob, info.name, 0) != 0))
            continue;
        json_array_append_new(list, device_json(a, &info));
        n++;
    }
    bool more = n == q.limit && a->hooks.device_next(q.cursor, &info, a->hooks.user) == 0;
    json_t *j = json_pack("{s:o, s:o}", "devices", list, "next_cursor",
                          more ? json_string(q.cursor) : json_null());
    if (!j) {
        respond_error(c, 500, NULL, "building the listing failed");
        return;
    }
    respond_json(c, 200, j, NULL);
    json_decref(j);
}

/* GET /devices/{name}: the device; DELETE: removes its registration (its
 * pending requests get 5.02). */
static void h_device(conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    char name[TETHER_IDENTITY_MAX];
    tether_device_info_t info;
    if (!have_device_hooks(c, r) || !path_device(c, r, name, sizeof name))
        return;
    if (r->method == TETHER_HTTP_M_DELETE) {
        if (a->hooks.device_remove(name, a->hooks.user) < 0) {
            respond_error(c, 404, NULL, "no device named '%s'", name);
            return;
        }
        tether_log_kv(TETHER_LOG_INFO, "admin", "device removed", "ep", name, "peer", c->peer,
                      NULL);
        json_t *j = json_pack("{s:o, s:b}", "name", jstr(name), "removed", 1);
        respond_json(c, 200, j, NULL);
        json_decref(j);
        return;
    }
    if (a->hooks.device(name, &info, a->hooks.user) < 0) {
        respond_error(c, 404, NULL, "no device named '%s'", name);
        return;
    }
    json_t *j = device_json(a, &info);
    if (!j) {
        respond_error(c, 500, NULL, "building the device failed");
        return;
    }
    respond_json(c, 200, j, NULL);
    json_decref(j);
}

/* The connection's request is answered: log it and, unless the answer
 * came from inside the send hook (the handler is still running), go on
 * with the connection from a fresh loop iteration, so the node's pump is
 * never re-entered from here. */
static void wait_done(conn_t *c)
{
    wait_unlink(c);
    if (c->in_send)
        return;
    if (tether_log_enabled(TETHER_LOG_DEBUG)) {
        char status[8];
        snprintf(status, sizeof status, "%d", c->status);
        tether_log_kv(TETHER_LOG_DEBUG, "admin", "request", "method", "POST", "path", c->wpath,
                      "status", status, "peer", c->peer, NULL);
    }
    c->resume = true;
    arm_timer(c, 0);
}

/* POST /devices/{name}/request: a CoAP request down the device's tunnel.
 * The answer is deferred until tetherd_admin_coap_answer() or the
 * timeout (504). */
static void h_device_request(conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    static tetherd_coap_req_t req;
    char name[TETHER_IDENTITY_MAX], err[256];
    tether_device_info_t info;
    if (!have_device_hooks(c, r) || !path_device(c, r, name, sizeof name))
        return;
    json_t *body = parse_body(c, r);
    if (!body)
        return;
    uint64_t id = ++a->next_id;
    int rc = tetherd_coap_req_from_json(body, name, id,
                                        a->cfg->proxy_request_timeout_ms + REQ_TIMEOUT_SLACK_MS,
                                        &req, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        respond_error(c, rc == TETHER_ENOSPC ? 413 : 400, NULL, "%s", err);
        return;
    }
    if (a->hooks.device(name, &info, a->hooks.user) < 0) {
        respond_error(c, 404, NULL, "no device named '%s'", name);
        return;
    }
    c->waiting = true;
    c->wait_id = id;
    c->wait_ms = req.timeout_ms;
    c->wnext = a->waiting;
    if (a->waiting)
        a->waiting->wprev = c;
    a->waiting = c;
    a->nwaiting++;
    snprintf(c->wpath, sizeof c->wpath, "%.*s", (int)(r->path_len > 120 ? 120 : r->path_len),
             r->path);
    c->in_send = true;
    rc = a->hooks.coap_send(id, req.buf, req.len, a->hooks.user);
    c->in_send = false;
    if (rc < 0 && c->waiting) {
        wait_unlink(c);
        respond_error(c, 503, NULL, "cannot send the request: %s", tether_strerror(rc));
    }
}

int tetherd_admin_coap_answer(tetherd_admin_t *a, uint64_t id, const uint8_t *msg, size_t len)
{
    conn_t *c = a->waiting;
    while (c && c->wait_id != id)
        c = c->wnext;
    if (!c)
        return TETHER_ENOTFOUND;
    if (len >= 2 && msg[1] == TETHER_COAP_EMPTY)
        return 0; /* an empty ACK: the separate response comes later */
    uint8_t code = 0;
    json_t *j = tetherd_coap_resp_to_json(&a->optreg, msg, len, &code);
    char detail[160] = "";
    int status = 200;
    if (!j) {
        status = 502;
        snprintf(detail, sizeof detail, "the CoAP answer could not be parsed");
    } else if (c->in_send) {
        /* Answered before the request left the node: tether's own verdict. */
        if (code == TETHER_COAP_NOT_FOUND)
            status = 404;
        else if (code == TETHER_COAP_SERVICE_UNAVAILABLE)
            status = 503;
        else if (TETHER_COAP_CLASS(code) >= 4)
            status = 502;
    } else if (code == TETHER_COAP_GATEWAY_TIMEOUT) {
        status = 504;
    } else if (code == TETHER_COAP_BAD_GATEWAY) {
        status = 502;
    }
    if (status == 200) {
        respond_json(c, 200, j, NULL);
        json_decref(j);
    } else {
        json_t *p = json_object_get(j, "payload");
        char cs[6];
        const char *why = c->in_send           ? "tether refused the request"
                          : status == 504      ? "no response from the device in time"
                          : status == 502 && j ? "the device went away"
                                               : "bad answer";
        if (!detail[0])
            snprintf(detail, sizeof detail, "%s (CoAP %s%s%s)", why, tether_coap_code_str(code, cs),
                     json_string_length(p) ? ": " : "",
                     json_string_length(p) ? json_string_value(p) : "");
        respond_error_obj(c, status, NULL, j, detail);
    }
    wait_done(c);
    return 0;
}

size_t tetherd_admin_waiting(const tetherd_admin_t *a)
{
    return a->nwaiting;
}

/* --- routing ---------------------------------------------------------------- */

static const route_t routes[] = {
    {"/health", M(TETHER_HTTP_M_GET), false, h_health},
    {"/ready", M(TETHER_HTTP_M_GET), false, h_ready},
    {"/stats", M(TETHER_HTTP_M_GET), true, h_stats},
    {"/metrics", M(TETHER_HTTP_M_GET), true, h_metrics},
    {"/config", M(TETHER_HTTP_M_GET), true, h_config},
    {"/log-level", M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_PUT), true, h_log_level},
    {"/devices", M(TETHER_HTTP_M_GET), true, h_devices},
    {"/devices/*", M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_DELETE), true, h_device},
    {"/devices/*/request", M(TETHER_HTTP_M_POST), true, h_device_request},
    {"/observations", M(TETHER_HTTP_M_GET), true, NULL},
    {"/cluster", M(TETHER_HTTP_M_GET), true, NULL},
    {"/credentials/*", M(TETHER_HTTP_M_PUT) | M(TETHER_HTTP_M_DELETE), true, NULL},
    {"/coap/**",
     M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_POST) | M(TETHER_HTTP_M_PUT) | M(TETHER_HTTP_M_DELETE),
     true, NULL},
};

/* Literal characters match themselves; '*' one non-empty segment; '**' at
 * the end the non-empty rest of the path. */
static bool route_match(const char *pat, const char *path, size_t len)
{
    size_t i = 0;
    for (const char *p = pat; *p;) {
        if (p[0] == '*' && p[1] == '*')
            return i < len;
        if (*p == '*') {
            size_t j = i;
            while (j < len && path[j] != '/')
                j++;
            if (j == i)
                return false;
            i = j;
            p++;
            continue;
        }
        if (i >= len || path[i] != *p)
            return false;
        i++;
        p++;
    }
    return i == len;
}

static unsigned allowed(const route_t *rt)
{
    unsigned m = rt->methods;
    return m & M(TETHER_HTTP_M_GET) ? m | M(TETHER_HTTP_M_HEAD) : m;
}

/* "Allow: GET, HEAD, PUT\r\n" for a route. */
static void allow_header(const route_t *rt, char *buf, size_t cap)
{
    static const struct {
        tether_http_method_t m;
        const char *name;
    } names[] = {{TETHER_HTTP_M_GET, "GET"},       {TETHER_HTTP_M_HEAD, "HEAD"},
                 {TETHER_HTTP_M_POST, "POST"},     {TETHER_HTTP_M_PUT, "PUT"},
                 {TETHER_HTTP_M_DELETE, "DELETE"}, {TETHER_HTTP_M_PATCH, "PATCH"}};
    unsigned m = allowed(rt);
    size_t n = (size_t)snprintf(buf, cap, "Allow:");
    const char *sep = " ";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < cap; i++)
        if (m & M(names[i].m)) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, names[i].name);
            sep = ", ";
        }
    if (n < cap)
        snprintf(buf + n, cap - n, "\r\n");
}

/* Constant-time in the configured token's length. */
static bool token_equal(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)(want[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

/* Answers 401/403 and returns false unless the request carries the token. */
static bool authorized(conn_t *c, const tether_http_request_t *r)
{
    const char *token = c->a->cfg->admin_token;
    if (!token[0]) {
        respond_error(c, 403, NULL, "admin_token not configured");
        return false;
    }
    size_t len;
    const char *h = tether_http_header(r, "authorization", &len);
    if (!h || len <= 7 || strncasecmp(h, "bearer ", 7) != 0) {
        respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"tether\"\r\n",
                      "missing or malformed \"Authorization: Bearer <token>\" header");
        return false;
    }
    h += 7;
    len -= 7;
    while (len && (*h == ' ' || *h == '\t')) {
        h++;
        len--;
    }
    if (len == 0) {
        respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"tether\"\r\n",
                      "empty bearer token");
        return false;
    }
    if (!token_equal(h, len, token)) {
        tether_log_kv(TETHER_LOG_INFO, "admin", "wrong token", "peer", c->peer, NULL);
        respond_error(c, 403, NULL, "invalid token");
        return false;
    }
    return true;
}

/* Routes one complete request and queues its answer. */
static void handle(conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    a->requests++;
    c->head_only = r->method == TETHER_HTTP_M_HEAD;
    c->http10_keep_alive = r->version_minor == 0 && r->keep_alive;
    if (!r->keep_alive)
        c->close_after_flush = true;
    int plen = r->path_len > 200 ? 200 : (int)r->path_len;
    const route_t *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !rt; i++)
        if (route_match(routes[i].pattern, r->path, r->path_len))
            rt = &routes[i];
    if (!rt) {
        respond_error(c, 404, NULL, "no route for %.*s", plen, r->path);
    } else if (rt->auth && !authorized(c, r)) {
        /* answered */
    } else if (!(allowed(rt) & M(r->method))) {
        char allow[96];
        allow_header(rt, allow, sizeof allow);
        respond_error(c, 405, allow, "%s is not allowed on %.*s", r->method_name, plen, r->path);
    } else if (!rt->fn) {
        respond_error(c, 501, NULL, "%s %.*s is not implemented yet", r->method_name, plen,
                      r->path);
    } else {
        rt->fn(c, r);
    }
    if (!c->waiting && tether_log_enabled(TETHER_LOG_DEBUG)) {
        char path[201], status[8];
        snprintf(path, sizeof path, "%.*s", plen, r->path);
        snprintf(status, sizeof status, "%d", c->status);
        tether_log_kv(TETHER_LOG_DEBUG, "admin", "request", "method", r->method_name, "path", path,
                      "status", status, "peer", c->peer, NULL);
    }
}

/* Parses and answers what rbuf holds, in order, until it is empty, the
 * output backlog is too large, or the connection is to end; then adjusts
 * reading and flushes. */
static void process(conn_t *c)
{
    while (!c->closing && !c->close_after_flush && !c->waiting && c->roff < c->rlen &&
           pending_output(c) < OUT_HIGH) {
        size_t used = 0;
        int rc = tether_http_feed(&c->http, c->rbuf + c->roff, c->rlen - c->roff, &used);
        c->roff += used;
        if (rc == TETHER_HTTP_REQUEST) {
            handle(c, &c->http.req);
            tether_http_next(&c->http);
            arm_timer(c, c->waiting ? c->wait_ms : (uint64_t)c->a->cfg->admin_idle_timeout * 1000);
        } else if (rc == TETHER_HTTP_EXPECT) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (abuf_put(&c->out[c->fill], cont, sizeof cont - 1) < 0)
                conn_close(c);
        } else if (rc < 0) {
            c->head_only = c->http10_keep_alive = false;
            c->close_after_flush = true;
            int st = c->http.error_status ? c->http.error_status : 400;
            respond_error(c, st, NULL, "%s",
                          c->http.error_detail ? c->http.error_detail : "malformed request");
            if (tether_log_enabled(TETHER_LOG_DEBUG)) {
                char status[8];
                snprintf(status, sizeof status, "%d", st);
                tether_log_kv(TETHER_LOG_DEBUG, "admin", "bad request", "status", status, "detail",
                              c->http.error_detail ? c->http.error_detail : "", "peer", c->peer,
                              NULL);
            }
        }
    }
    if (c->closing)
        return;
    if (c->close_after_flush)
        c->roff = c->rlen; /* the rest is never parsed */
    if (c->roff < c->rlen)
        read_off(c); /* backlog: resume from on_write */
    else
        read_on(c);
    flush(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (c->waiting) {
            /* The client gave up on its CoAP request (nginx's 499): drop it. */
            if (tether_log_enabled(TETHER_LOG_DEBUG))
                tether_log_kv(TETHER_LOG_DEBUG, "admin", "client left before the answer", "path",
                              c->wpath, "peer", c->peer, NULL);
            conn_close(c);
            return;
        }
        if (nread != UV_EOF || c->lingering || (!c->writing && pending_output(c) == 0)) {
            conn_close(c);
            return;
        }
        /* Half-close after the last request: answer, then close. */
        read_off(c);
        c->peer_eof = true;
        c->close_after_flush = true;
        flush(c);
        return;
    }
    if (c->lingering || c->close_after_flush)
        return; /* dropped */
    c->rlen = (size_t)nread;
    c->roff = 0;
    process(c);
}

/* Idle: close. Mid-request: 408, then close. Lingering or a last answer
 * that cannot be written in time: close. */
static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing)
        return;
    if (c->resume) { /* a CoAP answer was queued: go on with the connection */
        c->resume = false;
        arm_timer(c, (uint64_t)c->a->cfg->admin_idle_timeout * 1000);
        process(c);
        return;
    }
    if (c->waiting) {
        respond_error(c, 504, NULL, "no answer from the device within %u ms", c->wait_ms);
        wait_done(c);
        return;
    }
    if (c->lingering || c->close_after_flush || !tether_http_in_progress(&c->http)) {
        conn_close(c);
        return;
    }
    c->head_only = c->http10_keep_alive = false;
    c->close_after_flush = true;
    respond_error(c, 408, NULL, "no complete request within %u s",
                  (unsigned)c->a->cfg->admin_idle_timeout);
    arm_timer(c, LINGER_MS);
    flush(c);
}

static void on_overflow_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    tetherd_admin_t *a = server->data;
    if (status < 0) {
        tether_log_kv(TETHER_LOG_WARN, "admin", "accept failed", "error", uv_strerror(status),
                      NULL);
        return;
    }
    size_t limit = a->cfg->admin_max_connections;
    conn_t *c = a->nconns < limit + REJECT_EXTRA ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        /* Far over the limit (or no memory): accept and drop at once. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (t && uv_tcp_init(a->loop, t) == 0) {
            uv_accept(server, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, on_overflow_closed);
        } else {
            free(t);
        }
        return;
    }
    c->a = a;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    tether_http_parser_init(&c->http);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "";
        int port = 0;
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    if (a->nconns > limit) {
        c->close_after_flush = true;
        respond_error(c, 503, NULL, "too many admin connections (limit %zu)", limit);
        arm_timer(c, LINGER_MS);
        flush(c);
        return;
    }
    arm_timer(c, (uint64_t)a->cfg->admin_idle_timeout * 1000);
    read_on(c);
}

/* --- lifecycle -------------------------------------------------------------- */

int tetherd_admin_start(tetherd_admin_t *a, uv_loop_t *loop, const tetherd_config_t *cfg,
                        const tetherd_admin_hooks_t *hooks)
{
    memset(a, 0, sizeof *a);
    a->loop = loop;
    a->cfg = cfg;
    if (hooks)
        a->hooks = *hooks;
    if (tether_coap_optreg_init(&a->optreg, cfg->opt_multicast_timeout, cfg->opt_reply_from) < 0)
        return TETHER_ECONFIG;
    tetherd_listen_t l;
    if (strstr(cfg->admin, "://") || tetherd_parse_listen(cfg->admin, &l) < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "admin", "bad admin address", "admin", cfg->admin, NULL);
        return TETHER_ECONFIG;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", l.port);
    struct sockaddr_storage ss;
    const char *host = strcmp(l.host, "localhost") == 0 ? "127.0.0.1" : l.host;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, l.port, (struct sockaddr_in6 *)&ss)
                               : uv_ip4_addr(host, l.port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "admin", "bad admin address", "admin", cfg->admin, "error",
                      uv_strerror(rc), NULL);
        return TETHER_ECONFIG;
    }
    uv_tcp_init(loop, &a->listener);
    a->listener.data = a;
    rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, BACKLOG, on_connection);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "admin", "cannot listen", "host", l.host, "port", port,
                      "error", uv_strerror(rc), NULL);
        uv_close((uv_handle_t *)&a->listener, NULL);
        return TETHER_EIO;
    }
    a->listening = true;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    a->port = l.port;
    if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen) == 0)
        a->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    snprintf(port, sizeof port, "%u", a->port);
    tether_log_kv(TETHER_LOG_INFO, "admin", "listening", "host", l.host, "port", port, "auth",
                  cfg->admin_token[0] ? "bearer" : "none", NULL);
    if (!cfg->admin_token[0])
        tether_log_kv(TETHER_LOG_WARN, "admin",
                      "admin_token not configured: only /health and /ready are served", NULL);
    return 0;
}

void tetherd_admin_stop(tetherd_admin_t *a)
{
    if (!a->listening)
        return;
    a->listening = false;
    a->stopped = true;
    uv_close((uv_handle_t *)&a->listener, NULL);
    for (conn_t *c = a->conns; c; c = c->next) {
        /* An answer still being written (a drained operator request's, say)
         * goes out first, then the connection shuts down and closes
         * (bounded by the linger timer); idle ones close now. */
        if (!c->closing && (c->writing || pending_output(c))) {
            c->close_after_flush = true;
            c->resume = false;
            read_off(c);
            flush(c);
            arm_timer(c, LINGER_MS);
        } else {
            conn_close(c);
        }
    }
    abuf_free(&a->scratch);
}

void tetherd_admin_set_draining(tetherd_admin_t *a, bool draining)
{
    a->draining = draining;
}
