/* A simulated peer: DTLS client session + UDP socket on libuv, with
 * handshake pacing shared through bench_net_t (see peer.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peer.h"
#include "tether/common.h"

int bench_net_init(bench_net_t *n, const char *cmd, const bench_common_opts_t *co)
{
    memset(n, 0, sizeof *n);
    bench_raise_nofile();
    n->loop = uv_default_loop();
    n->server = co->server;
    if (co->have_records_to)
        n->records_to = co->records_to;
    n->max_handshakes = co->max_handshakes ? co->max_handshakes : 1;
    int rc = bench_dtls_ctx_init(&n->dtls, co->dtls13);
    if (rc == 0 && co->cipher && (rc = bench_dtls_ctx_set_suites(&n->dtls, co->cipher)) < 0)
        fprintf(stderr, "tether-bench %s: error: --cipher '%s': no suite wolfSSL knows\n", cmd,
                co->cipher);
    else if (rc < 0)
        fprintf(stderr, "tether-bench %s: error: DTLS setup failed: %s\n", cmd,
                tether_strerror(rc));
    return rc;
}

void bench_net_free(bench_net_t *n)
{
    bench_dtls_ctx_free(&n->dtls);
    if (n->loop)
        uv_loop_close(n->loop);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void sock_close(bench_peer_t *p)
{
    if (p->udp) {
        uv_close((uv_handle_t *)p->udp, free_handle);
        p->udp = NULL;
    }
}

static void dtls_out(void *user, const uint8_t *data, size_t len)
{
    bench_peer_t *p = user;
    bench_net_stats_t *st = &p->net->stats;
    if (!p->udp || p->deaf) { /* asleep: nothing leaves the device */
        st->tx_dropped++;
        return;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    if (uv_udp_try_send(p->udp, &b, 1, NULL) < 0)
        st->tx_dropped++;
    else
        st->tx_datagrams++;
}

static void release_slot(bench_peer_t *p);

/* The session is gone (failed handshake or ended): back to idle. */
static void went_down(bench_peer_t *p, int err, bool was_up)
{
    bench_net_stats_t *st = &p->net->stats;
    if (was_up)
        st->sessions_lost++;
    else
        st->handshakes_failed++;
    bench_peer_reset(p);
    if (p->ops->down)
        p->ops->down(p, err);
}

static void on_dtls_timer(uv_timer_t *t);

static void schedule_dtls(bench_peer_t *p)
{
    int ms = p->closed ? -1 : bench_dtls_timeout_ms(&p->dtls);
    if (ms < 0)
        uv_timer_stop(&p->dtls_timer);
    else
        uv_timer_start(&p->dtls_timer, on_dtls_timer, (uint64_t)ms, 0);
}

static void on_dtls_timer(uv_timer_t *t)
{
    bench_peer_t *p = t->data;
    bool handshaking = p->dtls.state == BENCH_DTLS_HANDSHAKE;
    if (handshaking && uv_now(p->net->loop) - p->hs_started_ms >= BENCH_HANDSHAKE_GIVEUP_MS) {
        went_down(p, TETHER_ETIMEDOUT, false);
        return;
    }
    if (!p->deaf && bench_dtls_timeout(&p->dtls) < 0) {
        went_down(p, TETHER_ETIMEDOUT, false);
        return;
    }
    schedule_dtls(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    bench_peer_t *p = h->data;
    bench_net_t *n = p->net;
    /* One receive buffer: libuv delivers datagrams one at a time. */
    if (n->rx_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    n->rx_busy = true;
    buf->base = (char *)n->rxbuf;
    buf->len = sizeof n->rxbuf;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    bench_peer_t *p = h->data;
    bench_net_t *n = p->net;
    if (buf->base)
        n->rx_busy = false;
    if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL) || p->closed || h != p->udp)
        return;
    n->stats.rx_datagrams++;
    if (p->deaf) {
        n->stats.rx_ignored++;
        return;
    }
    bool was_up = p->dtls.state == BENCH_DTLS_ESTABLISHED;
    int rc = bench_dtls_input(&p->dtls, (const uint8_t *)buf->base, (size_t)nread);
    if (rc < 0) {
        went_down(p, rc, false);
        return;
    }
    if (rc == 1) {
        n->stats.handshakes_ok++;
        release_slot(p);
        /* Established: records go to the other node from now on. */
        if (n->records_to.ss_family && (uv_udp_connect(p->udp, NULL) != 0 ||
                                        uv_udp_connect(p->udp, (const struct sockaddr *)&n->records_to) != 0)) {
            went_down(p, TETHER_EIO, false);
            return;
        }
        schedule_dtls(p);
        if (p->ops->up)
            p->ops->up(p);
        if (p->closed || p->dtls.state != BENCH_DTLS_ESTABLISHED)
            return;
        was_up = true;
    }
    if (!was_up) {
        schedule_dtls(p);
        return;
    }
    const uint8_t *data;
    size_t len;
    while (bench_dtls_read(&p->dtls, &data, &len)) {
        p->ops->record(p, data, len);
        if (p->closed || p->dtls.state != BENCH_DTLS_ESTABLISHED)
            break;
    }
    if (!p->closed && p->dtls.state == BENCH_DTLS_CLOSED)
        went_down(p, TETHER_EIO, true);
    else if (!p->closed)
        schedule_dtls(p);
}

