/* The stack behind one entry: tether/pipeline.h gives the contract.
 *
 * Every entry point ends in settle(): DTLS events reach the node (a
 * closed session's link goes down), the node's outbox is emptied until it
 * stays empty (an internal CON answer is acknowledged back into the node,
 * which may answer again), then the DTLS transmit queue and the channel's
 * outbox move to the one outbox. The DTLS queue is bounded, so it is
 * emptied after every step rather than at the end of a receive batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/probe.h"
#include "tether/log.h"
#include "tether/pipeline.h"

struct tether_pipeline {
    tether_node_t *node;
    tether_dtls_srv_t *dtls; /* NULL: no DTLS interface */
    tether_channel_t *ch;    /* NULL: no cluster interface */
    tether_probes_t probes;  /* of moved DTLS sessions (when dtls) */
    uint8_t cluster_iface;   /* the channel's interface, when ch */
    bool bundling;           /* the channel bundles: its outbox moves at flush */
    uint8_t niface;
    uint8_t iface[TETHER_PIPELINE_MAX_IFACE];
    tether_pipeline_tap_fn tap;
    void *tap_user;
    tether_pipeline_cid_owner_fn cid_owner;
    tether_pipeline_dtls_event_fn dtls_event;
    void *failover_user;
    uint8_t self;                   /* node id */
    uint8_t cid_len;                /* of the CIDs DTLS issues */
    tether_time_t wall_ms, wall_at; /* wall clock wall_ms at `now` wall_at */
    bool wall_pending;              /* wall_ms was set for the coming call's `now` */
    tether_dgram_t *out;
    size_t nout, out_cap;
    uint64_t out_dropped;
    tether_out_t *internal; /* answers on internal links, from internal_head */
    size_t ninternal, internal_head, internal_cap;
};

void tether_pipeline_conf_defaults(tether_pipeline_conf_t *c)
{
    memset(c, 0, sizeof *c);
    tether_node_conf_defaults(&c->node);
    tether_dtls_conf_defaults(&c->dtls);
    tether_channel_conf_defaults(&c->channel);
}

/* Called first by every entry point: a wall clock the host gave for this
 * call is the wall clock at its `now`. */
static void clock_at(tether_pipeline_t *p, tether_time_t now)
{
    if (p->wall_pending) {
        p->wall_at = now;
        p->wall_pending = false;
    }
}

/* The wall clock at `now`, advanced from the last one the host gave. */
static tether_time_t wall(const tether_pipeline_t *p, tether_time_t now)
{
    return p->wall_ms + (now > p->wall_at ? now - p->wall_at : 0);
}

/* A free outbox slot, or NULL (counted) when the outbox cannot grow. */
static tether_dgram_t *out_slot(tether_pipeline_t *p)
{
    if (p->nout == p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap * 2 : 64;
        tether_dgram_t *n = realloc(p->out, cap * sizeof *n);
        if (!n) {
            p->out_dropped++;
            return NULL;
        }
        p->out = n;
        p->out_cap = cap;
    }
    return &p->out[p->nout++];
}

static void out_push(tether_pipeline_t *p, uint8_t iface, const tether_addr_t *to,
                     const uint8_t *data, size_t len)
{
    tether_dgram_t *d;
    if (len > sizeof d->data || !(d = out_slot(p))) {
        if (len > sizeof d->data)
            p->out_dropped++;
        return;
    }
    d->to = *to;
    d->iface = iface;
    d->len = (uint16_t)len;
    memcpy(d->data, data, len);
}

/* Keeps a copy of an answer on an internal link (an operator request). If
 * the list cannot grow, the admin request times out with a 504. */
static void internal_keep(tether_pipeline_t *p, const tether_out_t *o)
{
    if (o->len < 4) /* not a CoAP message: nothing to hand the operator */
        return;
    if (p->ninternal == p->internal_cap) {
        size_t cap = p->internal_cap ? p->internal_cap * 2 : 4;
        tether_out_t *n = realloc(p->internal, cap * sizeof *n);
        if (!n)
            return;
        p->internal = n;
        p->internal_cap = cap;
    }
    p->internal[p->ninternal++] = *o;
}

