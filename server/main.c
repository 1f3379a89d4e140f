/* tetherd: wires libtether's pipeline (tether/pipeline.h) to libuv
 * sockets, one timer, signals, configuration and the admin HTTP API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "cluster.h"
#include "failover.h"
#include "shared.h"
#include "store/rkey.h"
#include "tether/creds.h"
#include "groups.h"
#include "tether/hist.h"
#include "tether/log.h"
#include "tether/pipeline.h"
#include "latency.h"
#include "stats.h"
#include "udp.h"
#include "workers/workers.h"

#define MAX_DGRAM 1500
/* recvmmsg: libuv cuts the receive buffer into 64 KiB chunks, one datagram
 * each, and uses at most 20 of them per call. */
#define RX_CHUNK 65536
#define RX_CHUNKS 20
/* The longest a read's output waits for the rest of the read (S9). */
#define TX_WAIT_US 20

/* A socket's handle data for on_recv: the pipeline interface it feeds. */
typedef struct {
    struct tetherd *d;
    uint8_t iface;
} rx_port_t;

typedef struct {
    uv_udp_t handle;
    tetherd_listen_t conf;
    rx_port_t port;
} listener_t;

typedef struct tetherd {
    uv_loop_t *loop;
    tetherd_config_t cfg;
    /* The whole stack (tether/pipeline.h): interfaces 0..nlisteners-1 are
     * the listeners, then the cluster socket when there is one. */
    tether_pipeline_t *pipe;
    uv_timer_t timer; /* armed at tether_pipeline_next_deadline() */
    tether_time_t timer_at;
    listener_t listeners[TETHERD_MAX_LISTEN];
    size_t nlisteners;
    uv_signal_t sigterm, sigint, sighup;
    tether_creds_t *creds;        /* the credentials file's */
    tether_creds_t *active;       /* in use: creds, or creds with Redis's over them */
    tetherd_shared_t *shared;     /* NULL without redis_url */
    tetherd_failover_t *failover; /* NULL without cluster.failover */
    uint8_t rxbuf[RX_CHUNKS * RX_CHUNK];
    bool rx_busy;
    /* Inside a recvmmsg batch: output waits in txq until the batch ends. */
    bool rx_batch;
    uint64_t flush_ns; /* when the batch's output last left */
    tetherd_txq_t txq;
    /* Service time of each receive batch: from the first datagram read to
     * the last datagram it caused handed to the kernel (microseconds). */
    tether_hist_t service;
    uint64_t batch_t0_ns;       /* 0: no batch being timed */
    tetherd_lat_t lat;          /* both crossings of each relayed request */
    tetherd_cluster_t *cluster; /* NULL without "cluster.listen" */
    uint8_t cluster_iface;
    rx_port_t cluster_port;
    tetherd_admin_t admin;
    bool pumping, pump_again;
    /* SIGTERM: drain until nothing is pending or drain_timeout passes */
    bool draining, stopping;
    uv_timer_t drain_timer;
    tether_time_t drain_deadline;
    tetherd_worker_t worker; /* this process's place among the host's workers */
} tetherd_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    tetherd_t *d = ((rx_port_t *)h->data)->d;
    /* One receive buffer for every socket: libuv fills it (one recvmmsg
     * batch at a time) and hands it back in on_recv before another. */
    if (d->rx_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    d->rx_busy = true;
    buf->base = (char *)d->rxbuf;
    buf->len = sizeof d->rxbuf;
}

static void on_timer(uv_timer_t *t);

/* The pipeline's clock: the loop's milliseconds, with the wall clock the
 * cluster channel and cookie epochs need set for the coming call. */
static tether_time_t now_ms(tetherd_t *d)
{
    tether_pipeline_set_wall_clock(d->pipe, tetherd_wall_ms());
    return uv_now(d->loop);
}

/* The socket of pipeline interface `iface`, or NULL. */
static uv_udp_t *iface_sock(tetherd_t *d, uint8_t iface)
{
    if (iface < d->nlisteners)
        return &d->listeners[iface].handle;
    if (d->cluster && iface == d->cluster_iface)
        return tetherd_cluster_sock(d->cluster);
    return NULL;
}

