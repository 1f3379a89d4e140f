/* tetherd: wires libtether to libuv sockets, signals and configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "tether/creds.h"
#include "tether/dtls.h"
#include "tether/log.h"
#include "tether/node.h"
#include "cluster.h"
#include "tether/hist.h"
#include "udp.h"
#include "latency.h"

#define MAX_DGRAM 1500
/* recvmmsg: libuv cuts the receive buffer into 64 KiB chunks, one datagram
 * each, and uses at most 20 of them per call. */
#define RX_CHUNK 65536
#define RX_CHUNKS 20

typedef struct {
    uv_udp_t handle;
    tetherd_listen_t conf;
    struct tetherd *d;
} listener_t;

typedef struct tetherd {
    uv_loop_t *loop;
    tetherd_config_t cfg;
    tether_node_t *node;
    uv_timer_t node_timer; /* armed at tether_node_next_deadline() */
    tether_time_t node_timer_at;
    listener_t listeners[TETHERD_MAX_LISTEN];
    size_t nlisteners;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t tick; /* DTLS: armed for tether_dtls_next_deadline */
    tether_time_t tick_at;
    tether_creds_t *creds;
    tether_dtls_srv_t *dtls;
    uint8_t rxbuf[RX_CHUNKS * RX_CHUNK];
    bool rx_busy;
    /* Inside a recvmmsg batch: output waits in txq until the batch ends. */
    bool rx_batch;
    tetherd_txq_t txq;
    /* Service time of each receive batch: from the first datagram read to
     * the last datagram it caused handed to the kernel (microseconds). */
    tether_hist_t service;
    uint64_t batch_t0_ns;       /* 0: no batch being timed */
    tetherd_lat_t lat;          /* both crossings of each relayed request */
    tetherd_cluster_t *cluster; /* NULL without "cluster.listen" */
    tetherd_admin_t admin;
    /* operator requests: node answers on internal links, handled after the
     * outbox is cleared (they may feed the node again) */
    tether_out_t *internal;
    size_t ninternal, internal_cap;
    bool pumping, pump_again;
    /* SIGTERM: drain until nothing is pending or drain_timeout passes */
    bool draining, stopping;
    uv_timer_t drain_timer;
    tether_time_t drain_deadline;
} tetherd_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    listener_t *l = h->data;
    /* One receive buffer: libuv fills it (one recvmmsg batch at a time) and
     * hands it back in on_recv before it asks for another. */
    if (l->d->rx_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    l->d->rx_busy = true;
    buf->base = (char *)l->d->rxbuf;
    buf->len = sizeof l->d->rxbuf;
}

/* Moves what the DTLS layer queued to the transmit batch, each datagram
 * from the listener its peer wrote to (the DTLS interface is the listener
 * index), and empties the DTLS queue (it is bounded, so it must not wait
 * for the end of a receive batch). */
static void dtls_flush(tetherd_t *d)
{
    size_t n = tether_dtls_tx_count(d->dtls);
    for (size_t i = 0; i < n; i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(d->dtls, i);
        if (d->cluster &&
            tetherd_cluster_route_out(d->cluster, &g->to, g->iface, g->data, g->len))
            continue; /* that client talks to another node, which sends it */
        if (g->iface >= d->nlisteners)
            continue;
        tetherd_txq_push(&d->txq, &d->listeners[g->iface].handle, &g->to, g->data, g->len);
    }
    tether_dtls_tx_clear(d->dtls);
}

static void on_node_timer(uv_timer_t *t);
static void on_tick(uv_timer_t *t);

/* Keeps a copy of an answer on an internal link (an operator request). */
static void internal_keep(tetherd_t *d, const tether_out_t *o)
{
    if (d->ninternal == d->internal_cap) {
        size_t cap = d->internal_cap ? d->internal_cap * 2 : 4;
        tether_out_t *p = realloc(d->internal, cap * sizeof *p);
        if (!p)
            return; /* the admin request times out with a 504 */
        d->internal = p;
        d->internal_cap = cap;
    }
    d->internal[d->ninternal++] = *o;
}