/* A separate response on an internal link comes as a CON that the node
 * retransmits until acknowledged: it gets an empty ACK on the same link,
 * as a client would send (RFC 7252 §5.2.2). */
static void internal_ack(tether_pipeline_t *p, const tether_out_t *o, tether_time_t now)
{
    if (o->len < 4 || (o->data[0] >> 4 & 3) != TETHER_COAP_CON)
        return;
    uint8_t ack[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_ACK << 4), 0, o->data[2],
                      o->data[3]};
    tether_peer_t peer = {.link = o->link};
    tether_node_input(p->node, &peer, ack, sizeof ack, now);
}

/* probe.h's callbacks: a ping down its session, MIDs from the DTLS
 * server's CSPRNG. */
static void probe_send(void *ctx, uint64_t sess, const uint8_t ping[4])
{
    tether_pipeline_t *p = ctx;
    tether_dtls_sess_t *s = tether_dtls_sess_find(p->dtls, sess);
    if (s)
        tether_dtls_send(p->dtls, s, ping, 4);
}

static int probe_random(void *ctx, void *buf, size_t n)
{
    tether_pipeline_t *p = ctx;
    return tether_dtls_random(p->dtls, buf, n);
}

/* Session ends reach the node; a moved session's new address is probed;
 * failed handshakes are logged (debug). */
static void dtls_events(tether_pipeline_t *p, tether_time_t now)
{
    const tether_dtls_event_t *ev;
    size_t n = tether_dtls_events(p->dtls, &ev);
    for (size_t i = 0; i < n; i++) {
        if (p->dtls_event)
            p->dtls_event(p->failover_user, &ev[i]);
        if (ev[i].kind == TETHER_DTLS_EV_CLOSED) {
            tether_link_t l = {.kind = TETHER_LINK_DTLS, .id = ev[i].id};
            tether_probe_forget(&p->probes, ev[i].id);
            if (p->ch)
                tether_channel_forget(p->ch, ev[i].id);
            tether_node_link_down(p->node, &l, now);
        } else if (ev[i].kind == TETHER_DTLS_EV_MOVED) {
            tether_dtls_sess_t *s = tether_dtls_sess_find(p->dtls, ev[i].id);
            tether_probe_start(&p->probes, ev[i].id, s ? tether_dtls_sess_identity(s) : NULL,
                               &ev[i].peer, now);
        } else if (ev[i].kind == TETHER_DTLS_EV_HANDSHAKE_FAILED &&
                   tether_log_enabled(TETHER_LOG_DEBUG)) {
            char peer[80], total[24];
            tether_addr_str(&ev[i].peer, peer, sizeof peer);
            snprintf(total, sizeof total, "%llu",
                     (unsigned long long)tether_dtls_stats(p->dtls)->handshakes_failed);
            tether_log_kv(TETHER_LOG_DEBUG, "dtls", "handshake failed", "peer", peer, "reason",
                          tether_dtls_why_str(ev[i].why), "handshakes_failed", total, NULL);
        }
    }
    tether_dtls_events_clear(p->dtls);
}

/* Empties the node's outbox once: DTLS records through their session
 * (into the DTLS transmit queue), plain datagrams into the outbox for the
 * interface the peer talks to, answers on internal links kept; then the
 * CON answers among those are acknowledged (which feeds the node, so only
 * once its outbox has been read and cleared). */