/* After every call into the pipeline: answers to operator requests go to
 * the admin endpoint (which may feed the pipeline again: repeat until
 * quiet), the outbox moves to the transmit batch, and the timer is
 * re-armed for the next deadline. The datagrams gathered leave at once,
 * except inside a recvmmsg batch, which sends them when it ends
 * (on_recv). A nested call (from inside the admin endpoint) only asks the
 * outer one to loop. */
static void outbox_to_txq(tetherd_t *d)
{
    size_t n = tether_pipeline_out_count(d->pipe);
    for (size_t i = 0; i < n; i++) {
        const tether_dgram_t *g = tether_pipeline_out_get(d->pipe, i);
        uv_udp_t *sock = d->stopping ? NULL : iface_sock(d, g->iface);
        if (sock)
            tetherd_txq_push(&d->txq, sock, &g->to, g->data, g->len);
    }
    tether_pipeline_out_clear(d->pipe);
}

static void pump(tetherd_t *d)
{
    if (d->pumping) {
        d->pump_again = true;
        return;
    }
    d->pumping = true;
    /* Ceiling writes the DTLS events asked for (outside pipeline calls). */
    for (int i = 0; d->failover && i < 4 && tetherd_failover_run(d->failover); i++)
        tether_pipeline_settle(d->pipe, now_ms(d));
    tether_out_t o;
    do {
        d->pump_again = false;
        while (tether_pipeline_internal_take(d->pipe, &o))
            tetherd_admin_coap_answer(&d->admin, o.link.id, o.data, o.len);
    } while (d->pump_again);
    d->pumping = false;
    if (!d->rx_batch) /* messages for other nodes bundled so far */
        tether_pipeline_flush(d->pipe, now_ms(d));
    outbox_to_txq(d);
    if (!d->rx_batch)
        tetherd_txq_flush(&d->txq);
    tether_time_t at = tether_pipeline_next_deadline(d->pipe), now = uv_now(d->loop);
    if (at != d->timer_at && !d->stopping) {
        d->timer_at = at;
        if (at == UINT64_MAX)
            uv_timer_stop(&d->timer);
        else
            uv_timer_start(&d->timer, on_timer, at > now ? at - now : 0, 0);
    }
}

/* Retransmissions, timeouts, heartbeats: when the pipeline says. */
static void on_timer(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    d->timer_at = 0;
    tether_pipeline_tick(d->pipe, now_ms(d));
    pump(d);
}

static void set_addr(tether_addr_t *a, const struct sockaddr *sa)
{
    a->len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&a->ss, sa, a->len);
}

/* Per-request latency (server/latency.c) sees each CoAP message that
 * crosses the node on a DTLS session. */
static void lat_tap(void *user, bool in, uint64_t link, const uint8_t *msg, size_t len)
{
    tetherd_t *d = user;
    if (in)
        tetherd_lat_in(&d->lat, link, msg, len);
    else
        tetherd_lat_out(&d->lat, link, msg, len);
}

/* Loads the credentials file named in the config (or an empty set). */
static int load_creds(tetherd_t *d, tether_creds_t **out)
{
    char err[512];
    if (!d->cfg.credentials_file[0])
        return tether_creds_empty(out);
    int rc = tether_creds_load(d->cfg.credentials_file, out, err, sizeof err);
    if (rc < 0)
        tether_log_kv(TETHER_LOG_ERROR, "creds", "cannot load credentials", "error", err, NULL);
    return rc;
}

/* The groups_file's groups (re)defined on the node; false (logged) when
 * it cannot be read. */
