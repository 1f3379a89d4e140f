/* tetherd's end of the internal channel (see cluster.h): the socket and
 * the timer; everything else is tether/channel.h. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "tether/log.h"
#include "tether/hostport.h"

struct tetherd_cluster {
    uv_udp_t sock;
    uv_timer_t timer;
    tetherd_cluster_ops_t ops;
    void *user;
    tether_channel_t *ch;
    tether_time_t timer_at;
    uint8_t rx[TETHER_CHANNEL_MAX_MSG + TETHER_CLUSTER_OVERHEAD];
    int closing; /* handles still to close */
};

uint64_t tetherd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Resolves HOST:PORT (a name is looked up once, at start). */
static int resolve(const char *hostport, tether_addr_t *out)
{
    char host[160], port[8];
    uint16_t p;
    if (tether_hostport_split(hostport, host, sizeof host, &p) < 0)
        return TETHER_EINVAL;
    snprintf(port, sizeof port, "%u", p);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return TETHER_ENOTFOUND;
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void on_timer(uv_timer_t *t);

/* Sends what the channel queued and re-arms the timer for its deadline. */
static void flush(tetherd_cluster_t *c)
{
    size_t n = tether_channel_out_count(c->ch);
    for (size_t i = 0; i < n; i++) {
        const tether_channel_dgram_t *g = tether_channel_out_get(c->ch, i);
        c->ops.send(c->user, &c->sock, &g->to, g->data, g->len);
    }
    tether_channel_out_clear(c->ch);
    tether_time_t at = tether_channel_next_deadline(c->ch);
    if (at != c->timer_at && !c->closing) {
        c->timer_at = at;
        tether_time_t now = tetherd_wall_ms();
        uv_timer_start(&c->timer, on_timer, at > now ? at - now : 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    tetherd_cluster_t *c = t->data;
    c->timer_at = 0;
    tether_channel_tick(c->ch, tetherd_wall_ms());
    flush(c);
}

void tetherd_cluster_authenticated(tetherd_cluster_t *c, const tether_addr_t *client, uint8_t via)
{
    tether_channel_authenticated(c->ch, client, via, tetherd_wall_ms());
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    tetherd_cluster_t *c = h->data;
    buf->base = (char *)c->rx;
    buf->len = sizeof c->rx;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    tetherd_cluster_t *c = h->data;
    if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL))
        return;
    tether_addr_t src = {.len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                            : sizeof(struct sockaddr_in)};
    memcpy(&src.ss, addr, src.len);
    tether_channel_rx_t rx;
    if (tether_channel_input(c->ch, &src, (const uint8_t *)buf->base, (size_t)nread,
                             tetherd_wall_ms(), &rx) == 0) {
        if (rx.kind == TETHER_CHANNEL_RX_DELIVER)
            c->ops.deliver(c->user, &rx.client, rx.via, rx.iface, rx.payload, rx.len);
        else if (rx.kind == TETHER_CHANNEL_RX_REPLY)
            c->ops.reply(c->user, &rx.client, rx.iface, rx.payload, rx.len);
    }
    flush(c);
}

int tetherd_cluster_open(uv_loop_t *loop, const tetherd_config_t *cfg,
                         const tetherd_cluster_ops_t *ops, void *user, tetherd_cluster_t **out,
                         char *err, size_t errcap)
{
    tetherd_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return TETHER_ENOMEM;
    c->ops = *ops;
    c->user = user;
    tether_channel_conf_t cc;
    tether_channel_conf_defaults(&cc);
    cc.self = (uint8_t)cfg->node_id;
    cc.key = (const uint8_t *)cfg->cluster_key;
    cc.key_len = strlen(cfg->cluster_key);
    cc.via_idle_ms = (tether_time_t)cfg->dtls_idle_timeout * 1000;
    cc.via_max = cfg->dtls_max_sessions ? cfg->dtls_max_sessions : 1;
    int rc = tether_channel_create(&cc, tetherd_wall_ms(), &c->ch);
    if (rc < 0) {
        snprintf(err, errcap, "cluster: %s", tether_strerror(rc));
        free(c);
        return rc;
    }
    for (size_t i = 0; i < cfg->ncluster_nodes; i++) {
        uint8_t id = cfg->cluster_nodes[i].id;
        tether_addr_t a;
        if (id == cc.self)
            continue;
        if ((rc = resolve(cfg->cluster_nodes[i].addr, &a)) < 0) {
            snprintf(err, errcap, "cluster: cannot resolve node %u at %s", id,
                     cfg->cluster_nodes[i].addr);
            goto fail;
        }
        if ((rc = tether_channel_add_node(c->ch, id, &a)) < 0 && rc != TETHER_EEXIST) {
            snprintf(err, errcap, "cluster: node %u: %s", id, tether_strerror(rc));
            goto fail;
        }
    }
    tether_addr_t bind_at;
    if ((rc = resolve(cfg->cluster_listen, &bind_at)) < 0) {
        snprintf(err, errcap, "cluster: cannot resolve listen address %s", cfg->cluster_listen);
        goto fail;
    }
    uv_udp_init(loop, &c->sock);
    c->sock.data = c;
    int urc = uv_udp_bind(&c->sock, (const struct sockaddr *)&bind_at.ss, 0);
    if (urc == 0)
        urc = uv_udp_recv_start(&c->sock, on_alloc, on_recv);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    if (urc < 0) {
        snprintf(err, errcap, "cluster: cannot listen on %s: %s", cfg->cluster_listen,
                 uv_strerror(urc));
        tetherd_cluster_close(c);
        return TETHER_EIO;
    }
    uv_timer_start(&c->timer, on_timer, 0, 0); /* the first heartbeats */
    tether_log_kv(TETHER_LOG_INFO, "cluster", "internal channel up", "listen",
                  cfg->cluster_listen, NULL);
    *out = c;
    return 0;
fail:
    tether_channel_destroy(c->ch);
    free(c);
    return rc < 0 ? rc : TETHER_EINVAL;
}

static void on_closed(uv_handle_t *h)
{
    tetherd_cluster_t *c = h->data;
    if (--c->closing > 0)
        return;
    tether_channel_destroy(c->ch);
    free(c);
}

void tetherd_cluster_close(tetherd_cluster_t *c)
{
    if (!c)
        return;
    c->closing = 2;
    uv_close((uv_handle_t *)&c->sock, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

bool tetherd_cluster_route_in(tetherd_cluster_t *c, uint8_t iface, const tether_addr_t *from,
                              const uint8_t *data, size_t len)
{
    if (!tether_channel_route_in(c->ch, iface, from, data, len, tetherd_wall_ms()))
        return false;
    flush(c);
    return true;
}

bool tetherd_cluster_route_out(tetherd_cluster_t *c, const tether_addr_t *to, uint8_t iface,
                               const uint8_t *data, size_t len)
{
    if (!tether_channel_route_out(c->ch, to, iface, data, len, tetherd_wall_ms()))
        return false;
    flush(c);
    return true;
}

int tetherd_cluster_add_node(tetherd_cluster_t *c, uint8_t id, const tether_addr_t *addr)
{
    int rc = tether_channel_add_node(c->ch, id, addr);
    if (rc == 0)
        flush(c); /* re-arms for the heartbeat to it */
    return rc == TETHER_EEXIST ? 0 : rc;
}

bool tetherd_cluster_node_alive(const tetherd_cluster_t *c, uint8_t id)
{
    return tether_channel_node_alive(c->ch, id, tetherd_wall_ms());
}

const tether_channel_stats_t *tetherd_cluster_stats(const tetherd_cluster_t *c)
{
    return tether_channel_stats(c->ch);
}