static void node_flush(tether_pipeline_t *p, tether_time_t now)
{
    size_t first = p->ninternal;
    size_t n = tether_node_out_count(p->node);
    for (size_t i = 0; i < n; i++) {
        const tether_out_t *o = tether_node_out_get(p->node, i);
        if (o->link.kind == TETHER_LINK_INTERNAL || o->link.kind == TETHER_LINK_HTTP) {
            internal_keep(p, o);
        } else if (o->link.kind == TETHER_LINK_CLUSTER) {
            tether_node_xlink_out(p->node, o); /* back to the relaying node */
        } else if (o->link.kind == TETHER_LINK_DTLS) {
            tether_dtls_sess_t *s = p->dtls ? tether_dtls_sess_find(p->dtls, o->link.id) : NULL;
            if (s) {
                if (p->tap)
                    p->tap(p->tap_user, false, o->link.id, o->data, o->len);
                tether_dtls_send(p->dtls, s, o->data, o->len);
            }
        } else if (o->link.iface < p->niface) {
            out_push(p, o->link.iface, &o->link.addr, o->data, o->len);
        }
    }
    tether_node_out_clear(p->node);
    for (size_t i = first; i < p->ninternal; i++)
        internal_ack(p, &p->internal[i], now);
    tether_node_xsettle(p->node, now);
}

/* The node's messages for other nodes go out on the channel (dropped
 * without one: no other node can be alive then). */
static void xrelay_flush(tether_pipeline_t *p, tether_time_t now)
{
    size_t n = tether_node_xout_count(p->node);
    for (size_t i = 0; p->ch && i < n; i++) {
        const tether_xmsg_t *m = tether_node_xout_get(p->node, i);
        tether_channel_send(p->ch, m->type, m->to, m->data, m->len, wall(p, now));
    }
    tether_node_xout_clear(p->node);
}

/* DTLS datagrams leave from the listener their peer wrote to, or through
 * the node a client talks to (route_out). */
static void dtls_flush(tether_pipeline_t *p, tether_time_t now)
{
    size_t n = tether_dtls_tx_count(p->dtls);
    for (size_t i = 0; i < n; i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(p->dtls, i);
        if (p->ch && tether_channel_route_out(p->ch, g->sess, &g->to, g->iface, g->data, g->len,
                                              wall(p, now)))
            continue; /* that client talks to another node, which sends it */
        if (g->iface >= p->niface)
            continue;
        out_push(p, g->iface, &g->to, g->data, g->len);
    }
    tether_dtls_tx_clear(p->dtls);
}

static void channel_flush(tether_pipeline_t *p)
{
    size_t n = tether_channel_out_count(p->ch);
    for (size_t i = 0; i < n; i++) {
        const tether_channel_dgram_t *g = tether_channel_out_get(p->ch, i);
        if (g->len)
            out_push(p, p->cluster_iface, &g->to, g->data, g->len);
    }
    tether_channel_out_clear(p->ch);
}

/* The node asks whether another node is alive: the channel's heartbeats. */
static bool node_alive(void *user, uint8_t id, tether_time_t now)
{
    tether_pipeline_t *p = user;
    return tether_channel_node_alive(p->ch, id, wall(p, now));
}

/* After every entry point: see the comment at the top. */
static void settle(tether_pipeline_t *p, tether_time_t now)
{
    if (p->dtls)
        dtls_events(p, now);
    do
        node_flush(p, now);
    while (tether_node_out_count(p->node) > 0);
    xrelay_flush(p, now);
    if (p->dtls)
        dtls_flush(p, now);
    if (p->ch && !p->bundling)
        channel_flush(p);
}

/* One datagram for DTLS, from a listener (via 0) or forwarded by node
 * `via`: each decrypted record goes to the node with the session's
 * identity and role. */
static void dtls_feed(tether_pipeline_t *p, uint8_t iface, const tether_addr_t *client, uint8_t via,
                      const uint8_t *buf, size_t len, tether_time_t now)
{
    const tether_addr_t from = *client;
    tether_dtls_rx_t rx;
    tether_dtls_input(p->dtls, iface, &from, buf, len, now, &rx);
    /* An authenticated record that is the session's address now decides
     * which node our datagrams for that address leave from. */
    if (rx.len > 0 && p->ch && tether_addr_equal(tether_dtls_sess_peer(rx.sess), &from))
        tether_channel_authenticated(p->ch, tether_dtls_sess_id(rx.sess), via, wall(p, now));
    while (rx.len > 0) {
        tether_peer_t peer = {
            .link = {.kind = TETHER_LINK_DTLS,
                     .id = tether_dtls_sess_id(rx.sess),
                     .addr = *tether_dtls_sess_peer(rx.sess)},
            .identity = tether_dtls_sess_identity(rx.sess),
            .role = tether_dtls_sess_role(rx.sess),
        };
        if (tether_probe_answer(&p->probes, peer.link.id, &from, rx.data, rx.len, now)) {
            /* From the probed address, which is still the session's. */
            if (tether_addr_equal(&from, &peer.link.addr))
                tether_dtls_sess_validate(rx.sess);
        } else {
            if (p->tap)
                p->tap(p->tap_user, true, peer.link.id, rx.data, rx.len);
            tether_node_input(p->node, &peer, rx.data, rx.len, now);
        }
        if (!tether_dtls_input_more(p->dtls, &rx))
            break;
    }
}