static bool load_groups(tetherd_t *d)
{
    char err[512];
    if (!d->cfg.groups_file[0])
        return true;
    if (tetherd_groups_load(tether_pipeline_node(d->pipe), d->cfg.groups_file, err, sizeof err) <
        0) {
        tether_log_kv(TETHER_LOG_ERROR, "groups", "cannot load groups", "error", err, NULL);
        return false;
    }
    return true;
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    tetherd_t *d = s->data;
    tether_creds_t *fresh;
    if (load_creds(d, &fresh) < 0) {
        tether_log_kv(TETHER_LOG_WARN, "creds", "reload failed; keeping the previous set", NULL);
        return;
    }
    if (d->shared) {
        tetherd_shared_file_creds(d->shared, fresh); /* applies fresh + Redis's */
    } else {
        tether_pipeline_set_creds(d->pipe, fresh, now_ms(d));
        d->active = fresh;
    }
    tether_creds_free(d->creds);
    d->creds = fresh;
    char n[24], revoked[24];
    snprintf(n, sizeof n, "%zu", tether_creds_count(fresh));
    const tether_dtls_srv_t *dtls = tether_pipeline_dtls(d->pipe);
    snprintf(revoked, sizeof revoked, "%llu",
             dtls ? (unsigned long long)tether_dtls_stats(dtls)->sessions_revoked : 0ull);
    tether_log_kv(TETHER_LOG_INFO, "creds", "reloaded", "entries", n, "sessions_revoked_total",
                  revoked, NULL);
    if (!load_groups(d))
        tether_log_kv(TETHER_LOG_WARN, "groups", "reload failed; earlier groups stay", NULL);
    pump(d); /* revoked sessions: their links go down at once */
}

/* The batch's output so far leaves (bundles sealed, a sendmmsg per
 * socket), its requests timed; at its end, its service time too. */
static void send_now(tetherd_t *d, bool batch_end)
{
    tether_pipeline_flush(d->pipe, now_ms(d));
    outbox_to_txq(d);
    tetherd_txq_flush(&d->txq);
    if (!d->batch_t0_ns)
        return;
    uint64_t t1 = uv_hrtime();
    tetherd_lat_sent(&d->lat, t1, batch_end);
    if (!batch_end)
        return;
    tether_hist_record(&d->service, (t1 - d->batch_t0_ns) / 1000);
    d->batch_t0_ns = 0;
}

/* One datagram, or the end of a read, on a listener or the cluster's
 * socket. With recvmmsg, libuv calls this once per datagram of a batch
 * (UV_UDP_MMSG_CHUNK, a slice of rxbuf), then once with addr == NULL
 * (UV_UDP_MMSG_FREE) to hand rxbuf back: the batch's output then leaves
 * with one sendmmsg per socket. Without recvmmsg every datagram's output
 * leaves after it, as pump() does for timers and the admin endpoint. */
static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    rx_port_t *port = h->data;
    tetherd_t *d = port->d;
    if (buf->base && !(flags & UV_UDP_MMSG_CHUNK))
        d->rx_busy = false;
    if (!addr) { /* end of a batch, nothing to read, or a read error */
        d->rx_batch = false;
        send_now(d, true);
        return;
    }
    if (flags & UV_UDP_MMSG_CHUNK)
        d->rx_batch = true;
    if (nread <= 0 || (flags & UV_UDP_PARTIAL) || (d->stopping && port == &d->cluster_port))
        return;
    if (!d->batch_t0_ns) {
        d->batch_t0_ns = d->flush_ns = uv_hrtime();
        tetherd_lat_read(&d->lat, d->batch_t0_ns);
    }
    tether_addr_t from;
    set_addr(&from, addr);
    tether_pipeline_input(d->pipe, port->iface, &from, (const uint8_t *)buf->base, (size_t)nread,
                          now_ms(d));
    pump(d);
    /* A cluster datagram is a batch already (a bundle, cluster.h): its
     * output leaves after it; held to the end of the read, the cross-node
     * stage ran at half the throughput (git log). A listener's leaves once
     * it waited TX_WAIT_US (a read: up to 20 datagrams, ~6.5 us each). */
    uint64_t t = uv_hrtime();
    if (!d->rx_batch || port == &d->cluster_port || t - d->flush_ns >= TX_WAIT_US * 1000) {
        send_now(d, !d->rx_batch);
        d->flush_ns = t;
    }
}

