/* The admin endpoint's HTTP/1.1 connection engine on libuv (SPEC S6).
 *
 * Connection life: read into a fixed buffer, feed the sans-I/O parser
 * (lib/util/http.c), answer each complete request synchronously and in
 * order into a pair of output buffers (one being written, one filling).
 * When too much output waits, reading pauses (pipelining cannot grow memory
 * without bound). An answer that ends the connection is followed by a
 * write-side shutdown and a short lingering read, so the client sees the
 * answer rather than a reset. Handles are closed with uv_close and the
 * connection is freed in the last close callback. A parked request (see
 * conn.h) holds the connection: nothing after it is parsed until it is
 * answered or its timer fires. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

#define OUT_HIGH (256 * 1024) /* pause reading while this much output waits */
#define OUT_KEEP 65536        /* larger output buffers are freed once written */
#define LINGER_MS 2000        /* reading after our FIN, and writing a final answer */
#define REJECT_EXTRA 16       /* connections over the limit that still get a 503 */
#define BACKLOG 128

static void on_handle_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    tether_list_del(&c->a->conns, &c->ln);
    c->a->nconns--;
    tether_http_parser_free(&c->http);
    tetherd_abuf_free(&c->out[0]);
    tetherd_abuf_free(&c->out[1]);
    free(c);
}

void admin_conn_unpark(admin_conn_t *c)
{
    tetherd_admin_t *a = c->a;
    if (!c->waiting)
        return;
    c->waiting = false;
    tether_list_del(&a->waiting, &c->wln);
    a->nwaiting--;
    if (c->streaming)
        a->nstreams--;
    /* An HTTP-to-CoAP request's link goes down with it: an event stream's
     * observer is deregistered (RFC 7641 §3.6, as for a client whose
     * session ended), and the node forgets the link. */
    if (c->http_coap && a->hooks.coap_close && !a->stopped)
        a->hooks.coap_close(c->wait_id, a->hooks.user);
    c->http_coap = c->streaming = false;
    free(c->creq);
    c->creq = NULL;
    tetherd_abuf_free(&c->wbody);
}

/* Both handles close; memory goes in on_handle_closed. An answer that
 * arrives later for a parked request finds nobody waiting and is dropped. */
void admin_conn_close(admin_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    admin_conn_unpark(c);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(admin_conn_t *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    admin_conn_t *c = h->data;
    /* Reading only runs while rbuf holds nothing unparsed. */
    buf->base = c->rbuf;
    buf->len = sizeof c->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_on(admin_conn_t *c)
{
    if (!c->reading && !c->closing && !c->peer_eof) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
            admin_conn_close(c);
            return;
        }
        c->reading = true;
    }
}

static void read_off(admin_conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    admin_conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0 || c->peer_eof) {
        admin_conn_close(c);
        return;
    }
    /* Read and drop whatever the client still sends until it closes, so our
     * answer is not destroyed by a reset; bounded by LINGER_MS. */
    c->lingering = true;
    c->roff = c->rlen = 0;
    read_on(c);
    arm_timer(c, LINGER_MS);
}

static void begin_shutdown(admin_conn_t *c)
{
    if (c->shutting || c->closing)
        return;
    c->shutting = true;
    if (c->peer_eof) {
        admin_conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        admin_conn_close(c);
}

static void on_write(uv_write_t *req, int status);

/* Starts writing the filled buffer unless a write is in flight; after the
 * last answer of a closing connection, shuts the write side down. */
static void flush(admin_conn_t *c)
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
        admin_conn_close(c);
}

static size_t pending_output(const admin_conn_t *c)
{
    return c->out[0].len + c->out[1].len;
}

static void process(admin_conn_t *c);

static void on_write(uv_write_t *req, int status)
{
    admin_conn_t *c = req->data;
    c->writing = false;
    if (c->closing) /* cancelled by uv_close */
        return;
    tetherd_abuf_t *done = &c->out[c->fill ^ 1];
    done->len = 0;
    if (done->cap > OUT_KEEP)
        tetherd_abuf_free(done);
    if (status < 0) {
        admin_conn_close(c);
        return;
    }
    process(c); /* input that waited for the output to drain; then flush */
}