/* A datagram on the internal channel: a client's record another node
 * forwarded (`rx.iface` is the listener index at node `rx.via`: the
 * session keeps it and it comes back with the REPLY), or a REPLY to send
 * from our listener rx.iface. */
static void cluster_input(tether_pipeline_t *p, const tether_addr_t *from, const uint8_t *buf,
                          size_t len, tether_time_t now)
{
    tether_channel_rx_t rx;
    if (tether_channel_input(p->ch, from, buf, len, wall(p, now), &rx) < 0)
        return;
    do {
        if (rx.kind == TETHER_CHANNEL_RX_DELIVER && p->dtls)
            dtls_feed(p, rx.iface, &rx.client, rx.via, rx.payload, rx.len, now);
        else if (rx.kind == TETHER_CHANNEL_RX_XRELAY)
            tether_node_xinput(p->node, rx.via, rx.type, rx.payload, rx.len, now);
        else if (rx.kind == TETHER_CHANNEL_RX_REPLY && rx.iface < p->niface &&
                 p->iface[rx.iface] == TETHER_IFACE_DTLS)
            out_push(p, rx.iface, &rx.client, rx.payload, rx.len);
    } while (tether_channel_input_more(p->ch, &rx)); /* the rest of a bundle */
}

/* A record for a session held elsewhere is forwarded there: the holder
 * the host knows (failover: adopted or handed over), else the node its
 * CID names (tether_channel_route_in). A session held here wins. */
static bool route_away(tether_pipeline_t *p, uint8_t iface, const tether_addr_t *from,
                       const uint8_t *buf, size_t len, tether_time_t now)
{
    const uint8_t *cid;
    if (p->cid_owner && p->dtls) {
        int held = tether_dtls_record_cid(p->dtls, buf, len, &cid);
        if (held == 1)
            return false;
        if (held == 0) {
            uint8_t owner = p->cid_owner(p->failover_user, cid, p->cid_len);
            if (owner == p->self)
                return false;
            if (owner && tether_channel_forward(p->ch, owner, iface, from, buf, len, wall(p, now)))
                return true;
        }
    }
    return tether_channel_route_in(p->ch, iface, from, buf, len, wall(p, now));
}

int tether_pipeline_input(tether_pipeline_t *p, uint8_t iface, const tether_addr_t *from,
                          const uint8_t *buf, size_t len, tether_time_t now)
{
    clock_at(p, now);
    if (iface >= p->niface)
        return TETHER_EINVAL;
    switch (p->iface[iface]) {
    case TETHER_IFACE_DTLS:
        if (p->ch && route_away(p, iface, from, buf, len, now))
            break; /* another node holds its session */
        dtls_feed(p, iface, from, 0, buf, len, now);
        break;
    case TETHER_IFACE_CLUSTER: cluster_input(p, from, buf, len, now); break;
    default: {
        tether_peer_t peer = {.link = {.kind = TETHER_LINK_PLAIN, .iface = iface, .addr = *from}};
        tether_node_input(p->node, &peer, buf, len, now);
        break;
    }
    }
    settle(p, now);
    return 0;
}

void tether_pipeline_internal_input(tether_pipeline_t *p, uint64_t id, const uint8_t *msg,
                                    size_t len, tether_time_t now)
{
    clock_at(p, now);
    tether_peer_t peer = {.link = {.kind = TETHER_LINK_INTERNAL, .id = id}};
    tether_node_input(p->node, &peer, msg, len, now);
    settle(p, now);
}