/* Opens listener lc, or takes over `fd`, the socket the workers'
 * supervisor bound for this worker (-1: bind here). */
static int open_listener(tetherd_t *d, const tetherd_listen_t *lc, int fd)
{
    listener_t *l = &d->listeners[d->nlisteners];
    struct sockaddr_storage ss;
    socklen_t sl;
    char port[8];
    snprintf(port, sizeof port, "%u", lc->port);
    int rc = tetherd_listen_sockaddr(lc, &ss, &sl);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "bad listen address", "host", lc->host, NULL);
        return rc;
    }
    l->conf = *lc;
    l->port = (rx_port_t){.d = d, .iface = (uint8_t)d->nlisteners};
    /* With the address family given, the socket exists before bind, so its
     * buffers are sized before traffic can arrive. */
    rc =
        uv_udp_init_ex(d->loop, &l->handle, (fd >= 0 ? AF_UNSPEC : ss.ss_family) | UV_UDP_RECVMMSG);
    if (rc == 0 && fd >= 0)
        rc = uv_udp_open(&l->handle, fd);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "cannot create socket", "host", lc->host, "port",
                      port, "error", uv_strerror(rc), NULL);
        return rc;
    }
    l->handle.data = &l->port;
    int rcvbuf = 0, sndbuf = 0;
    tetherd_udp_set_buffers(&l->handle, d->cfg.udp_recv_buffer, d->cfg.udp_send_buffer, &rcvbuf,
                            &sndbuf);
    rc = fd >= 0 ? 0 : uv_udp_bind(&l->handle, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&l->handle, on_alloc, on_recv);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "cannot listen", "host", lc->host, "port", port,
                      "error", uv_strerror(rc), NULL);
        uv_close((uv_handle_t *)&l->handle, NULL);
        return rc;
    }
    d->nlisteners++;
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_udp_getsockname(&l->handle, (struct sockaddr *)&bound, &blen) == 0) {
        uint16_t p = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                       : ((struct sockaddr_in *)&bound)->sin_port);
        l->conf.port = p;
        snprintf(port, sizeof port, "%u", p);
    }
    char rcv[16], snd[16];
    snprintf(rcv, sizeof rcv, "%d", rcvbuf);
    snprintf(snd, sizeof snd, "%d", sndbuf);
    tether_log_kv(TETHER_LOG_INFO, "udp", "listening", "host", lc->host, "port", port, "proto",
                  lc->proto == TETHERD_PROTO_COAP ? "coap" : "coaps", "recvmmsg",
                  uv_udp_using_recvmmsg(&l->handle) ? "yes" : "no", "rcvbuf", rcv, "sndbuf", snd,
                  NULL);
    return 0;
}

/* --- shared state (shared.h) ------------------------------------------------ */

/* A new active credential set, as SIGHUP applies one. */
static void shared_apply_creds(void *user, tether_creds_t *active)
{
    tetherd_t *d = user;
    tether_pipeline_set_creds(d->pipe, active, now_ms(d));
    if (d->active != d->creds)
        tether_creds_free(d->active);
    d->active = active;
}

/* A node with a live lease: the channel learns its address. */
static void shared_node_live(void *user, uint8_t id, const tether_addr_t *addr)
{
    tetherd_t *d = user;
    tether_channel_t *ch = tether_pipeline_channel(d->pipe);
    if (ch)
        tether_channel_node_lease(ch, id, addr);
    pump(d);
}

static void shared_cred_done(void *user, uint64_t id, int rc, uint64_t version)
{
    tetherd_admin_cred_done(&((tetherd_t *)user)->admin, id, rc, version);
}

/* The store completed something from the loop: its callbacks may have fed
 * the node, so settle the pipeline before sending. */
static void shared_pump(void *user)
{
    tetherd_t *d = user;
    tether_pipeline_settle(d->pipe, now_ms(d));
    pump(d);
}

static void shared_member(void *user, uint8_t id, const tetherd_member_t *m)
{
    tetherd_t *d = user;
    if (d->failover && d->pipe)
        tetherd_failover_member(d->failover, id, m);
}