/* Hands the kept internal answers to the admin endpoint. A separate
 * response comes as a CON that the node retransmits until acknowledged:
 * it gets an empty ACK on the same internal link, as a client would send. */
static void internal_deliver(tetherd_t *d)
{
    for (size_t i = 0; i < d->ninternal; i++) {
        const tether_out_t *o = &d->internal[i];
        if (o->len < 4)
            continue;
        if ((o->data[0] >> 4 & 3) == TETHER_COAP_CON) {
            uint8_t ack[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_ACK << 4), 0,
                              o->data[2], o->data[3]};
            tether_peer_t peer = {.link = o->link};
            tether_node_input(d->node, &peer, ack, sizeof ack, uv_now(d->loop));
        }
        tetherd_admin_coap_answer(&d->admin, o->link.id, o->data, o->len);
    }
    d->ninternal = 0;
}

/* Empties the node's outbox: DTLS records go through their session (into
 * the DTLS transmit queue), plain datagrams into the transmit batch for the
 * listener the peer talks to, answers on internal links are kept. */
static void outbox_flush(tetherd_t *d)
{
    size_t n = tether_node_out_count(d->node);
    for (size_t i = 0; i < n; i++) {
        const tether_out_t *o = tether_node_out_get(d->node, i);
        if (o->link.kind == TETHER_LINK_INTERNAL) {
            internal_keep(d, o);
        } else if (o->link.kind == TETHER_LINK_DTLS) {
            tether_dtls_sess_t *s = d->dtls ? tether_dtls_sess_find(d->dtls, o->link.id) : NULL;
            if (s) {
                tetherd_lat_out(&d->lat, o->link.id, o->data, o->len);
                tether_dtls_send(d->dtls, s, o->data, o->len);
            }
        } else if (o->link.iface < d->nlisteners) {
            tetherd_txq_push(&d->txq, &d->listeners[o->link.iface].handle, &o->link.addr, o->data,
                             o->len);
        }
    }
    tether_node_out_clear(d->node);
}

/* After every event: sessions that ended go to the node, the node's outbox
 * is emptied, answers to operator requests go to the admin endpoint (which
 * may feed the node again: repeat until quiet), then the DTLS transmit
 * queue, and the node timer is re-armed for its next deadline. The
 * datagrams gathered leave at once, except inside a recvmmsg batch, which
 * sends them when it ends (on_recv). A nested call (from inside the admin
 * endpoint) only asks the outer one to loop. */
static void pump(tetherd_t *d)
{
    if (d->pumping) {
        d->pump_again = true;
        return;
    }
    d->pumping = true;
    tether_time_t now = uv_now(d->loop);
    if (d->dtls) {
        const tether_dtls_event_t *ev;
        size_t n = tether_dtls_events(d->dtls, &ev);
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kind == TETHER_DTLS_EV_CLOSED) {
                tether_link_t l = {.kind = TETHER_LINK_DTLS, .id = ev[i].id};
                tether_node_link_down(d->node, &l, now);
            } else if (ev[i].kind == TETHER_DTLS_EV_HANDSHAKE_FAILED &&
                       tether_log_enabled(TETHER_LOG_DEBUG)) {
                char peer[80], total[24];
                tether_addr_str(&ev[i].peer, peer, sizeof peer);
                snprintf(total, sizeof total, "%llu",
                         (unsigned long long)tether_dtls_stats(d->dtls)->handshakes_failed);
                tether_log_kv(TETHER_LOG_DEBUG, "dtls", "handshake failed", "peer", peer, "reason",
                              tether_dtls_why_str(ev[i].why), "handshakes_failed", total, NULL);
            }
        }
        tether_dtls_events_clear(d->dtls);
    }
    do {
        d->pump_again = false;
        outbox_flush(d);
        internal_deliver(d);
    } while (d->pump_again || tether_node_out_count(d->node) > 0);
    d->pumping = false;
    if (d->dtls) {
        dtls_flush(d);
        tether_time_t due = tether_dtls_next_deadline(d->dtls);
        if (due != d->tick_at && !d->stopping) {
            d->tick_at = due;
            if (due == UINT64_MAX)
                uv_timer_stop(&d->tick);
            else
                uv_timer_start(&d->tick, on_tick, due > now ? due - now : 0, 0);
        }
    }
    if (!d->rx_batch)
        tetherd_txq_flush(&d->txq);
    tether_time_t at = tether_node_next_deadline(d->node);
    if (at != d->node_timer_at) {
        d->node_timer_at = at;
        if (at == UINT64_MAX)
            uv_timer_stop(&d->node_timer);
        else
            uv_timer_start(&d->node_timer, on_node_timer, at > now ? at - now : 0, 0);
    }
}