void admin_conn_park(admin_conn_t *c, uint64_t id, uint32_t ms, const tether_http_request_t *r,
                     void (*on_timeout)(admin_conn_t *c))
{
    tetherd_admin_t *a = c->a;
    c->waiting = true;
    c->wait_id = id;
    c->wait_ms = ms;
    c->wait_timeout = on_timeout;
    tether_list_push_front(&a->waiting, &c->wln);
    a->nwaiting++;
    snprintf(c->wmethod, sizeof c->wmethod, "%s", r->method_name);
    snprintf(c->wpath, sizeof c->wpath, "%.*s", (int)(r->path_len > 120 ? 120 : r->path_len),
             r->path);
}

bool admin_conn_push(admin_conn_t *c, const void *data, size_t n)
{
    if (c->closing)
        return false;
    if (pending_output(c) + n > OUT_HIGH || tetherd_abuf_put(&c->out[c->fill], data, n) < 0)
        return false;
    if (!c->in_send)
        flush(c);
    return true;
}

void admin_conn_rearm(admin_conn_t *c)
{
    if (!c->closing && !c->in_send)
        arm_timer(c, c->wait_ms);
}

admin_conn_t *admin_conn_parked(tetherd_admin_t *a, uint64_t id)
{
    for (tether_lnode_t *l = a->waiting.head; l; l = l->next) {
        admin_conn_t *c = container_of(l, admin_conn_t, wln);
        if (c->wait_id == id)
            return c;
    }
    return NULL;
}

void admin_conn_answered(admin_conn_t *c)
{
    admin_conn_unpark(c);
    if (c->in_send)
        return;
    if (tether_log_enabled(TETHER_LOG_DEBUG)) {
        char status[8];
        snprintf(status, sizeof status, "%d", c->status);
        tether_log_kv(TETHER_LOG_DEBUG, "admin", "request", "method", c->wmethod, "path", c->wpath,
                      "status", status, "peer", c->peer, NULL);
    }
    c->resume = true;
    arm_timer(c, 0);
}

size_t tetherd_admin_waiting(const tetherd_admin_t *a)
{
    return a->nwaiting - a->nstreams; /* an event stream has no end to wait for */
}

/* Answers one complete request: connection semantics here, the route
 * decides the rest. */
