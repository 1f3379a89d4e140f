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

#define TETHERD_VERSION "0.1.0"
#define MAX_DGRAM 1500

typedef struct {
    uv_udp_t handle;
    tetherd_listen_t conf;
    struct tetherd *d;
} listener_t;

typedef struct tetherd {
    uv_loop_t *loop;
    tetherd_config_t cfg;
    tether_node_t node;
    listener_t listeners[TETHERD_MAX_LISTEN];
    size_t nlisteners;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t tick;
    tether_creds_t *creds;
    tether_dtls_srv_t *dtls;
    uv_udp_t *dtls_out4, *dtls_out6; /* sockets that DTLS output leaves from */
    uint8_t rxbuf[65536];
    bool rx_busy;
    tetherd_admin_t admin;
} tetherd_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    listener_t *l = h->data;
    /* One receive buffer: libuv delivers datagrams one at a time on the loop. */
    if (l->d->rx_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    l->d->rx_busy = true;
    buf->base = (char *)l->d->rxbuf;
    buf->len = sizeof l->d->rxbuf;
}

/* Sends what the DTLS layer queued, each datagram from the socket of its
 * address family. */
static void dtls_flush(tetherd_t *d)
{
    size_t n = tether_dtls_tx_count(d->dtls);
    for (size_t i = 0; i < n; i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(d->dtls, i);
        uv_udp_t *h = g->to.ss.ss_family == AF_INET6 ? d->dtls_out6 : d->dtls_out4;
        if (!h)
            continue;
        uv_buf_t out = uv_buf_init((char *)g->data, g->len);
        uv_udp_try_send(h, &out, 1, (const struct sockaddr *)&g->to.ss);
    }
    tether_dtls_tx_clear(d->dtls);
}

/* UDP -> DTLS -> CoAP: each decrypted record goes to the node, and its
 * reply goes back down the same session. */
static void dtls_input(tetherd_t *d, const struct sockaddr *addr, const uint8_t *buf, size_t len)
{
    tether_addr_t from;
    from.len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
    memcpy(&from.ss, addr, from.len);
    tether_dtls_rx_t rx;
    tether_time_t now = uv_now(d->loop);
    const tether_dtls_stats_t *st = tether_dtls_stats(d->dtls);
    uint64_t failed = st->handshakes_failed, rejected = st->x509_rejected;
    tether_dtls_input(d->dtls, &from, buf, len, now, &rx);
    if (st->handshakes_failed != failed && tether_log_enabled(TETHER_LOG_DEBUG)) {
        char peer[80], total[24];
        tether_addr_str(&from, peer, sizeof peer);
        snprintf(total, sizeof total, "%llu", (unsigned long long)st->handshakes_failed);
        tether_log_kv(TETHER_LOG_DEBUG, "dtls", "handshake failed", "peer", peer, "reason",
                      st->x509_rejected != rejected ? "certificate" : "protocol",
                      "handshakes_failed", total, NULL);
    }
    while (rx.len > 0) {
        uint8_t reply[MAX_DGRAM];
        size_t rlen = 0;
        tether_peer_t peer = {.secure = true, .identity = tether_dtls_sess_identity(rx.sess)};
        tether_node_coap_input(&d->node, &peer, rx.data, rx.len, now, reply, sizeof reply,
                               &rlen);
        if (rlen > 0)
            tether_dtls_send(d->dtls, rx.sess, reply, rlen);
        if (!tether_dtls_input_more(d->dtls, &rx))
            break;
    }
    dtls_flush(d);
}

