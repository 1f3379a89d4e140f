/* One node's end of the internal channel (see tether/channel.h). */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/channel.h"
#include "util/container.h"
#include "util/hmap.h"
#include "util/list.h"

#define PAIR_KEY_LEN 32
#define WINDOW 64
#define OUT_MAX 1024 /* datagrams the outbox holds at most between clears */

/* A session whose records reach us through another node. */
typedef struct {
    tether_hnode_t hn; /* key: session id (channel.h: not the client address) */
    uint64_t sess;
    tether_lnode_t ln; /* least recently heard first */
    uint8_t node;
    tether_time_t last;
} via_t;

/* What we know of another node. */
typedef struct {
    bool known;
    tether_addr_t addr;
    tether_time_t heard;
    uint8_t key_out[PAIR_KEY_LEN]; /* self -> it */
    uint8_t key_in[PAIR_KEY_LEN];  /* it -> self */
    uint64_t rx_max;               /* newest counter seen from it (0: none yet) */
    bool moving;                   /* a lease names another address: */
    tether_addr_t moved_to;        /* taken once the node writes from it */
    uint64_t rx_bits;              /* bit k: rx_max - 1 - k was seen */
} node_t;

struct tether_channel {
    tether_channel_conf_t conf;
    uint8_t key[128];
    node_t node[256];
    uint64_t counter; /* our last message's counter */
    tether_time_t started; /* messages stamped before this are replays (channel.h) */
    tether_time_t next_beat;
    tether_hmap_t via;
    tether_list_t via_lru;
    tether_channel_stats_t stats;
    tether_channel_dgram_t *out;
    size_t nout, out_cap;
};

void tether_channel_conf_defaults(tether_channel_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->self = 1;
    c->via_max = 1000000;
    c->via_idle_ms = 86400000;
    c->heartbeat_ms = 1000;
    c->alive_ms = 5000;
}

/* HKDF-SHA256(cluster key, "tether-cluster-v2", "pair" | from | to), RFC 5869. */
static int pair_key(const tether_channel_t *ch, uint8_t from, uint8_t to, uint8_t out[PAIR_KEY_LEN])
{
    static const uint8_t salt[] = "tether-cluster-v2";
    uint8_t info[6] = {'p', 'a', 'i', 'r', from, to};
    return wc_HKDF(WC_SHA256, ch->key, (word32)ch->conf.key_len, salt, sizeof salt - 1, info,
                   sizeof info, out, PAIR_KEY_LEN) == 0
               ? 0
               : TETHER_ECRYPTO;
}

