/* tetherd's end of the internal channel (see cluster.h). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "tether/cluster.h"
#include "tether/log.h"
#include "tether/hmap.h"
#include "tether/hostport.h"
#include "tether/list.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define HEARTBEAT_MS 1000
#define ALIVE_MS 5000     /* a node is alive while heard from this recently */
#define MAX_MSG 2048

/* A client whose records reach us through another node. */
typedef struct {
    tether_hnode_t hn; /* key: client address */
    tether_lnode_t ln; /* least recently heard first */
    uint8_t node;
    uint64_t last_ms;
} via_t;

struct tetherd_cluster {
    uv_udp_t sock;
    uv_timer_t heartbeat;
    tetherd_cluster_ops_t ops;
    void *user;
    uint8_t self;
    uint8_t key[128];
    size_t key_len;
    bool known[256];
    tether_addr_t peer[256];
    uint64_t heard_ms[256];
    tether_hmap_t via;
    tether_list_t via_lru;
    uint64_t via_idle_ms; /* the DTLS idle timeout: the session is gone by then */
    size_t via_max;       /* the session limit */
    tetherd_cluster_stats_t stats;
    uint8_t buf[MAX_MSG + TETHER_CLUSTER_OVERHEAD];
    uint8_t rx[MAX_MSG + TETHER_CLUSTER_OVERHEAD];
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

static void send_msg(tetherd_cluster_t *c, uint8_t type, uint8_t to, const tether_addr_t *client,
                     const uint8_t *data, size_t len)
{
    static const tether_addr_t none = {.ss = {.ss_family = AF_INET}};
    tether_cluster_msg_t m = {.type = type,
                              .from_node = c->self,
                              .to_node = to,
                              .sent_at = tetherd_wall_ms(),
                              .client = client ? *client : none,
                              .payload = data,
                              .payload_len = len};
    int n = tether_cluster_encode(&m, c->key, c->key_len, c->buf, sizeof c->buf);
    if (n > 0)
        c->ops.send(c->user, &c->sock, &c->peer[to], c->buf, (size_t)n);
}

static void via_forget(tetherd_cluster_t *c, via_t *v)
{
    tether_hmap_remove(&c->via, &v->hn);
    tether_list_del(&c->via_lru, &v->ln);
    free(v);
}

void tetherd_cluster_authenticated(tetherd_cluster_t *c, const tether_addr_t *client, uint8_t via)
{
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(client, key);
    tether_hnode_t *h = c->via.count ? tether_hmap_find(&c->via, key, kl) : NULL;
    via_t *v = h ? container_of(h, via_t, hn) : NULL;
    if (!via) { /* straight to us: our own socket answers */
        if (v)
            via_forget(c, v);
        return;
    }
    if (v) {
        tether_list_del(&c->via_lru, &v->ln);
    } else {
        if (c->via.count >= c->via_max) /* the least recently heard goes */
            via_forget(c, container_of(c->via_lru.head, via_t, ln));
        if (!(v = calloc(1, sizeof *v)))
            return;
        tether_hmap_insert(&c->via, &v->hn, key, kl);
    }
    v->node = via;
    v->last_ms = tetherd_wall_ms();
    tether_list_push(&c->via_lru, &v->ln);
}

static void on_heartbeat(uv_timer_t *t)
{
    tetherd_cluster_t *c = t->data;
    for (int id = 1; id < 256; id++)
        if (c->known[id])
            send_msg(c, TETHER_CLUSTER_HEARTBEAT, (uint8_t)id, NULL, NULL, 0);
    uint64_t now = tetherd_wall_ms();
    c->stats.nodes_alive = 1;
    for (int id = 1; id < 256; id++)
        if (c->known[id] && c->heard_ms[id] + ALIVE_MS >= now)
            c->stats.nodes_alive++;
    while (c->via_lru.head) {
        via_t *v = container_of(c->via_lru.head, via_t, ln);
        if (v->last_ms + c->via_idle_ms > now)
            break;
        via_forget(c, v);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    tetherd_cluster_t *c = h->data;
    buf->base = (char *)c->rx;
    buf->len = sizeof c->rx;
}

/* An internal message: only authenticated ones from configured nodes. */
static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    tetherd_cluster_t *c = h->data;
    if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL))
        return;
    tether_cluster_msg_t m;
    if (tether_cluster_decode((const uint8_t *)buf->base, (size_t)nread, c->key, c->key_len,
                              c->self, tetherd_wall_ms(), &m) < 0 ||
        !c->known[m.from_node]) {
        c->stats.rejected++;
        return;
    }
    c->heard_ms[m.from_node] = tetherd_wall_ms();
    if (m.type == TETHER_CLUSTER_FORWARD) {
        c->stats.forwarded_in++;
        c->ops.deliver(c->user, &m.client, m.from_node, m.payload, m.payload_len);
    } else if (m.type == TETHER_CLUSTER_REPLY) {
        c->stats.replies_in++;
        c->ops.reply(c->user, &m.client, m.payload, m.payload_len);
    }
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
    c->self = (uint8_t)cfg->node_id;
    c->key_len = strlen(cfg->cluster_key);
    memcpy(c->key, cfg->cluster_key, c->key_len);
    c->stats.nodes_configured = 1;
    c->stats.nodes_alive = 1;
    c->via_idle_ms = (uint64_t)cfg->dtls_idle_timeout * 1000;
    c->via_max = cfg->dtls_max_sessions ? cfg->dtls_max_sessions : 1;
    int rc;
    for (size_t i = 0; i < cfg->ncluster_nodes; i++) {
        uint8_t id = cfg->cluster_nodes[i].id;
        if (id == c->self || c->known[id])
            continue;
        if ((rc = resolve(cfg->cluster_nodes[i].addr, &c->peer[id])) < 0) {
            snprintf(err, errcap, "cluster: cannot resolve node %u at %s", id,
                     cfg->cluster_nodes[i].addr);
            goto fail;
        }
        c->known[id] = true;
        c->stats.nodes_configured++;
    }
    tether_addr_t bind_at;
    if ((rc = resolve(cfg->cluster_listen, &bind_at)) < 0) {
        snprintf(err, errcap, "cluster: cannot resolve listen address %s", cfg->cluster_listen);
        goto fail;
    }
    if ((rc = tether_hmap_init(&c->via, 1024, tetherd_wall_ms() * 0x9e3779b97f4a7c15ull)) < 0)
        goto fail;
    uv_udp_init(loop, &c->sock);
    c->sock.data = c;
    int urc = uv_udp_bind(&c->sock, (const struct sockaddr *)&bind_at.ss, 0);
    if (urc == 0)
        urc = uv_udp_recv_start(&c->sock, on_alloc, on_recv);
    uv_timer_init(loop, &c->heartbeat);
    c->heartbeat.data = c;
    c->closing = 2;
    if (urc < 0) {
        snprintf(err, errcap, "cluster: cannot listen on %s: %s", cfg->cluster_listen,
                 uv_strerror(urc));
        tetherd_cluster_close(c);
        return TETHER_EIO;
    }
    uv_timer_start(&c->heartbeat, on_heartbeat, 0, HEARTBEAT_MS);
    tether_log_kv(TETHER_LOG_INFO, "cluster", "internal channel up", "listen",
                  cfg->cluster_listen, NULL);
    *out = c;
    return 0;