void tether_pipeline_http_input(tether_pipeline_t *p, uint64_t id, const char *identity,
                                const uint8_t *msg, size_t len, tether_time_t now)
{
    clock_at(p, now);
    tether_peer_t peer = {.link = {.kind = TETHER_LINK_HTTP, .id = id},
                          .identity = identity,
                          .role = TETHER_ROLE_CLIENT};
    tether_node_input(p->node, &peer, msg, len, now);
    settle(p, now);
}

void tether_pipeline_http_close(tether_pipeline_t *p, uint64_t id, tether_time_t now)
{
    clock_at(p, now);
    tether_link_t l = {.kind = TETHER_LINK_HTTP, .id = id};
    tether_node_link_down(p->node, &l, now);
    settle(p, now);
}

bool tether_pipeline_internal_take(tether_pipeline_t *p, tether_out_t *out)
{
    if (p->internal_head == p->ninternal)
        return false;
    *out = p->internal[p->internal_head++];
    if (p->internal_head == p->ninternal)
        p->internal_head = p->ninternal = 0;
    return true;
}

void tether_pipeline_settle(tether_pipeline_t *p, tether_time_t now)
{
    clock_at(p, now);
    settle(p, now);
}

void tether_pipeline_flush(tether_pipeline_t *p, tether_time_t now)
{
    if (!p->ch || !p->bundling)
        return;
    clock_at(p, now);
    tether_channel_flush(p->ch, wall(p, now));
    channel_flush(p);
}

void tether_pipeline_tick(tether_pipeline_t *p, tether_time_t now)
{
    clock_at(p, now);
    if (now >= tether_node_next_deadline(p->node))
        tether_node_tick(p->node, now);
    if (p->dtls && now >= tether_dtls_next_deadline(p->dtls)) {
        tether_dtls_set_wall_clock(p->dtls, wall(p, now));
        tether_dtls_tick(p->dtls, now);
    }
    if (p->ch && wall(p, now) >= tether_channel_next_deadline(p->ch))
        tether_channel_tick(p->ch, wall(p, now));
    if (p->dtls && now >= tether_probe_next_deadline(&p->probes))
        tether_probe_tick(&p->probes, now);
    settle(p, now);
}

tether_time_t tether_pipeline_next_deadline(const tether_pipeline_t *p)
{
    tether_time_t at = tether_node_next_deadline(p->node);
    if (p->dtls) {
        tether_time_t d = tether_dtls_next_deadline(p->dtls);
        at = d < at ? d : at;
        d = tether_probe_next_deadline(&p->probes);
        at = d < at ? d : at;
    }
    if (p->ch) {
        /* On the wall clock: as far from the last `now` the host gave. */
        tether_time_t c = tether_channel_next_deadline(p->ch);
        if (c != UINT64_MAX) {
            tether_time_t w = wall(p, p->wall_at);
            c = c > w ? p->wall_at + (c - w) : p->wall_at;
            at = c < at ? c : at;
        }
    }
    return at;
}

void tether_pipeline_set_wall_clock(tether_pipeline_t *p, tether_time_t wall_ms)
{
    p->wall_ms = wall_ms;
    p->wall_pending = true;
}

size_t tether_pipeline_out_count(const tether_pipeline_t *p)
{
    return p->nout;
}
const tether_dgram_t *tether_pipeline_out_get(const tether_pipeline_t *p, size_t i)
{
    return i < p->nout ? &p->out[i] : NULL;
}
void tether_pipeline_out_clear(tether_pipeline_t *p)
{
    p->nout = 0;
}
uint64_t tether_pipeline_out_dropped(const tether_pipeline_t *p)
{
    return p->out_dropped;
}

void tether_pipeline_set_creds(tether_pipeline_t *p, const tether_creds_t *creds, tether_time_t now)
{
    clock_at(p, now);
    if (p->dtls)
        tether_dtls_set_creds(p->dtls, creds);
    tether_node_set_creds(p->node, creds);
    settle(p, now); /* revoked sessions: their links go down at once */
}