int tether_channel_create(const tether_channel_conf_t *conf, tether_time_t now,
                          tether_channel_t **out)
{
    if (!conf->self || !conf->key || !conf->key_len || conf->key_len > 128)
        return TETHER_EINVAL;
    tether_channel_t *ch = calloc(1, sizeof *ch);
    if (!ch)
        return TETHER_ENOMEM;
    ch->conf = *conf;
    memcpy(ch->key, conf->key, conf->key_len);
    ch->conf.key = ch->key;
    if (!ch->conf.via_max)
        ch->conf.via_max = 1;
    /* Above anything this node id sent before a restart (at most one
     * message per microsecond on average). */
    ch->counter = now * 1000;
    ch->started = now;
    ch->next_beat = now;
    ch->stats.nodes_configured = 1;
    ch->stats.nodes_alive = 1;
    int rc = tether_hmap_init(&ch->via, 1024, now * 0x9e3779b97f4a7c15ull ^ (uintptr_t)ch);
    if (rc < 0) {
        free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

static void via_forget(tether_channel_t *ch, via_t *v)
{
    tether_hmap_remove(&ch->via, &v->hn);
    tether_list_del(&ch->via_lru, &v->ln);
    free(v);
}

void tether_channel_destroy(tether_channel_t *ch)
{
    if (!ch)
        return;
    while (ch->via_lru.head)
        via_forget(ch, container_of(ch->via_lru.head, via_t, ln));
    tether_hmap_free(&ch->via);
    free(ch->out);
    volatile uint8_t *p = (volatile uint8_t *)ch; /* keys */
    for (size_t i = 0; i < sizeof *ch; i++)
        p[i] = 0;
    free(ch);
}

int tether_channel_add_node(tether_channel_t *ch, uint8_t id, const tether_addr_t *addr)
{
    if (!id)
        return TETHER_EINVAL;
    node_t *n = &ch->node[id];
    if (id == ch->conf.self || n->known)
        return TETHER_EEXIST;
    if (pair_key(ch, ch->conf.self, id, n->key_out) < 0 ||
        pair_key(ch, id, ch->conf.self, n->key_in) < 0)
        return TETHER_ECRYPTO;
    n->addr = *addr;
    n->known = true;
    ch->stats.nodes_configured++;
    return 0;
}

int tether_channel_node_lease(tether_channel_t *ch, uint8_t id, const tether_addr_t *addr)
{
    if (!id || id == ch->conf.self)
        return TETHER_EEXIST;
    node_t *n = &ch->node[id];
    if (!n->known)
        return tether_channel_add_node(ch, id, addr);
    n->moving = !tether_addr_equal(&n->addr, addr);
    if (n->moving)
        n->moved_to = *addr;
    return 0;
}

/* Queues a message for node `to`; false when it was dropped. */
static bool send_msg(tether_channel_t *ch, uint8_t type, uint8_t to, uint8_t iface,
                     const tether_addr_t *client, const uint8_t *data, size_t len,
                     tether_time_t now)
{
    static const tether_addr_t none = {.ss = {.ss_family = AF_INET}};
    if (ch->nout == ch->out_cap) {
        if (ch->out_cap == OUT_MAX)
            return false;
        size_t cap = ch->out_cap ? ch->out_cap * 2 : 16;
        tether_channel_dgram_t *o = realloc(ch->out, cap * sizeof *o);
        if (!o)
            return false;
        ch->out = o;
        ch->out_cap = cap;
    }
    tether_cluster_msg_t m = {.type = type,
                              .from_node = ch->conf.self,
                              .to_node = to,
                              .iface = iface,
                              .counter = ++ch->counter,
                              .sent_at = now,
                              .client = client ? *client : none,
                              .payload = data,
                              .payload_len = len};
    tether_channel_dgram_t *d = &ch->out[ch->nout];
    int n = tether_cluster_encode(&m, ch->node[to].key_out, PAIR_KEY_LEN, d->data, sizeof d->data);
    if (n <= 0)
        return false;
    d->to = ch->node[to].addr;
    d->len = (uint16_t)n;
    ch->nout++;
    return true;
}

int tether_channel_send(tether_channel_t *ch, uint8_t type, uint8_t to, const uint8_t *data,
                        size_t len, tether_time_t now)
{
    if (type < TETHER_CLUSTER_XREQ || type > TETHER_CLUSTER_XEND || len > TETHER_CHANNEL_MAX_MSG)
        return TETHER_EINVAL;
    if (!to || to == ch->conf.self || !ch->node[to].known)
        return TETHER_ENOTFOUND;
    return send_msg(ch, type, to, 0, NULL, data, len, now) ? 0 : TETHER_ELIMIT;
}

bool tether_channel_route_in(tether_channel_t *ch, uint8_t iface, const tether_addr_t *from,
                             const uint8_t *data, size_t len, tether_time_t now)
{
    int node = tether_cluster_cid_node(data, len);
    if (node <= 0 || node == ch->conf.self)
        return false;
    return tether_channel_forward(ch, (uint8_t)node, iface, from, data, len, now);
}

bool tether_channel_forward(tether_channel_t *ch, uint8_t node, uint8_t iface,
                            const tether_addr_t *from, const uint8_t *data, size_t len,
                            tether_time_t now)
{
    if (!node || node == ch->conf.self)
        return false;
    if (!ch->node[node].known || len > TETHER_CHANNEL_MAX_MSG) {
        ch->stats.unroutable++;
        return false;
    }
    ch->stats.forwarded_records++;
    send_msg(ch, TETHER_CLUSTER_FORWARD, node, iface, from, data, len, now);
    return true;
}

static via_t *via_find(const tether_channel_t *ch, uint64_t sess)
{
    tether_hnode_t *h = ch->via.count ? tether_hmap_find(&ch->via, &sess, sizeof sess) : NULL;
    return h ? container_of(h, via_t, hn) : NULL;
}

void tether_channel_forget(tether_channel_t *ch, uint64_t sess)
{
    via_t *v = via_find(ch, sess);
    if (v)
        via_forget(ch, v);
}

void tether_channel_authenticated(tether_channel_t *ch, uint64_t sess, uint8_t via,
                                  tether_time_t now)
{
    via_t *v = via_find(ch, sess);
    if (!via) { /* straight to us: our own listener answers */
        if (v)
            via_forget(ch, v);
        return;
    }
    if (v) {
        tether_list_del(&ch->via_lru, &v->ln);
    } else {
        if (ch->via.count >= ch->conf.via_max) /* the least recently heard goes */
            via_forget(ch, container_of(ch->via_lru.head, via_t, ln));
        if (!(v = calloc(1, sizeof *v)))
            return; /* answers then leave from our own listener */
        v->sess = sess;
        tether_hmap_insert(&ch->via, &v->hn, &v->sess, sizeof v->sess);
    }
    v->node = via;
    v->last = now;
    tether_list_push(&ch->via_lru, &v->ln);
}

bool tether_channel_route_out(tether_channel_t *ch, uint64_t sess, const tether_addr_t *to,
                              uint8_t iface, const uint8_t *data, size_t len, tether_time_t now)
{
    via_t *v = sess && len <= TETHER_CHANNEL_MAX_MSG ? via_find(ch, sess) : NULL;
    if (!v)
        return false;
    ch->stats.replies_out++;
    send_msg(ch, TETHER_CLUSTER_REPLY, v->node, iface, to, data, len, now);
    return true;
}

/* The sender's replay window (RFC 6347 §4.1.2.6 in spirit): true when
 * `c` is new, and then marks it seen. */
static bool window_accept(node_t *n, uint64_t c)
{
    if (c > n->rx_max) {
        uint64_t shift = c - n->rx_max;
        if (n->rx_max == 0 || shift > WINDOW)
            n->rx_bits = 0;
        else
            n->rx_bits = shift == WINDOW ? 0 : n->rx_bits << shift;
        if (n->rx_max && shift <= WINDOW)
            n->rx_bits |= 1ull << (shift - 1); /* the old newest */
        n->rx_max = c;
        return true;
    }
    uint64_t back = n->rx_max - c; /* 0: the newest itself */
    if (back == 0 || back > WINDOW)
        return false;
    uint64_t bit = 1ull << (back - 1);
    if (n->rx_bits & bit)
        return false;
    n->rx_bits |= bit;
    return true;
}

int tether_channel_input(tether_channel_t *ch, const tether_addr_t *src, const uint8_t *data,
                         size_t len, tether_time_t now, tether_channel_rx_t *rx)
{
    /* The MAC names the sender; its address may be NATed, so src only
     * matters to confirm a move its lease announced. */
    memset(rx, 0, sizeof *rx);
    /* The claimed sender picks the key: bytes 4 (from) and 5 (to) of the
     * header; a forged claim fails the MAC of that pair. */
    int rc = TETHER_EPROTO;
    tether_cluster_msg_t m;
    if (len >= TETHER_CLUSTER_OVERHEAD && ch->node[data[4]].known) {
        rc = tether_cluster_decode(data, len, ch->node[data[4]].key_in, PAIR_KEY_LEN, ch->conf.self,
                                   now, &m);
        /* Sent before we started: our replay windows, empty since then,
         * cannot tell it from a message we accepted before a restart. */
        if (rc == 0 &&
            (m.sent_at < ch->started || !window_accept(&ch->node[m.from_node], m.counter))) {
            ch->stats.replayed++;
            rc = TETHER_EEXIST;
        }
    } else if (len >= TETHER_CLUSTER_OVERHEAD) {
        rc = TETHER_ECRYPTO; /* not a node we know */
    }
    if (rc < 0) {
        ch->stats.rejected++;
        return rc;
    }
    node_t *n = &ch->node[m.from_node];
    n->heard = now;
    if (n->moving && tether_addr_equal(src, &n->moved_to)) {
        /* A restarted node with a new address (a pod rescheduled): its
         * lease named it and an authenticated message came from it, so
         * neither a forged lease alone nor a message alone moves it. */
        n->addr = n->moved_to;
        n->moving = false;
        ch->stats.node_moves++;
    }
    if (m.type == TETHER_CLUSTER_FORWARD) {
        ch->stats.forwarded_in++;
        rx->kind = TETHER_CHANNEL_RX_DELIVER;
    } else if (m.type == TETHER_CLUSTER_REPLY) {
        ch->stats.replies_in++;
        rx->kind = TETHER_CHANNEL_RX_REPLY;
    } else if (m.type >= TETHER_CLUSTER_XREQ) {
        rx->kind = TETHER_CHANNEL_RX_XRELAY;
        rx->type = m.type;
    } else {
        return 0;
    }
    rx->via = m.from_node;
    rx->iface = m.iface;
    rx->client = m.client;
    rx->payload = m.payload;
    rx->len = m.payload_len;
    return 0;
}

bool tether_channel_node_alive(const tether_channel_t *ch, uint8_t id, tether_time_t now)
{
    if (id == ch->conf.self)
        return true;
    const node_t *n = &ch->node[id];
    return n->known && n->heard && n->heard + ch->conf.alive_ms >= now;
}

void tether_channel_tick(tether_channel_t *ch, tether_time_t now)
{
    if (now >= ch->next_beat) {
        for (int id = 1; id < 256; id++)
            if (ch->node[id].known)
                send_msg(ch, TETHER_CLUSTER_HEARTBEAT, (uint8_t)id, 0, NULL, NULL, 0, now);
        ch->next_beat = now + ch->conf.heartbeat_ms;
    }
    ch->stats.nodes_alive = 1;
    for (int id = 1; id < 256; id++)
        if (ch->node[id].known && tether_channel_node_alive(ch, (uint8_t)id, now))
            ch->stats.nodes_alive++;
    while (ch->via_lru.head) {
        via_t *v = container_of(ch->via_lru.head, via_t, ln);
        if (v->last + ch->conf.via_idle_ms > now)
            break;
        via_forget(ch, v);
    }
}

tether_time_t tether_channel_next_deadline(const tether_channel_t *ch)
{
    tether_time_t at = ch->next_beat;
    if (ch->via_lru.head) {
        const via_t *v = container_of(ch->via_lru.head, via_t, ln);
        if (v->last + ch->conf.via_idle_ms < at)
            at = v->last + ch->conf.via_idle_ms;
    }
    return at;
}

size_t tether_channel_out_count(const tether_channel_t *ch)
{
    return ch->nout;
}
const tether_channel_dgram_t *tether_channel_out_get(const tether_channel_t *ch, size_t i)
{
    return i < ch->nout ? &ch->out[i] : NULL;
}
void tether_channel_out_clear(tether_channel_t *ch)
{
    ch->nout = 0;
}
const tether_channel_stats_t *tether_channel_stats(const tether_channel_t *ch)
{
    return &ch->stats;
}