static void on_tick(uv_timer_t *t)
{
    tetherd_t *d = t->data;
    tether_dtls_tick(d->dtls, uv_now(d->loop));
    dtls_flush(d);
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
    tether_creds_free(d->creds);
    d->creds = fresh;
    char n[24];
    snprintf(n, sizeof n, "%zu", tether_creds_count(fresh));
    tether_log_kv(TETHER_LOG_INFO, "creds", "reloaded", "entries", n, NULL);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    listener_t *l = h->data;
    tetherd_t *d = l->d;
    if (buf->base)
        d->rx_busy = false;
    if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL))
        return;
    uint8_t reply[MAX_DGRAM];
    size_t rlen = 0;
    if (l->conf.proto == TETHERD_PROTO_COAPS) {
        dtls_input(d, addr, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    tether_peer_t peer = {.secure = false, .identity = NULL};
    tether_node_coap_input(&d->node, &peer, (const uint8_t *)buf->base, (size_t)nread,
                           uv_now(d->loop), reply, sizeof reply, &rlen);
    if (rlen > 0) {
        uv_buf_t out = uv_buf_init((char *)reply, (unsigned)rlen);
        int rc = uv_udp_try_send(h, &out, 1, addr);
        if (rc < 0 && tether_log_enabled(TETHER_LOG_DEBUG))
            tether_log_kv(TETHER_LOG_DEBUG, "udp", "send failed", "error", uv_strerror(rc),
                          NULL);
    }
}

static int open_listener(tetherd_t *d, const tetherd_listen_t *lc)
{
    listener_t *l = &d->listeners[d->nlisteners];
    struct sockaddr_storage ss;
    char port[8];
    snprintf(port, sizeof port, "%u", lc->port);
    int rc = strchr(lc->host, ':') ? uv_ip6_addr(lc->host, lc->port, (struct sockaddr_in6 *)&ss)
                                   : uv_ip4_addr(strcmp(lc->host, "localhost") == 0
                                                     ? "127.0.0.1"
                                                     : lc->host,
                                                 lc->port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "bad listen address", "host", lc->host, NULL);
        return rc;
    }
    l->conf = *lc;
    l->d = d;
    uv_udp_init(d->loop, &l->handle);
    l->handle.data = l;
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
    if (lc->proto == TETHERD_PROTO_COAPS) {
        if (ss.ss_family == AF_INET6 && !d->dtls_out6)
            d->dtls_out6 = &l->handle;
        if (ss.ss_family == AF_INET && !d->dtls_out4)
            d->dtls_out4 = &l->handle;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_udp_getsockname(&l->handle, (struct sockaddr *)&bound, &blen) == 0) {
        uint16_t p = ntohs(bound.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&bound)->sin6_port
                               : ((struct sockaddr_in *)&bound)->sin_port);
        l->conf.port = p;
        snprintf(port, sizeof port, "%u", p);
    }
    tether_log_kv(TETHER_LOG_INFO, "udp", "listening", "host", lc->host, "port", port, "proto",
                  lc->proto == TETHERD_PROTO_COAP ? "coap" : "coaps", NULL);
    return 0;
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void on_signal(uv_signal_t *s, int signum)
{
    tetherd_t *d = s->data;
    tether_log_kv(TETHER_LOG_INFO, "main", "stopping", "signal", signum == SIGTERM ? "TERM" : "INT",
                  NULL);
    tetherd_admin_stop(&d->admin);
    for (size_t i = 0; i < d->nlisteners; i++)
        uv_close((uv_handle_t *)&d->listeners[i].handle, close_cb);
    uv_close((uv_handle_t *)&d->sigterm, close_cb);
    uv_close((uv_handle_t *)&d->sigint, close_cb);
    uv_close((uv_handle_t *)&d->sighup, close_cb);
    if (d->dtls)
        uv_close((uv_handle_t *)&d->tick, close_cb);
}

int main(int argc, char **argv)
{
    static tetherd_t d;
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

    d.loop = uv_default_loop();
    uint16_t mid;
    uv_random(NULL, NULL, &mid, sizeof mid, 0, NULL);
    tether_node_conf_t nc = {
        .node_id = (uint8_t)d.cfg.node_id,
        .version = TETHERD_VERSION,
        .opt_multicast_timeout = d.cfg.opt_multicast_timeout,
        .opt_reply_from = d.cfg.opt_reply_from,
        .first_mid = mid,
    };
    if ((rc = tether_node_init(&d.node, &nc)) < 0) {
        fprintf(stderr, "tetherd: %s\n", tether_strerror(rc));
        return 1;
    }
    if (load_creds(&d, &d.creds) < 0)
        return 2;
    bool want_dtls = false;
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        want_dtls |= d.cfg.listen[i].proto == TETHERD_PROTO_COAPS;
    if (want_dtls) {
        tether_dtls_conf_t dc;
        tether_dtls_conf_defaults(&dc);
        dc.node_id = (uint8_t)d.cfg.node_id;
        dc.cid_len = d.cfg.dtls_cid_length;
        dc.max_sessions = d.cfg.dtls_max_sessions;
        dc.max_handshakes = d.cfg.dtls_max_handshakes;
        dc.idle_timeout_ms = d.cfg.dtls_idle_timeout * 1000u;
        dc.handshake_timeout_ms = d.cfg.dtls_handshake_timeout * 1000u;
        dc.cluster_key = (const uint8_t *)d.cfg.cluster_key;
        dc.cluster_key_len = strlen(d.cfg.cluster_key);
        dc.ca_file = d.cfg.dtls_ca_file;
        dc.cert_file = d.cfg.dtls_cert_file;
        dc.key_file = d.cfg.dtls_key_file;
        dc.handshake_rate_per_source = d.cfg.dtls_hs_rate;
        dc.handshake_burst_per_source = d.cfg.dtls_hs_burst;
        if ((rc = tether_dtls_create(&dc, d.creds, uv_now(d.loop), &d.dtls)) < 0) {
            fprintf(stderr, "tetherd: DTLS setup failed: %s%s\n", tether_strerror(rc),
                    rc == TETHER_ECONFIG ? " (dtls.ca_file, cert_file or key_file is not a "
                                           "usable PEM file, or the key does not match)"
                                         : "");
            return 1;
        }
        uv_timer_init(d.loop, &d.tick);
        d.tick.data = &d;
        uv_timer_start(&d.tick, on_tick, 200, 200);
    }
    for (size_t i = 0; i < d.cfg.nlisten; i++)
        if (open_listener(&d, &d.cfg.listen[i]) < 0)
            return 1;

    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_init(d.loop, &d.sighup);
    d.sighup.data = &d;
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);

    if (tetherd_admin_start(&d.admin, d.loop, &d.cfg, NULL) < 0)
        return 1;
    char nid[8];
    snprintf(nid, sizeof nid, "%u", d.cfg.node_id);
    tether_log_kv(TETHER_LOG_INFO, "main", "ready", "node_id", nid, "version", TETHERD_VERSION,
                  "config", d.cfg.file[0] ? d.cfg.file : "(defaults)", NULL);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    tether_dtls_destroy(d.dtls);
    tether_creds_free(d.creds);
    tether_log_kv(TETHER_LOG_INFO, "main", "stopped", NULL);
    return 0;
}