fail:
    free(c);
    return rc < 0 ? rc : TETHER_EINVAL;
}

static void on_closed(uv_handle_t *h)
{
    tetherd_cluster_t *c = h->data;
    if (--c->closing > 0)
        return;
    while (c->via_lru.head)
        via_forget(c, container_of(c->via_lru.head, via_t, ln));
    tether_hmap_free(&c->via);
    memset(c->key, 0, sizeof c->key);
    free(c);
}

void tetherd_cluster_close(tetherd_cluster_t *c)
{
    if (!c)
        return;
    uv_close((uv_handle_t *)&c->sock, on_closed);
    uv_close((uv_handle_t *)&c->heartbeat, on_closed);
}

bool tetherd_cluster_route_in(tetherd_cluster_t *c, const tether_addr_t *from,
                              const uint8_t *data, size_t len)
{
    int node = tether_cluster_cid_node(data, len);
    if (node < 0 || node == c->self)
        return false;
    if (!c->known[node] || len > MAX_MSG) {
        c->stats.unroutable++;
        return false; /* DTLS drops it as an unknown CID */
    }
    c->stats.forwarded_records++;
    send_msg(c, TETHER_CLUSTER_FORWARD, (uint8_t)node, from, data, len);
    return true;
}

bool tetherd_cluster_route_out(tetherd_cluster_t *c, const tether_addr_t *to,
                               const uint8_t *data, size_t len)
{
    if (!c->via.count)
        return false;
    uint8_t key[TETHER_HKEY_MAX];
    tether_hnode_t *h = tether_hmap_find(&c->via, key, tether_addr_key(to, key));
    if (!h || len > MAX_MSG)
        return false;
    via_t *v = container_of(h, via_t, hn);
    c->stats.replies_out++;
    send_msg(c, TETHER_CLUSTER_REPLY, v->node, to, data, len);
    return true;
}

const tetherd_cluster_stats_t *tetherd_cluster_stats(const tetherd_cluster_t *c)
{
    return &c->stats;
}