/* A new socket bound to an ephemeral port and connected to the server. */
static int sock_open(bench_peer_t *p)
{
    const struct sockaddr *srv = (const struct sockaddr *)&p->net->server;
    struct sockaddr_storage any;
    memset(&any, 0, sizeof any);
    if (srv->sa_family == AF_INET6)
        uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
    else
        uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
    uv_udp_t *u = malloc(sizeof *u);
    if (!u)
        return TETHER_ENOMEM;
    uv_udp_init(p->net->loop, u);
    u->data = p;
    int rc = uv_udp_bind(u, (const struct sockaddr *)&any, 0);
    if (rc == 0)
        rc = uv_udp_connect(u, srv);
    if (rc == 0)
        rc = uv_udp_recv_start(u, on_alloc, on_recv);
    if (rc != 0) {
        uv_close((uv_handle_t *)u, free_handle);
        return TETHER_EIO;
    }
    p->udp = u;
    return 0;
}

static void start_handshake(bench_peer_t *p)
{
    bench_net_t *n = p->net;
    p->counted = true;
    n->inflight++;
    p->hs_started_ms = uv_now(n->loop);
    int rc = sock_open(p);
    if (rc == 0)
        rc = bench_dtls_start_resume(&p->dtls, &n->dtls, p->cred, dtls_out, p, p->resume);
    if (rc < 0) {
        went_down(p, rc, false);
        return;
    }
    schedule_dtls(p);
}

/* Starts queued handshakes while pacing slots are free. Peers that left
 * the queue (waiting cleared) are skipped here: removal is lazy, O(1). */
static void pump(bench_net_t *n)
{
    while (n->wait_head && n->inflight < n->max_handshakes) {
        bench_peer_t *p = n->wait_head;
        n->wait_head = p->wait_next;
        if (!n->wait_head)
            n->wait_tail = NULL;
        p->wait_next = NULL;
        p->in_queue = false;
        if (!p->waiting || p->closed)
            continue;
        p->waiting = false;
        start_handshake(p);
    }
}

static void release_slot(bench_peer_t *p)
{
    if (!p->counted)
        return;
    p->counted = false;
    p->net->inflight--;
    pump(p->net);
}

void bench_peer_init(bench_peer_t *p, bench_net_t *net, const bench_peer_ops_t *ops, void *user,
                     const bench_dtls_cred_t *cred)
{
    memset(p, 0, sizeof *p);
    p->net = net;
    p->ops = ops;
    p->user = user;
    p->cred = cred;
    uv_timer_init(net->loop, &p->dtls_timer);
    p->dtls_timer.data = p;
}

void bench_peer_connect(bench_peer_t *p)
{
    bench_net_t *n = p->net;
    if (p->closed || p->waiting || p->dtls.state != BENCH_DTLS_IDLE)
        return;
    p->waiting = true;
    if (!p->in_queue) {
        p->in_queue = true;
        if (n->wait_tail)
            n->wait_tail->wait_next = p;
        else
            n->wait_head = p;
        n->wait_tail = p;
    }
    pump(n);
}

bool bench_peer_up(const bench_peer_t *p)
{
    return p->dtls.state == BENCH_DTLS_ESTABLISHED;
}

int bench_peer_send(bench_peer_t *p, const uint8_t *data, size_t len)
{
    int rc = bench_dtls_write(&p->dtls, data, len);
    if (rc == 0)
        schedule_dtls(p);
    return rc;
}

int bench_peer_rebind(bench_peer_t *p)
{
    if (!bench_peer_up(p))
        return TETHER_EINVAL;
    uv_udp_t *old = p->udp;
    p->udp = NULL;
    int rc = sock_open(p);
    if (rc < 0) {
        p->udp = old;
        return rc;
    }
    uv_close((uv_handle_t *)old, free_handle);
    p->net->stats.rebinds++;
    return 0;
}

void bench_peer_reset(bench_peer_t *p)
{
    p->waiting = false;
    release_slot(p);
    bench_dtls_end(&p->dtls, false);
    uv_timer_stop(&p->dtls_timer);
    sock_close(p);
}

void bench_peer_hangup(bench_peer_t *p)
{
    bench_dtls_end(&p->dtls, true);
    bench_peer_reset(p);
}

void bench_peer_close(bench_peer_t *p, bool notify)
{
    if (p->closed)
        return;
    p->closed = true;
    p->deaf = false;
    p->waiting = false;
    release_slot(p);
    bench_dtls_end(&p->dtls, notify);
    sock_close(p);
    uv_close((uv_handle_t *)&p->dtls_timer, NULL);
}