static int admin_cred(const tether_creds_entry_t *e, const char *identity, uint64_t id, void *user)
{
    return tetherd_shared_cred(((tetherd_t *)user)->shared, e, identity, id);
}

static json_t *admin_cluster(void *user)
{
    tetherd_t *d = user;
    return tetherd_shared_cluster_json(d->shared, &d->cfg, tether_pipeline_channel(d->pipe));
}

/* /stats and /metrics (server/stats.c). */
static json_t *admin_observations(void *user)
{
    tetherd_t *d = user;
    return tetherd_admin_observations_json(tether_node_store(tether_pipeline_node(d->pipe)),
                                           now_ms(d));
}

static int stats_hook(json_t *st, void *user)
{
    tetherd_t *d = user;
    const tetherd_stats_src_t src = {.cfg = &d->cfg,
                                     .pipe = d->pipe,
                                     .tx = &d->txq.stats,
                                     .service = &d->service,
                                     .lat = &d->lat};
    int rc = tetherd_stats_fill(st, &src);
    if (rc == 0 && d->failover)
        rc = tetherd_failover_stats(d->failover, st);
    return rc < 0 || !d->shared ? rc : tetherd_shared_stats(d->shared, st);
}

/* --- admin hooks ------------------------------------------------------------ */

static int admin_device(const char *name, tether_device_info_t *info, void *user)
{
    tetherd_t *d = user;
    const tether_node_t *n = tether_pipeline_node(d->pipe);
    return d->shared ? tetherd_shared_device(d->shared, n, name, info)
                     : tether_node_device(n, name, info);
}

static int admin_device_next(const char *cursor, tether_device_info_t *info, void *user)
{
    tetherd_t *d = user;
    const tether_node_t *n = tether_pipeline_node(d->pipe);
    return d->shared ? tetherd_shared_device_next(d->shared, n, cursor, info)
                     : tether_node_device_next(n, cursor, info);
}

static int admin_device_remove(const char *name, void *user)
{
    tetherd_t *d = user;
    int rc = tether_pipeline_device_remove(d->pipe, name, now_ms(d));
    pump(d); /* its pending requests were answered 5.02 */
    return rc;
}

/* An operator request enters the node like a client's, on an internal
 * link numbered `id` and without identity (the node trusts internal
 * links); its answers come back through pump(). */
static int admin_coap_send(uint64_t id, const uint8_t *msg, size_t len, void *user)
{
    tetherd_t *d = user;
    tether_pipeline_internal_input(d->pipe, id, msg, len, now_ms(d));
    pump(d);
    return 0;
}

/* An HTTP-to-CoAP request enters the node as client `identity`'s (NULL:
 * the operator's admin token) on HTTP link `id`. */
static int admin_coap_send_as(uint64_t id, const char *identity, const uint8_t *msg, size_t len,
                              void *user)
{
    tetherd_t *d = user;
    tether_pipeline_http_input(d->pipe, id, identity, msg, len, now_ms(d));
    pump(d);
    return 0;
}

static void admin_coap_close(uint64_t id, void *user)
{
    tetherd_t *d = user;
    tether_pipeline_http_close(d->pipe, id, now_ms(d));
    pump(d);
}

/* HTTP bearer tokens of client credentials: the set in use (file plus
 * Redis's). */
static int admin_http_identity(const char *tok, size_t len, char *identity, size_t cap, void *user)
{
    tetherd_t *d = user;
    return tether_creds_http_identity(d->active, tok, len, identity, cap);
}

/* GET /groups[/{name}] */
static json_t *admin_groups(const char *name, void *user)
{
    return tetherd_groups_json(tether_pipeline_node(((tetherd_t *)user)->pipe), name);
}

static int admin_group_put(const char *name, const json_t *body, char *err, size_t cap, void *user)
{
    tetherd_t *d = user;
    return tetherd_group_put(tether_pipeline_node(d->pipe), name, body, true, now_ms(d), err, cap);
}

static int admin_group_delete(const char *name, void *user)
{
    tetherd_t *d = user;
    return tether_node_group_del(tether_pipeline_node(d->pipe), name, now_ms(d));
}

