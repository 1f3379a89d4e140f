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
    tether_cluster_key_t *key_out; /* self -> it (set when known) */
    tether_cluster_key_t *key_in;  /* it -> self */
    uint64_t rx_max;               /* newest counter seen from it (0: none yet) */
    bool moving;                   /* a lease names another address: */
    tether_addr_t moved_to;        /* taken once the node writes from it */
    uint64_t rx_bits;              /* bit k: rx_max - 1 - k was seen */
    int32_t open;                  /* out index of the bundle being filled for it, -1: none */
    uint16_t open_frames;          /* frames in it */
} node_t;

struct tether_channel {
    tether_channel_conf_t conf;
    uint8_t key[128];
    node_t node[256];
    uint64_t counter;      /* our last message's counter */
    tether_time_t started; /* messages stamped before this are replays (channel.h) */
    tether_time_t next_beat;
    tether_hmap_t via;
    tether_list_t via_lru;
    tether_channel_stats_t stats;
    tether_channel_dgram_t *out;
    size_t nout, out_cap;
    size_t nopen; /* bundles being filled (none visible in the outbox then) */
    /* The bundle tether_channel_input took apart, for input_more. */
    const uint8_t *rx_frames;
    size_t rx_len, rx_pos;
    uint8_t rx_via;
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
    if (ch->conf.bundle_max > sizeof ch->out[0].data)
        ch->conf.bundle_max = sizeof ch->out[0].data;
    for (int i = 0; i < 256; i++)
        ch->node[i].open = -1;
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
    for (int i = 0; i < 256; i++) {
        tether_cluster_key_free(ch->node[i].key_out);
        tether_cluster_key_free(ch->node[i].key_in);
    }
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
    uint8_t kout[PAIR_KEY_LEN], kin[PAIR_KEY_LEN];
    int rc = TETHER_ECRYPTO;
    if (pair_key(ch, ch->conf.self, id, kout) == 0 && pair_key(ch, id, ch->conf.self, kin) == 0 &&
        (rc = tether_cluster_key_new(kout, sizeof kout, &n->key_out)) == 0 &&
        (rc = tether_cluster_key_new(kin, sizeof kin, &n->key_in)) < 0) {
        tether_cluster_key_free(n->key_out);
        n->key_out = NULL;
    }
    volatile uint8_t *w = kout, *w2 = kin;
    for (size_t i = 0; i < PAIR_KEY_LEN; i++)
        w[i] = w2[i] = 0;
    if (rc < 0)
        return rc;
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

/* A free outbox entry, NULL when the outbox is full (UDP: dropped). */
static tether_channel_dgram_t *out_reserve(tether_channel_t *ch)
{
    if (ch->nout == ch->out_cap) {
        if (ch->out_cap == OUT_MAX)
            return NULL;
        size_t cap = ch->out_cap ? ch->out_cap * 2 : 16;
        tether_channel_dgram_t *o = realloc(ch->out, cap * sizeof *o);
        if (!o)
            return NULL;
        ch->out = o;
        ch->out_cap = cap;
    }
    return &ch->out[ch->nout];
}

static const tether_addr_t no_client = {.ss = {.ss_family = AF_INET}};

/* Encodes one plain message into d; false when it cannot be. */
static bool encode_into(tether_channel_t *ch, tether_channel_dgram_t *d, uint8_t type, uint8_t to,
                        uint8_t iface, const tether_addr_t *client, const uint8_t *data, size_t len,
                        tether_time_t now)
{
    tether_cluster_msg_t m = {.type = type,
                              .from_node = ch->conf.self,
                              .to_node = to,
                              .iface = iface,
                              .counter = ++ch->counter,
                              .sent_at = now,
                              .client = client ? *client : no_client,
                              .payload = data,
                              .payload_len = len};
    int n = tether_cluster_encode_k(&m, ch->node[to].key_out, d->data, sizeof d->data);
    if (n <= 0)
        return false;
    d->to = ch->node[to].addr;
    d->len = (uint16_t)n;
    return true;
}

/* Closes the bundle being filled for node `to`: header, counter and MAC
 * now; a lone frame goes as its plain message (cluster.h). */
static void seal(tether_channel_t *ch, uint8_t to, tether_time_t now)
{
    node_t *n = &ch->node[to];
    if (n->open < 0)
        return;
    tether_channel_dgram_t *d = &ch->out[n->open];
    bool ok;
    if (n->open_frames == 1) {
        tether_cluster_msg_t f;
        size_t pos = 0;
        uint8_t tmp[TETHER_CHANNEL_MAX_MSG];
        ok = tether_cluster_frame_next(d->data + TETHER_CLUSTER_HDR, d->len - TETHER_CLUSTER_HDR,
                                       &pos, &f) == 1;
        if (ok) {
            memcpy(tmp, f.payload, f.payload_len);
            ok = encode_into(ch, d, f.type, to, f.iface, &f.client, tmp, f.payload_len, now);
        }
    } else {
        tether_cluster_msg_t m = {.type = TETHER_CLUSTER_BUNDLE,
                                  .from_node = ch->conf.self,
                                  .to_node = to,
                                  .counter = ++ch->counter,
                                  .sent_at = now,
                                  .client = no_client,
                                  .payload = d->data + TETHER_CLUSTER_HDR,
                                  .payload_len = d->len - TETHER_CLUSTER_HDR};
        int len = tether_cluster_encode_k(&m, n->key_out, d->data, sizeof d->data);
        ok = len > 0;
        if (ok) {
            d->to = n->addr;
            d->len = (uint16_t)len;
        }
    }
    if (!ok) /* cannot happen (the frames were checked going in): send nothing */
        d->len = 0;
    n->open = -1;
    ch->nopen--;
}

/* Adds a frame to node `to`'s bundle, opening one; false when the frame
 * does not fit in an empty bundle (sent plain then). */
static bool bundle_add(tether_channel_t *ch, uint8_t type, uint8_t to, uint8_t iface,
                       const tether_addr_t *client, const uint8_t *data, size_t len,
                       tether_time_t now, bool *dropped)
{
    node_t *n = &ch->node[to];
    tether_cluster_msg_t f = {.type = type,
                              .iface = iface,
                              .client = client ? *client : no_client,
                              .payload = data,
                              .payload_len = len};
    size_t room = ch->conf.bundle_max - TETHER_CLUSTER_MAC;
    for (int tries = 0; tries < 2; tries++) {
        if (n->open < 0) {
            tether_channel_dgram_t *d = out_reserve(ch);
            if (!d) {
                *dropped = true;
                return true;
            }
            d->len = TETHER_CLUSTER_HDR;
            n->open = (int32_t)ch->nout++;
            n->open_frames = 0;
            ch->nopen++;
        }
        tether_channel_dgram_t *d = &ch->out[n->open];
        int fl = room > d->len ? tether_cluster_frame_put(&f, d->data + d->len, room - d->len)
                               : TETHER_ENOSPC;
        if (fl > 0) {
            d->len = (uint16_t)(d->len + fl);
            n->open_frames++;
            ch->stats.bundled++;
            return true;
        }
        if (fl != TETHER_ENOSPC || n->open_frames == 0) {
            /* Too large for any bundle: give the empty entry back when it
             * is the newest (it is: just reserved). */
            if (n->open_frames == 0 && (size_t)n->open + 1 == ch->nout) {
                ch->nout--;
                n->open = -1;
                ch->nopen--;
            }
            return false;
        }
        seal(ch, to, now); /* full: the frame opens the next one */
    }
    return false;
}

/* Queues a message for node `to`; false when it was dropped. */
static bool send_msg(tether_channel_t *ch, uint8_t type, uint8_t to, uint8_t iface,
                     const tether_addr_t *client, const uint8_t *data, size_t len,
                     tether_time_t now)
{
    if (ch->conf.bundle_max && type != TETHER_CLUSTER_HEARTBEAT) {
        bool dropped = false;
        if (bundle_add(ch, type, to, iface, client, data, len, now, &dropped))
            return !dropped;
    }
    seal(ch, to, now); /* what was bundled before it goes first */
    tether_channel_dgram_t *d = out_reserve(ch);
    if (!d || !encode_into(ch, d, type, to, iface, client, data, len, now))
        return false;
    ch->nout++;
    return true;
}

void tether_channel_flush(tether_channel_t *ch, tether_time_t now)
{
    for (int id = 1; ch->nopen && id < 256; id++)
        seal(ch, (uint8_t)id, now);
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

/* What message (or frame) m asks of us, from node `via`. */
static void deliver(tether_channel_t *ch, const tether_cluster_msg_t *m, uint8_t via,
                    tether_channel_rx_t *rx)
{
    if (m->type == TETHER_CLUSTER_FORWARD) {
        ch->stats.forwarded_in++;
        rx->kind = TETHER_CHANNEL_RX_DELIVER;
    } else if (m->type == TETHER_CLUSTER_REPLY) {
        ch->stats.replies_in++;
        rx->kind = TETHER_CHANNEL_RX_REPLY;
    } else if (m->type >= TETHER_CLUSTER_XREQ && m->type <= TETHER_CLUSTER_XEND) {
        rx->kind = TETHER_CHANNEL_RX_XRELAY;
        rx->type = m->type;
    } else {
        return; /* a heartbeat */
    }
    rx->via = via;
    rx->iface = m->iface;
    rx->client = m->client;
    rx->payload = m->payload;
    rx->len = m->payload_len;
}

int tether_channel_input(tether_channel_t *ch, const tether_addr_t *src, const uint8_t *data,
                         size_t len, tether_time_t now, tether_channel_rx_t *rx)
{
    /* The MAC names the sender; its address may be NATed, so src only
     * matters to confirm a move its lease announced. */
    memset(rx, 0, sizeof *rx);
    ch->rx_frames = NULL;
    /* The claimed sender picks the key: bytes 4 (from) and 5 (to) of the
     * header; a forged claim fails the MAC of that pair. */
    int rc = TETHER_EPROTO;
    tether_cluster_msg_t m;
    if (len >= TETHER_CLUSTER_OVERHEAD && ch->node[data[4]].known) {
        rc = tether_cluster_decode_k(data, len, ch->node[data[4]].key_in, ch->conf.self, now, &m);
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
    if (m.type == TETHER_CLUSTER_BUNDLE) {
        /* Every frame is checked before any is acted on. */
        size_t pos = 0;
        tether_cluster_msg_t f;
        int fr;
        while ((fr = tether_cluster_frame_next(m.payload, m.payload_len, &pos, &f)) == 1)
            ;
        if (fr < 0 || m.payload_len == 0) {
            ch->stats.rejected++;
            return TETHER_EPROTO;
        }
        ch->stats.bundles_in++;
        ch->rx_frames = m.payload;
        ch->rx_len = m.payload_len;
        ch->rx_pos = 0;
        ch->rx_via = m.from_node;
        return tether_channel_input_more(ch, rx) ? 0 : TETHER_EPROTO;
    }
    deliver(ch, &m, m.from_node, rx);
    return 0;
}

bool tether_channel_input_more(tether_channel_t *ch, tether_channel_rx_t *rx)
{
    tether_cluster_msg_t f;
    memset(rx, 0, sizeof *rx);
    if (!ch->rx_frames ||
        tether_cluster_frame_next(ch->rx_frames, ch->rx_len, &ch->rx_pos, &f) != 1) {
        ch->rx_frames = NULL;
        return false;
    }
    deliver(ch, &f, ch->rx_via, rx);
    return true;
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
    return ch->nopen ? 0 : ch->nout;
}
const tether_channel_dgram_t *tether_channel_out_get(const tether_channel_t *ch, size_t i)
{
    return i < ch->nout ? &ch->out[i] : NULL;
}
void tether_channel_out_clear(tether_channel_t *ch)
{
    for (int id = 1; ch->nopen && id < 256; id++)
        if (ch->node[id].open >= 0) {
            ch->node[id].open = -1;
            ch->nopen--;
        }
    ch->nout = 0;
}
const tether_channel_stats_t *tether_channel_stats(const tether_channel_t *ch)
{
    return &ch->stats;
}