static void on_node_timer(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    d->node_timer_at = 0;
    tether_node_tick(d->node, uv_now(d->loop));
    pump(d);
}

static void set_addr(tether_addr_t *a, const struct sockaddr *sa)
{
    a->len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&a->ss, sa, a->len);
}

/* UDP -> DTLS -> CoAP: each decrypted record goes to the node with the
 * session's identity; the node's answers leave through pump(). */
/* One datagram for the DTLS layer, from a listener (via 0) or forwarded by
 * node `via`, then everything it led to. */
static void dtls_feed(tetherd_t *d, uint8_t iface, const tether_addr_t *client, uint8_t via,
                      const uint8_t *buf, size_t len)
{
    const tether_addr_t from = *client;
    tether_dtls_rx_t rx;
    tether_time_t now = uv_now(d->loop);
    tether_dtls_input(d->dtls, iface, &from, buf, len, now, &rx);
    /* An authenticated record that is the session's address now decides
     * which node our datagrams for that address leave from. */
    if (rx.len > 0 && d->cluster && tether_addr_equal(tether_dtls_sess_peer(rx.sess), &from))
        tetherd_cluster_authenticated(d->cluster, &from, via);
    while (rx.len > 0) {
        tether_peer_t peer = {
            .link = {.kind = TETHER_LINK_DTLS,
                     .id = tether_dtls_sess_id(rx.sess),
                     .addr = *tether_dtls_sess_peer(rx.sess)},
            .identity = tether_dtls_sess_identity(rx.sess),
            .role = tether_dtls_sess_role(rx.sess),
        };
        tetherd_lat_in(&d->lat, peer.link.id, rx.data, rx.len);
        tether_node_input(d->node, &peer, rx.data, rx.len, now);
        if (!tether_dtls_input_more(d->dtls, &rx))
            break;
    }
    pump(d);
}

/* A datagram on DTLS listener `iface` (its index: answers leave from it). */
static void dtls_input(tetherd_t *d, uint8_t iface, const struct sockaddr *addr,
                       const uint8_t *buf, size_t len)
{
    tether_addr_t from;
    set_addr(&from, addr);
    if (d->cluster && tetherd_cluster_route_in(d->cluster, iface, &from, buf, len))
        return; /* another node owns its CID */
    dtls_feed(d, iface, &from, 0, buf, len);
}

/* ---- cluster hooks ------------------------------------------------------------ */

/* `iface` is the listener index at node `via`: the session keeps it and
 * it comes back with the REPLY. */
static void cluster_deliver(void *user, const tether_addr_t *client, uint8_t via, uint8_t iface,
                            const uint8_t *data, size_t len)
{
    tetherd_t *d = user;
    if (d->dtls && !d->stopping)
        dtls_feed(d, iface, client, via, data, len);
}

static void cluster_reply(void *user, const tether_addr_t *client, uint8_t iface,
                          const uint8_t *data, size_t len)
{
    tetherd_t *d = user;
    if (iface < d->nlisteners && d->listeners[iface].conf.proto == TETHERD_PROTO_COAPS &&
        !d->stopping) {
        tetherd_txq_push(&d->txq, &d->listeners[iface].handle, client, data, len);
        if (!d->rx_batch)
            tetherd_txq_flush(&d->txq);
    }
}

static void cluster_send(void *user, uv_udp_t *sock, const tether_addr_t *to,
                         const uint8_t *data, size_t len)
{
    tetherd_t *d = user;
    tetherd_txq_push(&d->txq, sock, to, data, len);
    if (!d->rx_batch && !d->pumping)
        tetherd_txq_flush(&d->txq);
}