/* /ready (stats.c). */
static bool ready_hook(json_t *detail, void *user)
{
    tetherd_t *d = user;
    return tetherd_ready_fill(detail, d->nlisteners, d->cfg.nlisten,
                              d->shared ? tetherd_shared_redis_state(d->shared) : NULL,
                              d->draining);
}

/* --- shutdown ---------------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Closes every handle; uv_run returns once the close callbacks ran. */
static void stop_now(tetherd_t *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    tetherd_txq_flush(&d->txq);
    tetherd_cluster_close(d->cluster);
    d->cluster = NULL;
    tetherd_admin_stop(&d->admin);
    tetherd_shared_close(d->shared); /* pending checkpoint writes complete (EIO) here */
    tetherd_failover_close(d->failover);
    d->failover = NULL;
    for (size_t i = 0; i < d->nlisteners; i++)
        uv_close((uv_handle_t *)&d->listeners[i].handle, close_cb);
    d->nlisteners = 0;
    uv_close((uv_handle_t *)&d->sigterm, close_cb);
    uv_close((uv_handle_t *)&d->sigint, close_cb);
    uv_close((uv_handle_t *)&d->sighup, close_cb);
    uv_close((uv_handle_t *)&d->timer, close_cb);
    uv_close((uv_handle_t *)&d->drain_timer, close_cb);
}

/* While draining: stop once no relayed request (operator requests
 * included) is pending, or at the drain deadline. */
static void on_drain_timer(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    size_t relays = tether_node_pending(tether_pipeline_node(d->pipe));
    size_t waiting = tetherd_admin_waiting(&d->admin);
    tether_time_t now = uv_now(d->loop);
    /* Failover: also until every session is adopted by a peer. */
    bool handed = !d->failover || tetherd_failover_handed_over(d->failover);
    if ((relays + waiting > 0 || !handed) && now < d->drain_deadline)
        return;
    char n[24], w[24];
    snprintf(n, sizeof n, "%zu", relays);
    snprintf(w, sizeof w, "%zu", waiting);
    tether_log_kv(relays + waiting ? TETHER_LOG_WARN : TETHER_LOG_INFO, "main",
                  relays + waiting ? "drain timeout: stopping with requests pending" : "drained",
                  "pending", n, "admin_waiting", w, NULL);
    stop_now(d);
}

/* SIGTERM (S7): /ready turns 503 so load balancers and orchestrators stop
 * sending new work, while listeners stay open so requests in flight (and
 * retransmissions of them) complete; stop when nothing is pending or after
 * drain_timeout seconds. A second SIGTERM, or SIGINT, stops at once. */
static void on_signal(uv_signal_t *s, int signum)
{
    tetherd_t *d = s->data;
    if (signum == SIGINT || d->draining) {
        tether_log_kv(TETHER_LOG_INFO, "main", "stopping", "signal",
                      signum == SIGTERM ? "TERM" : "INT", NULL);
        stop_now(d);
        return;
    }
    d->draining = true;
    tetherd_admin_set_draining(&d->admin, true);
    d->drain_deadline = uv_now(d->loop) + (tether_time_t)d->cfg.drain_timeout * 1000;
    char pending[24], waiting[24], timeout[16];
    snprintf(pending, sizeof pending, "%zu", tether_node_pending(tether_pipeline_node(d->pipe)));
    snprintf(waiting, sizeof waiting, "%zu", tetherd_admin_waiting(&d->admin));
    snprintf(timeout, sizeof timeout, "%u", d->cfg.drain_timeout);
    tether_log_kv(TETHER_LOG_INFO, "main", "draining", "signal", "TERM", "pending", pending,
                  "admin_waiting", waiting, "drain_timeout", timeout, NULL);
    if (d->failover) {
        tetherd_failover_handover(d->failover);
        pump(d);
    }
    uv_timer_start(&d->drain_timer, on_drain_timer, 0, 50);
}