static void answer(admin_conn_t *c, const tether_http_request_t *r)
{
    c->a->requests++;
    c->head_only = r->method == TETHER_HTTP_M_HEAD;
    c->http10_keep_alive = r->version_minor == 0 && r->keep_alive;
    if (!r->keep_alive)
        c->close_after_flush = true;
    admin_route(c, r);
    if (!c->waiting && tether_log_enabled(TETHER_LOG_DEBUG)) {
        int plen = r->path_len > 200 ? 200 : (int)r->path_len;
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
static void process(admin_conn_t *c)
{
    while (!c->closing && !c->close_after_flush && !c->waiting && c->roff < c->rlen &&
           pending_output(c) < OUT_HIGH) {
        size_t used = 0;
        int rc = tether_http_feed(&c->http, c->rbuf + c->roff, c->rlen - c->roff, &used);
        c->roff += used;
        if (rc == TETHER_HTTP_REQUEST) {
            answer(c, &c->http.req);
            tether_http_next(&c->http);
            arm_timer(c, c->waiting ? c->wait_ms : (uint64_t)c->a->cfg->admin_idle_timeout * 1000);
        } else if (rc == TETHER_HTTP_EXPECT) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (tetherd_abuf_put(&c->out[c->fill], cont, sizeof cont - 1) < 0)
                admin_conn_close(c);
        } else if (rc < 0) {
            c->head_only = c->http10_keep_alive = false;
            c->close_after_flush = true;
            int st = c->http.error_status ? c->http.error_status : 400;
            admin_respond_error(c, st, NULL, "%s",
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
    admin_conn_t *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (c->waiting) {
            /* The client gave up on its parked request (nginx's 499): drop it. */
            if (tether_log_enabled(TETHER_LOG_DEBUG))
                tether_log_kv(TETHER_LOG_DEBUG, "admin", "client left before the answer", "path",
                              c->wpath, "peer", c->peer, NULL);
            admin_conn_close(c);
            return;
        }
        if (nread != UV_EOF || c->lingering || (!c->writing && pending_output(c) == 0)) {
            admin_conn_close(c);
            return;
        }
        /* Half-close after the last request: answer, then close. */
        read_off(c);
        c->peer_eof = true;
        c->close_after_flush = true;
        flush(c);
        return;
    }
    if (c->lingering || c->close_after_flush || c->streaming)
        return; /* dropped (an event stream's client has nothing more to say) */
    c->rlen = (size_t)nread;
    c->roff = 0;
    process(c);
}

/* Idle: close. Mid-request: 408, then close. Lingering or a last answer
 * that cannot be written in time: close. */
static void on_timer(uv_timer_t *t)
{
    admin_conn_t *c = t->data;
    if (c->closing)
        return;
    if (c->resume) { /* a parked request was answered: go on with the connection */
        c->resume = false;
        arm_timer(c, (uint64_t)c->a->cfg->admin_idle_timeout * 1000);
        process(c);
        return;
    }
    if (c->waiting) {
        c->wait_timeout(c);
        if (c->waiting && c->streaming) { /* a stream's keep-alive: it goes on */
            arm_timer(c, c->wait_ms);
            return;
        }
        admin_conn_answered(c);
        return;
    }
    if (c->lingering || c->close_after_flush || !tether_http_in_progress(&c->http)) {
        admin_conn_close(c);
        return;
    }
    c->head_only = c->http10_keep_alive = false;
    c->close_after_flush = true;
    admin_respond_error(c, 408, NULL, "no complete request within %u s",
                        (unsigned)c->a->cfg->admin_idle_timeout);
    arm_timer(c, LINGER_MS);
    flush(c);
}

static void on_overflow_closed(uv_handle_t *h)
{
    free(h);
}

/* Open connections from c's address, c included (c->peer_ip known). */
static size_t conns_from(const tetherd_admin_t *a, const admin_conn_t *c)
{
    size_t n = 0;
    for (const tether_lnode_t *l = a->conns.head; l; l = l->next) {
        const admin_conn_t *o = container_of(l, admin_conn_t, ln);
        n += !o->closing && strcmp(o->peer_ip, c->peer_ip) == 0;
    }
    return n;
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
    admin_conn_t *c = a->nconns < limit + REJECT_EXTRA ? calloc(1, sizeof *c) : NULL;
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
    tether_list_push_front(&a->conns, &c->ln);
    a->nconns++;
    tether_http_parser_init(&c->http);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        admin_conn_close(c);
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
        snprintf(c->peer_ip, sizeof c->peer_ip, "%s", ip);
    }
    /* One address holds at most admin_max_connections_per_address: the
     * connections are shared by the operator and every HTTP client, and
     * one that never completes a request holds its slot for
     * admin_idle_timeout, so one host reconnecting would hold them all. */
    size_t per = a->cfg->admin_max_connections_per_address;
    if (a->nconns > limit || (per && c->peer_ip[0] && conns_from(a, c) > per)) {
        c->close_after_flush = true;
        if (a->nconns > limit)
            admin_respond_error(c, 503, NULL, "too many admin connections (limit %zu)", limit);
        else
            admin_respond_error(c, 503, NULL,
                                "too many admin connections from %s "
                                "(admin_max_connections_per_address %zu)",
                                c->peer_ip, per);
        arm_timer(c, LINGER_MS);
        flush(c);
        return;
    }
    arm_timer(c, (uint64_t)a->cfg->admin_idle_timeout * 1000);
    read_on(c);
}

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
    for (tether_lnode_t *l = a->conns.head; l; l = l->next) {
        admin_conn_t *c = container_of(l, admin_conn_t, ln);
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
            admin_conn_close(c);
        }
    }
    tetherd_abuf_free(&a->scratch);
}

void tetherd_admin_set_draining(tetherd_admin_t *a, bool draining)
{
    a->draining = draining;
}