/* DTLS retransmissions and timeouts, when tether_dtls_next_deadline says. */
static void on_tick(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    d->tick_at = 0;
    tether_dtls_set_wall_clock(d->dtls, tetherd_wall_ms());
    tether_dtls_tick(d->dtls, uv_now(d->loop));
    pump(d);
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

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    tetherd_t *d = s->data;
    tether_creds_t *fresh;
    if (load_creds(d, &fresh) < 0) {
        tether_log_kv(TETHER_LOG_WARN, "creds", "reload failed; keeping the previous set", NULL);
        return;
    }
    if (d->dtls)
        tether_dtls_set_creds(d->dtls, fresh);
    tether_node_set_creds(d->node, fresh);
    tether_creds_free(d->creds);
    d->creds = fresh;
    char n[24], revoked[24];
    snprintf(n, sizeof n, "%zu", tether_creds_count(fresh));
    snprintf(revoked, sizeof revoked, "%llu",
             d->dtls ? (unsigned long long)tether_dtls_stats(d->dtls)->sessions_revoked : 0ull);
    tether_log_kv(TETHER_LOG_INFO, "creds", "reloaded", "entries", n, "sessions_revoked_total",
                  revoked, NULL);
    pump(d); /* revoked sessions: their links go down at once */
}

/* One datagram, or the end of a read. With recvmmsg, libuv calls this once
 * per datagram of a batch (UV_UDP_MMSG_CHUNK, a slice of rxbuf), then once
 * with addr == NULL (UV_UDP_MMSG_FREE) to hand rxbuf back: the output of
 * the whole batch then leaves with one sendmmsg per socket. Without
 * recvmmsg every datagram's output leaves after it, as pump() does for
 * timers and the admin endpoint. */
static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    listener_t *l = h->data;
    tetherd_t *d = l->d;
    if (buf->base && !(flags & UV_UDP_MMSG_CHUNK))
        d->rx_busy = false;
    if (!addr) { /* end of a batch, nothing to read, or a read error */
        d->rx_batch = false;
        tetherd_txq_flush(&d->txq);
        if (d->batch_t0_ns) {
            uint64_t t1 = uv_hrtime();
            tether_hist_record(&d->service, (t1 - d->batch_t0_ns) / 1000);
            tetherd_lat_sent(&d->lat, t1);
            d->batch_t0_ns = 0;
        }
        return;
    }
    if (flags & UV_UDP_MMSG_CHUNK)
        d->rx_batch = true;
    if (nread <= 0 || (flags & UV_UDP_PARTIAL))
        return;
    if (!d->batch_t0_ns) {
        d->batch_t0_ns = uv_hrtime();
        tetherd_lat_read(&d->lat, d->batch_t0_ns);
    }
    if (l->conf.proto == TETHERD_PROTO_COAPS) {
        dtls_input(d, (uint8_t)(l - d->listeners), addr, (const uint8_t *)buf->base,
                   (size_t)nread);
    } else {
        tether_peer_t peer = {
            .link = {.kind = TETHER_LINK_PLAIN, .iface = (uint8_t)(l - d->listeners)}};
        set_addr(&peer.link.addr, addr);
        tether_node_input(d->node, &peer, (const uint8_t *)buf->base, (size_t)nread,
                          uv_now(d->loop));
        pump(d);
    }
    if (!d->rx_batch) { /* read without recvmmsg: its output already left */
        uint64_t t1 = uv_hrtime();
        tether_hist_record(&d->service, (t1 - d->batch_t0_ns) / 1000);
        tetherd_lat_sent(&d->lat, t1);
        d->batch_t0_ns = 0;
    }
}