/* cluster.failover (failover.h): DTLS 1.2 CID sessions checkpointed to
 * Redis, adopted by a survivor when their node dies, handed over on
 * SIGTERM. */
static int start_failover(tetherd_t *d, tether_pipeline_conf_t *pc)
{
    const char *adv =
        d->cfg.cluster_advertise[0] ? d->cfg.cluster_advertise : d->cfg.cluster_listen;
    tetherd_failover_conf_t fc = {.self = (uint8_t)d->cfg.node_id,
                                  .adopt_delay_ms = 300,
                                  .claim_ttl_ms = 60000,
                                  .refresh_ms = d->cfg.cluster_ckpt_interval_ms,
                                  .pump = shared_pump,
                                  .user = d};
    for (size_t i = 0; i < d->cfg.nlisten; i++)
        if (d->cfg.listen[i].proto == TETHERD_PROTO_COAPS) {
            fc.iface = (uint8_t)i;
            break;
        }
    if (tetherd_addr_parse(adv, &fc.advertise) < 0 ||
        tetherd_failover_create(d->loop, &fc, tetherd_shared_redis(d->shared),
                                tetherd_shared_lease(d->shared), &d->failover) < 0) {
        fprintf(stderr, "tetherd: cluster.failover: cannot start\n");
        return TETHER_EINVAL;
    }
    pc->dtls.checkpoint = true;
    pc->cid_owner = tetherd_failover_cid_owner;
    pc->dtls_event = tetherd_failover_dtls_event;
    pc->failover_user = d->failover;
    return 0;
}