int tether_pipeline_device_remove(tether_pipeline_t *p, const char *name, tether_time_t now)
{
    clock_at(p, now);
    int rc = tether_node_device_remove(p->node, name, now);
    settle(p, now); /* its pending requests were answered 5.02 */
    return rc;
}

tether_node_t *tether_pipeline_node(const tether_pipeline_t *p)
{
    return p->node;
}
tether_dtls_srv_t *tether_pipeline_dtls(const tether_pipeline_t *p)
{
    return p->dtls;
}
tether_channel_t *tether_pipeline_channel(const tether_pipeline_t *p)
{
    return p->ch;
}
const tether_rrc_stats_t *tether_pipeline_rrc_stats(const tether_pipeline_t *p)
{
    return &p->probes.stats;
}

int tether_pipeline_create(const tether_pipeline_conf_t *conf, const tether_creds_t *creds,
                           tether_time_t now, tether_time_t wall_ms, tether_pipeline_t **out)
{
    bool want_dtls = false;
    int ncluster = 0, rc;
    if (conf->niface == 0 || conf->niface > TETHER_PIPELINE_MAX_IFACE)
        return TETHER_EINVAL;
    tether_pipeline_t *p = calloc(1, sizeof *p);
    if (!p)
        return TETHER_ENOMEM;
    for (uint8_t i = 0; i < conf->niface; i++) {
        uint8_t k = conf->iface[i];
        if (k != TETHER_IFACE_PLAIN && k != TETHER_IFACE_DTLS && k != TETHER_IFACE_CLUSTER) {
            rc = TETHER_EINVAL;
            goto fail_conf;
        }
        want_dtls |= k == TETHER_IFACE_DTLS;
        if (k == TETHER_IFACE_CLUSTER) {
            ncluster++;
            p->cluster_iface = i;
        }
    }
    if (ncluster > 1) {
        rc = TETHER_EINVAL;
        goto fail_conf;
    }
    p->niface = conf->niface;
    memcpy(p->iface, conf->iface, conf->niface);
    p->tap = conf->tap;
    p->tap_user = conf->tap_user;
    p->cid_owner = conf->cid_owner;
    p->dtls_event = conf->dtls_event;
    p->failover_user = conf->failover_user;
    p->self = conf->dtls.node_id;
    p->cid_len = conf->dtls.cid_len;
    p->wall_ms = wall_ms;
    p->wall_at = now;
    if ((rc = tether_node_create(&conf->node, creds, &p->node)) < 0)
        goto fail_conf;
    if (want_dtls && (rc = tether_dtls_create(&conf->dtls, creds, now, &p->dtls)) < 0)
        goto fail_dtls;
    if (p->dtls)
        tether_dtls_set_wall_clock(p->dtls, wall_ms);
    p->bundling = conf->channel.bundle_max > 0;
    if (ncluster && (rc = tether_channel_create(&conf->channel, wall_ms, &p->ch)) < 0)
        goto fail_channel;
    if (p->ch)
        tether_node_set_cluster(p->node, node_alive, p);
    tether_probe_conf_t pc = {.send = probe_send, .random = probe_random, .ctx = p};
    if ((rc = tether_probes_init(&p->probes, &pc, conf->node.seed ^ 0x632be59bd9b4e019ull)) < 0)
        goto fail_probes;
    *out = p;
    return 0;

fail_probes:
    tether_channel_destroy(p->ch);
fail_channel:
    tether_dtls_destroy(p->dtls);
fail_dtls:
    tether_node_destroy(p->node);
fail_conf:
    free(p);
    return rc;
}

void tether_pipeline_destroy(tether_pipeline_t *p)
{
    if (!p)
        return;
    tether_probes_free(&p->probes);
    tether_channel_destroy(p->ch);
    tether_dtls_destroy(p->dtls);
    tether_node_destroy(p->node);
    free(p->out);
    free(p->internal);
    free(p);
}