static int open_listener(tetherd_t *d, const tetherd_listen_t *lc)
{
    listener_t *l = &d->listeners[d->nlisteners];
    struct sockaddr_storage ss;
    char port[8];
    snprintf(port, sizeof port, "%u", lc->port);
    int rc = strchr(lc->host, ':')
                 ? uv_ip6_addr(lc->host, lc->port, (struct sockaddr_in6 *)&ss)
                 : uv_ip4_addr(strcmp(lc->host, "localhost") == 0 ? "127.0.0.1" : lc->host,
                               lc->port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "bad listen address", "host", lc->host, NULL);
        return rc;
    }
    l->conf = *lc;
    l->d = d;
    /* With the address family given, the socket exists before bind, so its
     * buffers are sized before traffic can arrive. */
    rc = uv_udp_init_ex(d->loop, &l->handle, ss.ss_family | UV_UDP_RECVMMSG);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "cannot create socket", "host", lc->host, "port",
                      port, "error", uv_strerror(rc), NULL);
        return rc;
    }
    l->handle.data = l;
    int rcvbuf = 0, sndbuf = 0;
    tetherd_udp_set_buffers(&l->handle, d->cfg.udp_recv_buffer, d->cfg.udp_send_buffer, &rcvbuf,
                            &sndbuf);
    rc = uv_udp_bind(&l->handle, (const struct sockaddr *)&ss, 0);
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

/* /stats and /metrics: the S11 paths from the DTLS layer and the node,
 * plus the limits they run under (S10). */