int main(int argc, char **argv)
{
    static tetherd_t d;
    tether_hist_init(&d.service);
    if (tetherd_lat_init(&d.lat) < 0)
        return 1;
    char err[512] = "";
    int rc = tetherd_config_load(&d.cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "tetherd: config error: %s\n", err);
        return 2;
    }
    tether_log_level_t lvl;
    tether_log_level_parse(d.cfg.log_level, &lvl);
    tether_log_set_level(lvl);
    if (tetherd_workers_check(&d.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tetherd: config error: %s\n", err);
        return 2;
    }
    if (d.cfg.check_only) {
        printf("%s: configuration ok\n", d.cfg.file[0] ? d.cfg.file : "(defaults)");
        return 0;
    }
    /* More than one worker: from here on this is one of them (the
     * supervisor does not return), before any event loop exists. */
    if (tetherd_workers_start(&d.cfg, &d.worker) < 0)
        return 1;
    d.loop = uv_default_loop();
    if (load_creds(&d, &d.creds) < 0)
        return 2;
    d.active = d.creds;
    if (d.cfg.redis_url[0]) {
        static const tetherd_shared_ops_t sops = {.apply_creds = shared_apply_creds,
                                                  .node_live = shared_node_live,
                                                  .cred_done = shared_cred_done,
                                                  .pump = shared_pump,
                                                  .member = shared_member};
        char serr[256];
        if ((rc = tetherd_shared_open(d.loop, &d.cfg, d.creds, &sops, &d, &d.shared, serr,
                                      sizeof serr)) < 0) {
            fprintf(stderr, "tetherd: %s\n", serr);
            return 1;
        }
    }
    tether_pipeline_conf_t pc;
    tether_pipeline_conf_defaults(&pc);
    tetherd_config_node_conf(&d.cfg, &pc.node);
    pc.node.node_id = (uint8_t)d.cfg.node_id;
    pc.node.version = TETHERD_VERSION;
    uv_random(NULL, NULL, &pc.node.seed, sizeof pc.node.seed, 0, NULL);
    /* Plain CoAP is a loopback test and tooling interface; once it is
     * opened to the network its clients are unauthenticated (4.01). */
    pc.node.plain_trusted = !d.cfg.plain_coap_public;
    pc.node.store = d.shared ? tetherd_shared_store(d.shared) : NULL;
    tetherd_config_dtls_conf(&d.cfg, &pc.dtls);
    pc.dtls.node_id = (uint8_t)d.cfg.node_id;
    pc.dtls.cluster_key = (const uint8_t *)d.cfg.cluster_key;
    pc.dtls.cluster_key_len = strlen(d.cfg.cluster_key);
    /* Interfaces: the listeners in configuration order, then the cluster. */
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        pc.iface[pc.niface++] =
            d.cfg.listen[i].proto == TETHERD_PROTO_COAPS ? TETHER_IFACE_DTLS : TETHER_IFACE_PLAIN;
    if (d.cfg.cluster_listen[0]) {
        tetherd_cluster_conf(&d.cfg, &pc.channel);
        d.cluster_iface = pc.niface;
        pc.iface[pc.niface++] = TETHER_IFACE_CLUSTER;
    }
    pc.tap = lat_tap;
    pc.tap_user = &d;
    if (d.cfg.cluster_failover && (rc = start_failover(&d, &pc)) < 0)
        return 1;
    if ((rc = tether_pipeline_create(&pc, d.creds, uv_now(d.loop), tetherd_wall_ms(), &d.pipe)) <
        0) {
        /* ECONFIG and ECRYPTO come from the DTLS server only. */
        fprintf(stderr, "tetherd: %s%s%s\n",
                rc == TETHER_ECONFIG || rc == TETHER_ECRYPTO ? "DTLS setup failed: " : "",
                tether_strerror(rc),
                rc == TETHER_ECONFIG ? " (dtls.ca_file, cert_file or key_file is not a "
                                       "usable PEM file, or the key does not match)"
                                     : "");
        return 1;
    }
    if (d.failover)
        tetherd_failover_attach(d.failover, d.pipe);
    if (!load_groups(&d))
        return 1;
    uv_timer_init(d.loop, &d.timer);
    d.timer.data = &d;
    uv_timer_start(&d.timer, on_timer, 0, 0); /* a first tick sets every part's deadline */
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        if (open_listener(&d, &d.cfg.listen[i], d.worker.listen_fd[i]) < 0)
            return 1;
    if (d.cfg.cluster_listen[0]) {
        char cerr[256];
        d.cluster_port = (rx_port_t){.d = &d, .iface = d.cluster_iface};
        if ((rc = tetherd_cluster_open(d.loop, &d.cfg, tether_pipeline_channel(d.pipe), on_alloc,
                                       on_recv, &d.cluster_port, &d.cluster, cerr, sizeof cerr)) <
            0) {
            fprintf(stderr, "tetherd: %s\n", cerr);
            return 1;
        }
    }

    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_init(d.loop, &d.sighup);
    d.sighup.data = &d;
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);
    uv_timer_init(d.loop, &d.drain_timer);
    d.drain_timer.data = &d;

    tetherd_admin_hooks_t hooks = {
        .stats = stats_hook,
        .ready = ready_hook,
        .device = admin_device,
        .device_next = admin_device_next,
        .device_remove = admin_device_remove,
        .coap_send = admin_coap_send,
        .coap_send_as = admin_coap_send_as,
        .coap_close = admin_coap_close,
        .http_identity = admin_http_identity,
        .groups = admin_groups,
        .group_put = admin_group_put,
        .group_delete = admin_group_delete,
        .cluster = admin_cluster,
        .observations = admin_observations,
        .cred = d.shared ? admin_cred : NULL,
        .user = &d,
    };
    if (tetherd_admin_start(&d.admin, d.loop, &d.cfg, &hooks) < 0)
        return 1;
    char nid[8];
    snprintf(nid, sizeof nid, "%u", d.cfg.node_id);
    tether_log_kv(TETHER_LOG_INFO, "main", "ready", "node_id", nid, "version", TETHERD_VERSION,
                  "config", d.cfg.file[0] ? d.cfg.file : "(defaults)", NULL);
    tetherd_workers_ready(&d.worker);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    tether_pipeline_destroy(d.pipe);
    tetherd_lat_free(&d.lat);
    if (d.active != d.creds)
        tether_creds_free(d.active);
    tether_creds_free(d.creds);
    tetherd_txq_free(&d.txq);
    tether_log_kv(TETHER_LOG_INFO, "main", "stopped", NULL);
    return 0;
}