static int stats_hook(json_t *st, void *user)
{
    tetherd_t *d = user;
    const tether_node_stats_t *ns = tether_node_stats(d->node);
    static const tether_dtls_stats_t no_dtls;
    const tether_dtls_stats_t *ds = d->dtls ? tether_dtls_stats(d->dtls) : &no_dtls;
    const struct {
        const char *path;
        uint64_t v;
    } rows[] = {
        {"devices.registered", ns->devices_registered},
        {"devices.registrations", ns->registrations},
        {"proxy.requests", ns->requests_relayed},
        {"proxy.responses_relayed", ns->relay_ok},
        {"proxy.timeouts", ns->relay_timeouts},
        {"proxy.mid_exhausted", ns->relay_mid_exhausted},
        {"proxy.device_gone", ns->relay_gone},
        {"proxy.denied", ns->relay_denied},
        {"proxy.unknown_device", ns->relay_unknown},
        {"proxy.requests_local", ns->requests_local},
        {"proxy.cache_hits", ns->cache_hits},
        {"proxy.cache_misses", ns->cache_misses},
        {"proxy.cache_revalidated", ns->cache_revalidated},
        {"proxy.cache_invalidations", ns->cache_invalidations},
        {"proxy.cache_evictions", ns->cache_evictions},
        {"proxy.cache_entries", ns->cache_entries},
        {"proxy.cache_bytes", ns->cache_bytes},
        {"proxy.block_transfers", ns->block_transfers},
        {"proxy.block_blocks_fetched", ns->block_blocks_fetched},
        {"proxy.block_restarts", ns->block_restarts},
        {"proxy.block_failed", ns->block_failed},
        {"proxy.block_served", ns->block_served},
        {"proxy.block_transfers_active", ns->block_transfers_active},
        {"proxy.uploads_completed", ns->uploads_completed},
        {"proxy.uploads_rejected", ns->uploads_rejected},
        {"proxy.uploads_abandoned", ns->uploads_abandoned},
        {"proxy.upload_blocks", ns->upload_blocks},
        {"proxy.uploads_active", ns->uploads_active},
        {"observe.device_observations", ns->observe_device_observations},
        {"observe.observers", ns->observe_observers},
        {"observe.notifications_sent", ns->observe_notifications_sent},
        {"observe.rejected", ns->observe_rejected},
        {"observe.stale_dropped", ns->observe_stale},
        {"queue.pending", ns->queue_pending},
        {"queue.queued_total", ns->queued},
        {"coap.rx_messages", ns->rx_datagrams},
        {"coap.rx_rejected", ns->rx_rejected},
        {"coap.duplicates", ns->duplicates},
        {"coap.retransmissions", ns->retransmissions},
        {"limits.max_devices", d->cfg.proxy_max_devices},
        {"limits.max_pending", d->cfg.proxy_max_pending},
        {"limits.queue_max", d->cfg.proxy_queue_max},
        {"limits.cache_bytes", d->cfg.proxy_cache_bytes},
        {"limits.max_observers", d->cfg.proxy_max_observers},
        {"limits.block_max_bytes", d->cfg.proxy_block_max_bytes},
        {"limits.block_max_transfers", d->cfg.proxy_block_max_transfers},
        {"limits.upload_max_bytes", d->cfg.proxy_upload_max_bytes},
        {"limits.uploads_per_device", d->cfg.proxy_uploads_per_device},
        {"limits.max_observers_per_resource", d->cfg.proxy_max_observers_per_resource},
        {"limits.max_sessions", d->cfg.dtls_max_sessions},
        {"limits.max_handshakes", d->cfg.dtls_max_handshakes},
        {"sessions.active", ds->sessions_active},
        {"sessions.handshakes_full", ds->handshakes_full},
        {"sessions.handshakes_inflight", ds->handshakes_inflight},
        {"sessions.handshakes_failed", ds->handshakes_failed},
        {"sessions.hello_verify_sent", ds->hello_verify_sent},
        {"sessions.address_changes", ds->address_changes},
        {"sessions.unknown_cid_dropped", ds->unknown_cid_dropped},
        {"sessions.dropped_limit", ds->dropped_limit},
        {"sessions.closed", ds->sessions_closed},
        {"sessions.tx_dropped", ds->tx_dropped},
        {"sessions.dropped_rate", ds->dropped_rate},
        {"sessions.handshakes_x509", ds->handshakes_x509},
        {"sessions.x509_rejected", ds->x509_rejected},
        {"sessions.handshakes_unauthenticated", ds->handshakes_unauthenticated},
        {"sessions.hellos_refused", ds->hellos_refused},
        {"sessions.handshakes_stalled", ds->handshakes_stalled},
        {"sessions.handshakes_evicted", ds->handshakes_evicted},
        {"sessions.tx_unvalidated_dropped", ds->tx_unvalidated_dropped},
        {"sessions.revoked", ds->sessions_revoked},
        {"sessions.records_empty", ds->records_empty},
        {"sessions.compact", ds->sessions_compact},
        {"sessions.records_rejected", ds->records_rejected},
        {"udp.tx_datagrams", d->txq.stats.datagrams},
        {"udp.tx_calls", d->txq.stats.calls},
        {"udp.tx_dropped", d->txq.stats.dropped},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (tetherd_admin_stat_set(st, rows[i].path, (json_int_t)rows[i].v) < 0)
            return TETHER_ENOMEM;
    const struct {
        const char *path;
        uint64_t v;
    } lrows[] = {
        {"latency.batches", d->service.count},
        {"latency.service_p50_us", tether_hist_percentile(&d->service, 50)},
        {"latency.service_p99_us", tether_hist_percentile(&d->service, 99)},
        {"latency.service_p999_us", tether_hist_percentile(&d->service, 99.9)},
        {"latency.service_max_us", d->service.count ? d->service.max : 0},
        {"latency.relayed", d->lat.relayed.count},
        {"latency.relayed_p50_us", tether_hist_percentile(&d->lat.relayed, 50)},
        {"latency.relayed_p99_us", tether_hist_percentile(&d->lat.relayed, 99)},
        {"latency.relayed_p999_us", tether_hist_percentile(&d->lat.relayed, 99.9)},
        {"latency.relayed_max_us", d->lat.relayed.count ? d->lat.relayed.max : 0},
        {"latency.relayed_unmatched", d->lat.unmatched},
    };
    for (size_t i = 0; i < sizeof lrows / sizeof lrows[0]; i++)
        if (tetherd_admin_stat_set(st, lrows[i].path, (json_int_t)lrows[i].v) < 0)
            return TETHER_ENOMEM;
    static const tether_channel_stats_t alone = {.nodes_configured = 1, .nodes_alive = 1};
    const tether_channel_stats_t *cs = d->cluster ? tetherd_cluster_stats(d->cluster) : &alone;
    const struct {
        const char *path;
        uint64_t v;
    } crows[] = {
        {"cluster.nodes_configured", cs->nodes_configured},
        {"cluster.nodes_alive", cs->nodes_alive},
        {"cluster.forwarded_records", cs->forwarded_records},
        {"cluster.forwarded_in", cs->forwarded_in},
        {"cluster.replies_out", cs->replies_out},
        {"cluster.replies_in", cs->replies_in},
        {"cluster.rejected", cs->rejected},
        {"cluster.replayed", cs->replayed},
        {"cluster.unroutable", cs->unroutable},
    };
    for (size_t i = 0; i < sizeof crows / sizeof crows[0]; i++)
        if (tetherd_admin_stat_set(st, crows[i].path, (json_int_t)crows[i].v) < 0)
            return TETHER_ENOMEM;
    return 0;
}

/* --- admin hooks ------------------------------------------------------------ */

static int admin_device(const char *name, tether_device_info_t *info, void *user)
{
    tetherd_t *d = user;
    return tether_node_device(d->node, name, info);
}

static int admin_device_next(const char *cursor, tether_device_info_t *info, void *user)
{
    tetherd_t *d = user;
    return tether_node_device_next(d->node, cursor, info);
}

static int admin_device_remove(const char *name, void *user)
{
    tetherd_t *d = user;
    int rc = tether_node_device_remove(d->node, name, uv_now(d->loop));
    pump(d); /* its pending requests were answered 5.02 */
    return rc;
}

/* An operator request enters the node like a client's, on an internal
 * link numbered `id` and without identity (the node trusts internal
 * links); its answers come back through pump(). */
static int admin_coap_send(uint64_t id, const uint8_t *msg, size_t len, void *user)
{
    tetherd_t *d = user;
    tether_peer_t peer = {.link = {.kind = TETHER_LINK_INTERNAL, .id = id}};
    tether_node_input(d->node, &peer, msg, len, uv_now(d->loop));
    pump(d);
    return 0;
}

/* /ready: every configured listener is up and the node is not draining.
 * There is no shared store yet: state is the embedded one. */
static bool ready_hook(json_t *detail, void *user)
{
    tetherd_t *d = user;
    bool up = d->nlisteners > 0 && d->nlisteners == d->cfg.nlisten;
    json_object_set_new(detail, "listeners", json_integer((json_int_t)d->nlisteners));
    json_object_set_new(detail, "state", json_string("embedded"));
    if (d->draining)
        json_object_set_new(detail, "detail", json_string("draining"));
    else if (!up)
        json_object_set_new(detail, "detail", json_string("listeners are not up"));
    return up && !d->draining;
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
    for (size_t i = 0; i < d->nlisteners; i++)
        uv_close((uv_handle_t *)&d->listeners[i].handle, close_cb);
    d->nlisteners = 0;
    uv_close((uv_handle_t *)&d->sigterm, close_cb);
    uv_close((uv_handle_t *)&d->sigint, close_cb);
    uv_close((uv_handle_t *)&d->sighup, close_cb);
    if (d->dtls)
        uv_close((uv_handle_t *)&d->tick, close_cb);
    uv_close((uv_handle_t *)&d->node_timer, close_cb);
    uv_close((uv_handle_t *)&d->drain_timer, close_cb);
}

/* While draining: stop once no relayed request (operator requests
 * included) is pending, or at the drain deadline. */
static void on_drain_timer(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    size_t relays = tether_node_pending(d->node), waiting = tetherd_admin_waiting(&d->admin);
    tether_time_t now = uv_now(d->loop);
    if (relays + waiting > 0 && now < d->drain_deadline)
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
    snprintf(pending, sizeof pending, "%zu", tether_node_pending(d->node));
    snprintf(waiting, sizeof waiting, "%zu", tetherd_admin_waiting(&d->admin));
    snprintf(timeout, sizeof timeout, "%u", d->cfg.drain_timeout);
    tether_log_kv(TETHER_LOG_INFO, "main", "draining", "signal", "TERM", "pending", pending,
                  "admin_waiting", waiting, "drain_timeout", timeout, NULL);
    uv_timer_start(&d->drain_timer, on_drain_timer, 0, 50);
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
    if (d.cfg.check_only) {
        printf("%s: configuration ok\n", d.cfg.file[0] ? d.cfg.file : "(defaults)");
        return 0;
    }
    /* Parsed and shown in /config, but the shared store is not written yet:
     * say so rather than let an operator think state is shared. */
    if (d.cfg.redis_url[0])
        tether_log_kv(TETHER_LOG_WARN, "main",
                      "redis_url is set but not yet used: devices, observations and cluster "
                      "membership stay in this process",
                      NULL);
    if (d.cfg.cluster_advertise[0])
        tether_log_kv(TETHER_LOG_INFO, "main",
                      "cluster.advertise is not yet used (it is for membership through Redis)",
                      NULL);

    d.loop = uv_default_loop();
    if (load_creds(&d, &d.creds) < 0)
        return 2;
    tether_node_conf_t nc;
    tetherd_config_node_conf(&d.cfg, &nc);
    nc.node_id = (uint8_t)d.cfg.node_id;
    nc.version = TETHERD_VERSION;
    uv_random(NULL, NULL, &nc.seed, sizeof nc.seed, 0, NULL);
    /* Plain CoAP is a loopback test and tooling interface; once it is
     * opened to the network its clients are unauthenticated (4.01). */
    nc.plain_trusted = !d.cfg.plain_coap_public;
    if ((rc = tether_node_create(&nc, d.creds, &d.node)) < 0) {
        fprintf(stderr, "tetherd: %s\n", tether_strerror(rc));
        return 1;
    }
    uv_timer_init(d.loop, &d.node_timer);
    d.node_timer.data = &d;
    d.node_timer_at = UINT64_MAX;
    bool want_dtls = false;
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        want_dtls |= d.cfg.listen[i].proto == TETHERD_PROTO_COAPS;
    if (want_dtls) {
        tether_dtls_conf_t dc;
        tetherd_config_dtls_conf(&d.cfg, &dc);
        dc.node_id = (uint8_t)d.cfg.node_id;
        dc.cluster_key = (const uint8_t *)d.cfg.cluster_key;
        dc.cluster_key_len = strlen(d.cfg.cluster_key);
        if ((rc = tether_dtls_create(&dc, d.creds, uv_now(d.loop), &d.dtls)) < 0) {
            fprintf(stderr, "tetherd: DTLS setup failed: %s%s\n", tether_strerror(rc),
                    rc == TETHER_ECONFIG ? " (dtls.ca_file, cert_file or key_file is not a "
                                           "usable PEM file, or the key does not match)"
                                         : "");
            return 1;
        }
        tether_dtls_set_wall_clock(d.dtls, tetherd_wall_ms());
        uv_timer_init(d.loop, &d.tick);
        d.tick.data = &d;
        uv_timer_start(&d.tick, on_tick, 0, 0);
    }
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        if (open_listener(&d, &d.cfg.listen[i]) < 0)
            return 1;
    if (d.cfg.cluster_listen[0]) {
        static const tetherd_cluster_ops_t cops = {
            .deliver = cluster_deliver, .reply = cluster_reply, .send = cluster_send};
        char cerr[256];
        if ((rc = tetherd_cluster_open(d.loop, &d.cfg, &cops, &d, &d.cluster, cerr, sizeof cerr)) <
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
        .user = &d,
    };
    if (tetherd_admin_start(&d.admin, d.loop, &d.cfg, &hooks) < 0)
        return 1;
    char nid[8];
    snprintf(nid, sizeof nid, "%u", d.cfg.node_id);
    tether_log_kv(TETHER_LOG_INFO, "main", "ready", "node_id", nid, "version", TETHERD_VERSION,
                  "config", d.cfg.file[0] ? d.cfg.file : "(defaults)", NULL);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    tether_node_destroy(d.node);
    tether_dtls_destroy(d.dtls);
    tether_creds_free(d.creds);
    free(d.internal);
    tetherd_txq_free(&d.txq);
    tetherd_lat_free(&d.lat);
    tether_log_kv(TETHER_LOG_INFO, "main", "stopped", NULL);
    return 0;
}
