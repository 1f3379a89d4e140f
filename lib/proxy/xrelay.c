/* Client requests and observations across nodes (see xrelay.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/obsstore.h"
#include "proxy/registry.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "tether/cluster.h"
#include "util/container.h"

#define F_OBSERVE 1
#define SWEEP_MS 1000 /* finished slots, and nodes gone silent, this often */
/* A registered aggregate sends its XREQ again this often: a device node
 * that restarted (and lost the slot) registers it anew; one that kept it
 * takes it as a duplicate. */
#define REFRESH_MS 30000
/* An aggregate whose device node went silent waits this long for the
 * directory to name the node that adopted its sessions (SPEC S5: a
 * lease expiry, the claim and the device's next message take seconds)
 * before its observers get 5.02. */
#define REHOME_GRACE_MS 30000

enum xr_tag { T_DEADLINE = 1, T_RETRY, T_ACK };

typedef struct xr_agg xr_agg_t;

/* A: a request relayed to another node, or an aggregate's registration. */
typedef struct {
    tether_hnode_t by_id;    /* key: id */
    tether_timer_t deadline; /* 5.04 (a registration: the aggregate fails) */
    tether_timer_t retry;    /* the XREQ again */
    tether_timer_t ack;      /* the client's CON not yet acknowledged */
    uint32_t id;
    uint8_t node;
    uint32_t backoff_ms;
    xr_agg_t *agg;         /* non-NULL: the registration of this aggregate */
    group_fan_t *fan;      /* non-NULL: a group fan-out's member request (no client) */
    tether_lnode_t in_fan; /* in the fan-out's xsubs */
    const char *member;    /* its device, in the fan-out's member list */
    tether_link_t client;
    tether_bclient_t *charged; /* the client's share of pending (bounds.h); NULL: none */
    uint16_t cmid;
    uint8_t ctype, ctkl;
    uint8_t ctok[TETHER_COAP_MAX_TOKEN];
    bool acked;
    uint16_t len;
    uint8_t msg[TETHER_XRELAY_HDR + TETHER_MSG_MAX]; /* the XREQ payload */
} xr_req_t;

/* A: one client observing a remote resource through this node. */
typedef struct {
    tether_lnode_t in_agg;
    tether_link_t link;
    tether_bclient_t *charged; /* the client's share of observers (bounds.h) */
    uint8_t tkl;
    uint8_t tok[TETHER_COAP_MAX_TOKEN];
    uint16_t last_mid; /* of the latest notification sent to it (RST matching) */
    bool answered;     /* it got a first answer */
    uint16_t cmid;     /* its registration, until answered */
    uint8_t ctype;
    bool acked;
    tether_role_t role; /* the client's, to register it again on this node */
    char identity[TETHER_IDENTITY_MAX];
} xr_obsr_t;

/* A: this node's one observation of a remote resource. */
struct xr_agg {
    tether_hnode_t by_key; /* key: digest of the cache key */
    tether_lnode_t all;
    xr_req_t *reg;         /* the registration (also in by_id); lives with the aggregate */
    bool registered;       /* B answered with a notification */
    tether_time_t lost_at; /* B went silent (0: it is alive) */
    tether_list_t observers;
    uint32_t nobservers;
    uint32_t seq; /* our Observe values (24 bits) */
    char device[TETHER_IDENTITY_MAX];
    uint16_t last_len; /* latest notification as B sent it, 0: none yet */
    uint8_t last[TETHER_MSG_MAX];
    uint16_t key_len;
    uint8_t key[TETHER_CACHE_KEY_MAX];
};

/* B: one request another node relayed to us. */
typedef struct {
    tether_hnode_t by_src;  /* key: node | request id */
    tether_hnode_t by_link; /* key: link id */
    tether_lnode_t all;
    uint64_t link_id;
    uint8_t node;
    uint32_t reqid;
    bool observe;
    bool done;    /* its final answer went out (kept for duplicates) */
    bool closing; /* to be closed in settle */
    tether_time_t since;
    uint16_t rlen;
    uint8_t resp[TETHER_MSG_MAX];
} xr_slot_t;

typedef struct {
    tether_link_t link;
    uint16_t mid;
} xr_ack_t;

/* B: a silent node's observe registry record, deleted once the node that
 * may adopt its sessions had time to take its observers over (SPEC S5). */
typedef struct {
    tether_lnode_t ln;
    tether_time_t at;
    uint8_t node;
    uint16_t key_len;
    uint8_t key[TETHER_CACHE_KEY_MAX];
} xr_drop_t;

struct tether_xrelay {
    tether_hmap_t by_id, by_key, by_src, by_link;
    tether_list_t aggs, slots;
    tether_heap_t timers;
    uint32_t next_id;
    uint64_t next_link;
    size_t nreq, nslots;
    uint32_t slots_per_node[256];
    tether_time_t next_sweep;
    xr_ack_t *acks;
    size_t nacks, acks_cap;
    uint64_t *closes; /* slots whose final answer went out, closed in settle */
    size_t ncloses, closes_cap;
    tether_xmsg_t *out;
    size_t nout, out_cap;
    tether_list_t drops; /* of xr_drop_t, oldest first */
};

#define XR(n) ((n)->xr)

/* A 2.xx code (RFC 7252 §5.9.1). */
static bool success(uint8_t code)
{
    return code >> 5 == 2;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int tether_xrelay_init(tether_node_t *n)
{
    struct tether_xrelay *x = calloc(1, sizeof *x);
    if (!x)
        return TETHER_ENOMEM;
    uint64_t s = n->conf.seed ^ 0x6a09e667f3bcc909ull;
    if (tether_hmap_init(&x->by_id, 64, s) < 0 || tether_hmap_init(&x->by_key, 64, s + 1) < 0 ||
        tether_hmap_init(&x->by_src, 64, s + 2) < 0 ||
        tether_hmap_init(&x->by_link, 64, s + 3) < 0) {
        tether_hmap_free(&x->by_id);
        tether_hmap_free(&x->by_key);
        tether_hmap_free(&x->by_src);
        tether_hmap_free(&x->by_link);
        free(x);
        return TETHER_ENOMEM;
    }
    x->next_id = (uint32_t)(n->conf.seed >> 7);
    x->next_link = 1;
    x->next_sweep = UINT64_MAX;
    n->xr = x;
    return 0;
}

/* ---- the outbox for the channel ------------------------------------------------ */

static void xout(tether_node_t *n, uint8_t to, uint8_t type, const uint8_t *hdr, size_t hl,
                 const uint8_t *body, size_t bl)
{
    struct tether_xrelay *x = XR(n);
    if (hl + bl > TETHER_XMSG_MAX)
        return;
    if (x->nout == x->out_cap) {
        size_t cap = x->out_cap ? x->out_cap * 2 : 8;
        if (cap > 4096) /* a burst beyond this is dropped, like UDP */
            return;
        tether_xmsg_t *o = realloc(x->out, cap * sizeof *o);
        if (!o)
            return;
        x->out = o;
        x->out_cap = cap;
    }
    tether_xmsg_t *m = &x->out[x->nout++];
    m->to = to;
    m->type = type;
    memcpy(m->data, hdr, hl);
    if (bl)
        memcpy(m->data + hl, body, bl);
    m->len = (uint16_t)(hl + bl);
    n->stats.xrelay_sent++;
}

size_t tether_node_xout_count(const tether_node_t *n)
{
    return XR(n)->nout;
}
const tether_xmsg_t *tether_node_xout_get(const tether_node_t *n, size_t i)
{
    return i < XR(n)->nout ? &XR(n)->out[i] : NULL;
}
void tether_node_xout_clear(tether_node_t *n)
{
    XR(n)->nout = 0;
}

void tether_node_set_cluster(tether_node_t *n, tether_node_alive_fn alive, void *user)
{
    n->alive = alive;
    n->alive_user = user;
}

static bool node_alive(const tether_node_t *n, uint8_t id, tether_time_t now)
{
    return n->alive && n->alive(n->alive_user, id, now);
}

/* ---- A: requests relayed to another node --------------------------------------- */

static void req_free(tether_node_t *n, xr_req_t *r)
{
    struct tether_xrelay *x = XR(n);
    tether_heap_disarm(&x->timers, &r->deadline);
    tether_heap_disarm(&x->timers, &r->retry);
    tether_heap_disarm(&x->timers, &r->ack);
    if (r->fan)
        tether_list_del(tether_group_xsubs(r->fan), &r->in_fan);
    tether_hmap_remove(&x->by_id, &r->by_id);
    tether_bounds_release(&n->bounds, r->charged, TETHER_BOUND_PENDING);
    x->nreq--;
    free(r);
}

/* Frees an observer taken off its aggregate's list. */
static void obsr_free(tether_node_t *n, xr_obsr_t *o)
{
    tether_bounds_release(&n->bounds, o->charged, TETHER_BOUND_OBSERVERS);
    free(o);
}

static void xend(tether_node_t *n, const xr_req_t *r)
{
    uint8_t h[4];
    put32(h, r->id);
    xout(n, r->node, TETHER_CLUSTER_XEND, h, sizeof h, NULL, 0);
}

/* Answers a plain relayed request's client and forgets it. */
static void req_answer(tether_node_t *n, xr_req_t *r, tether_coap_msg_t *resp, tether_time_t now)
{
    tether_reply_to(n, &r->client, r->ctype, r->cmid, r->ctok, r->ctkl, r->acked, resp, now);
    req_free(n, r);
}

static void code_msg(tether_coap_msg_t *m, uint8_t code)
{
    tether_coap_msg_init(m, TETHER_COAP_NON, code, 0);
}

/* The lookup of `name` in the directory: the store's callback runs before
 * the get returns when the replica has the record (xrelay.h). */
typedef struct {
    bool done, found;
    uint8_t node;
    bool queue_mode;
} lookup_t;

static void lookup_cb(void *user, const tether_store_result_t *res)
{
    tether_node_t *n = user;
    lookup_t *l = n->xlookup;
    if (!l) /* a late answer (Redis asked after a replica miss): nobody waits */
        return;
    l->done = true;
    if (res->rc == 0 && res->rec) {
        l->found = true;
        l->node = res->rec->u.device.node_id;
        l->queue_mode = res->rec->u.device.queue_mode;
    }
}

/* The directory's entry for `host` from the replica: true when found. */
static bool directory_find(tether_node_t *n, const char *host, tether_time_t now, lookup_t *l)
{
    memset(l, 0, sizeof *l);
    n->xlookup = l;
    int rc = tether_store_get(n->store, TETHER_STORE_DEVICE, (const uint8_t *)host, strlen(host),
                              now, lookup_cb, n);
    n->xlookup = NULL;
    return rc == 0 && l->done && l->found && l->node;
}

static bool directory_node(tether_node_t *n, const char *host, tether_time_t now, lookup_t *l)
{
    return directory_find(n, host, now, l) && l->node != n->conf.node_id;
}

/* A new request to node `to` with the XREQ for `msg`; NULL at the bound.
 * An observation's registration (flags F_OBSERVE) carries the request's
 * own id as its token (tok[4]), not any client's. */
static xr_req_t *req_new_tok(tether_node_t *n, uint8_t to, uint8_t flags, tether_coap_msg_t *msg,
                             bool queue_mode, uint8_t tok[4], tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    if (x->nreq >= n->conf.xrelay_max)
        return NULL;
    xr_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    do
        r->id = x->next_id++;
    while (tether_hmap_find(&x->by_id,
                            (uint8_t[4]){(uint8_t)(r->id >> 24), (uint8_t)(r->id >> 16),
                                         (uint8_t)(r->id >> 8), (uint8_t)r->id},
                            4));
    put32(r->msg, r->id);
    r->msg[4] = flags;
    if (flags & F_OBSERVE) {
        put32(tok, r->id);
        tether_coap_msg_set_token(msg, tok, 4);
    }
    size_t len;
    msg->type = TETHER_COAP_NON;
    msg->mid = 0;
    if (tether_coap_encode(msg, r->msg + TETHER_XRELAY_HDR, TETHER_MSG_MAX, &len) < 0 ||
        tether_heap_reserve(&x->timers, 3 * (x->nreq + 1)) < 0 ||
        tether_hmap_insert(&x->by_id, &r->by_id, r->msg, 4) < 0) {
        free(r);
        return NULL;
    }
    r->len = (uint16_t)(TETHER_XRELAY_HDR + len);
    r->node = to;
    tether_timer_init(&r->deadline);
    tether_timer_init(&r->retry);
    tether_timer_init(&r->ack);
    r->deadline.tag = T_DEADLINE;
    r->retry.tag = T_RETRY;
    r->ack.tag = T_ACK;
    x->nreq++;
    /* The device node answers 5.04 itself at its request timeout (or queue
     * TTL); ours only covers the hop and a node that went silent. */
    uint32_t wait = queue_mode ? n->conf.queue_ttl_ms : n->conf.request_timeout_ms;
    tether_heap_arm(&x->timers, &r->deadline, now + wait + n->conf.xrelay_margin_ms);
    r->backoff_ms = n->conf.xrelay_retry_ms;
    tether_heap_arm(&x->timers, &r->retry, now + r->backoff_ms);
    xout(n, to, TETHER_CLUSTER_XREQ, r->msg, r->len, NULL, 0);
    return r;
}

static xr_req_t *req_new(tether_node_t *n, uint8_t to, tether_coap_msg_t *msg, bool queue_mode,
                         tether_time_t now)
{
    uint8_t tok[4];
    return req_new_tok(n, to, 0, msg, queue_mode, tok, now);
}

/* The request as the device node gets it: the client's, Observe and the
 * target options kept (Uri-Host names the device there). */
static int fwd_msg(const tether_coap_msg_t *req, const char *host, tether_coap_msg_t *out)
{
    *out = *req;
    tether_coap_msg_del_opt(out, TETHER_COAP_OPT_URI_HOST);
    if (!tether_coap_msg_find_opt(out, TETHER_COAP_OPT_PROXY_URI) &&
        tether_coap_msg_add_opt(out, TETHER_COAP_OPT_URI_HOST, host, strlen(host)) < 0)
        return TETHER_ENOSPC;
    return 0;
}

/* ---- A: aggregate observations ------------------------------------------------- */

static void agg_sync(tether_node_t *n)
{
    n->stats.observe_observers = n->obs.nobservers + n->xobservers; /* as observe.c */
}

/* Writes this node's observers of `a` to the observe registry. */
static void agg_publish(tether_node_t *n, xr_agg_t *a, tether_time_t now)
{
    tether_store_observer_t *v = a->nobservers ? calloc(a->nobservers, sizeof *v) : NULL;
    size_t k = 0;
    if (a->nobservers && !v)
        return;
    for (tether_lnode_t *l = a->observers.head; l; l = l->next) {
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        tether_obsstore_observer(n, &o->link, o->tok, o->tkl, &v[k++]);
    }
    uint8_t utok[4];
    put32(utok, a->reg ? a->reg->id : 0);
    tether_obsstore_write(n, a->key, a->key_len, a->device, utok, sizeof utok, v, k, now);
    free(v);
}

static void agg_free(tether_node_t *n, xr_agg_t *a, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    while (a->observers.head) {
        xr_obsr_t *o = container_of(a->observers.head, xr_obsr_t, in_agg);
        tether_list_del(&a->observers, &o->in_agg);
        n->xobservers--;
        obsr_free(n, o);
    }
    a->nobservers = 0;
    agg_publish(n, a, now); /* no observers: the record goes */
    if (a->reg)
        req_free(n, a->reg);
    tether_hmap_remove(&x->by_key, &a->by_key);
    tether_list_del(&x->aggs, &a->all);
    free(a);
    agg_sync(n);
}

/* An observer leaves; the last one ends the aggregate at B (XEND). */
static void obsr_leave(tether_node_t *n, xr_agg_t *a, xr_obsr_t *o, tether_time_t now)
{
    tether_list_del(&a->observers, &o->in_agg);
    a->nobservers--;
    n->xobservers--;
    obsr_free(n, o);
    if (!a->nobservers) {
        if (a->reg)
            xend(n, a->reg);
        agg_free(n, a, now);
        return;
    }
    agg_publish(n, a, now);
    agg_sync(n);
}

/* Sends the latest notification of `a` to `o`: its first answer (to its
 * registration, RFC 7252 §5.2) or a NON notification with our Observe. */
static void obsr_send(tether_node_t *n, xr_agg_t *a, xr_obsr_t *o, tether_time_t now)
{
    tether_coap_msg_t up, resp;
    tether_coap_perr_t perr;
    if (!a->last_len || tether_coap_parse(&up, a->last, a->last_len, &perr) < 0)
        return;
    tether_reply_device_answer(&up, &resp);
    uint8_t ov[4];
    tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_OBSERVE, ov,
                            tether_coap_uint_encode(a->seq & 0xffffff, ov));
    if (!o->answered) {
        o->answered = true;
        tether_reply_to(n, &o->link, o->ctype, o->cmid, o->tok, o->tkl, o->acked, &resp, now);
        n->stats.observe_notifications_sent++;
        return;
    }
    uint8_t type, buf[TETHER_MSG_MAX];
    size_t len;
    tether_reply_head(n, &o->link, TETHER_COAP_NON, 0, false, &type, &resp.mid, now);
    resp.type = type;
    if (tether_coap_msg_set_token(&resp, o->tok, o->tkl) < 0 ||
        tether_coap_encode(&resp, buf, sizeof buf, &len) < 0)
        return;
    o->last_mid = resp.mid;
    tether_cx_emit(n->cx, &o->link, buf, len);
    n->stats.observe_notifications_sent++;
}

/* Ends `a` for every observer with `resp` (B's error, or ours). */
static void agg_fail(tether_node_t *n, xr_agg_t *a, tether_coap_msg_t *resp, tether_time_t now)
{
    for (tether_lnode_t *l = a->observers.head; l; l = l->next) {
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        tether_coap_msg_t m = *resp;
        tether_reply_to(n, &o->link, o->answered ? TETHER_COAP_NON : o->ctype, o->cmid, o->tok,
                        o->tkl, o->answered || o->acked, &m, now);
    }
    agg_free(n, a, now);
}

static xr_obsr_t *obsr_find(xr_agg_t *a, const tether_link_t *link, const uint8_t *tok, size_t tkl)
{
    for (tether_lnode_t *l = a->observers.head; l; l = l->next) {
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        if (o->tkl == tkl && memcmp(o->tok, tok, tkl) == 0 && tether_link_equal(&o->link, link))
            return o;
    }
    return NULL;
}

/* The observe part of a remote request (xrelay.h): true when taken. */
static bool observe_request(tether_node_t *n, const tether_peer_t *peer,
                            const tether_coap_msg_t *req, const char *host, uint8_t to,
                            bool queue_mode, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    const tether_link_t *link = &peer->link;
    uint32_t ov;
    if ((req->code != TETHER_COAP_GET && req->code != TETHER_COAP_FETCH) ||
        link->kind == TETHER_LINK_INTERNAL ||
        tether_coap_msg_get_uint(req, TETHER_COAP_OPT_OBSERVE, &ov) < 0)
        return false;
    tether_coap_msg_t plain = *req;
    tether_coap_msg_del_opt(&plain, TETHER_COAP_OPT_OBSERVE);
    tether_coap_msg_del_opt(&plain, TETHER_COAP_OPT_URI_HOST);
    tether_cache_key_t k;
    if (!tether_cache_request_cacheable(&plain) || tether_cache_key(&k, host, &plain) < 0)
        return false;
    uint64_t dg = tether_cache_key_digest(&k, 0);
    xr_agg_t *a = NULL;
    tether_hnode_t *h = tether_hmap_find(&x->by_key, &dg, sizeof dg);
    if (h && (a = container_of(h, xr_agg_t, by_key)) &&
        (a->key_len != k.len || memcmp(a->key, k.buf, k.len) != 0))
        a = NULL;  /* a digest collision: relayed without sharing */
    if (ov != 0) { /* deregistration (RFC 7641 §3.6): then a plain request */
        xr_obsr_t *o = a ? obsr_find(a, link, req->token, req->tkl) : NULL;
        if (o)
            obsr_leave(n, a, o, now);
        return false;
    }
    if (h && !a)
        return false;
    if (a && obsr_find(a, link, req->token, req->tkl)) { /* a re-registration */
        xr_obsr_t *o = obsr_find(a, link, req->token, req->tkl);
        o->answered = false;
        o->cmid = req->mid;
        o->ctype = req->type;
        o->acked = false;
        if (a->last_len)
            obsr_send(n, a, o, now);
        else if (req->type == TETHER_COAP_CON)
            tether_reply_empty(n, link, TETHER_COAP_ACK, req->mid);
        return true;
    }
    if (n->obs.nobservers + n->xobservers >= n->conf.max_observers ||
        (a && a->nobservers >= n->conf.max_observers_per_resource)) {
        n->stats.observe_rejected++;
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "too many observers", now);
        return true;
    }
    /* The client's share of the observers (bounds.h), as on its own node:
     * remote resources are no way around max_observers_per_client. */
    tether_bclient_t *charged;
    int rc = tether_observe_charge(n, peer, req, &charged, now);
    if (rc == TETHER_ELIMIT)
        return true;
    xr_obsr_t *o = rc == 0 ? calloc(1, sizeof *o) : NULL;
    if (!o) {
        tether_bounds_release(&n->bounds, rc == 0 ? charged : NULL, TETHER_BOUND_OBSERVERS);
        tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return true;
    }
    o->charged = charged;
    if (!a) {
        tether_coap_msg_t fwd;
        if (!(a = calloc(1, sizeof *a)) || fwd_msg(req, host, &fwd) < 0) {
            free(a);
            obsr_free(n, o);
            tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
            return true;
        }
        uint8_t own[4];
        a->reg = req_new_tok(n, to, F_OBSERVE, &fwd, queue_mode, own, now);
        if (!a->reg) {
            free(a);
            obsr_free(n, o);
            tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
            return true;
        }
        a->reg->agg = a;
        snprintf(a->device, sizeof a->device, "%s", host);
        a->key_len = k.len;
        memcpy(a->key, k.buf, k.len);
        tether_hmap_insert(&x->by_key, &a->by_key, &dg, sizeof dg);
        tether_list_push(&x->aggs, &a->all);
        if (x->next_sweep == UINT64_MAX)
            x->next_sweep = now + SWEEP_MS;
    }
    o->link = *link;
    o->role = peer->role;
    snprintf(o->identity, sizeof o->identity, "%s", peer->identity ? peer->identity : "");
    o->tkl = req->tkl;
    memcpy(o->tok, req->token, req->tkl);
    o->cmid = req->mid;
    o->ctype = req->type;
    tether_list_push(&a->observers, &o->in_agg);
    a->nobservers++;
    n->xobservers++;
    agg_sync(n);
    agg_publish(n, a, now);
    if (a->last_len)
        obsr_send(n, a, o, now);
    else if (req->type == TETHER_COAP_CON) { /* our exchange with the client (RFC 7252 §5.2.2) */
        tether_reply_empty(n, link, TETHER_COAP_ACK, req->mid);
        o->acked = true;
    }
    return true;
}

bool tether_xrelay_request(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *req, const char *host, tether_time_t now)
{
    lookup_t l;
    /* A request that came from another node is not relayed again: the
     * directory and that node disagree, and a loop must not start. */
    if (peer->link.kind == TETHER_LINK_CLUSTER || !directory_node(n, host, now, &l))
        return false;
    const tether_link_t *link = &peer->link;
    n->stats.requests_relayed++;
    if (!node_alive(n, l.node, now)) {
        n->stats.relay_gone++;
        n->stats.xrelay_node_down++;
        tether_reply_code(n, link, req, TETHER_COAP_BAD_GATEWAY, "device's node unreachable", now);
        return true;
    }
    if (observe_request(n, peer, req, host, l.node, l.queue_mode, now))
        return true;
    /* The client's share of pending requests (bounds.h), as for a device
     * of this node: the xrelay_max table is everyone's. */
    tether_bclient_t *charged;
    int rc = tether_bounds_charge(&n->bounds, peer, TETHER_BOUND_PENDING,
                                  n->conf.max_pending_per_client, &charged);
    if (rc == TETHER_ELIMIT) {
        n->stats.bound_pending++;
        uint32_t wait = l.queue_mode ? n->conf.queue_ttl_ms : n->conf.request_timeout_ms;
        tether_reply_retry(n, link, req, TETHER_COAP_TOO_MANY_REQUESTS,
                           (wait + n->conf.xrelay_margin_ms + 999) / 1000, now);
        return true;
    }
    tether_coap_msg_t fwd;
    tether_coap_msg_t plain = *req;
    tether_coap_msg_del_opt(&plain, TETHER_COAP_OPT_OBSERVE);
    xr_req_t *r = NULL;
    if (rc < 0 || fwd_msg(&plain, host, &fwd) < 0 ||
        !(r = req_new(n, l.node, &fwd, l.queue_mode, now))) {
        tether_bounds_release(&n->bounds, rc == 0 ? charged : NULL, TETHER_BOUND_PENDING);
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
        return true;
    }
    r->charged = charged;
    r->client = *link;
    r->cmid = req->mid;
    r->ctype = req->type;
    r->ctkl = req->tkl;
    memcpy(r->ctok, req->token, req->tkl);
    if (req->type == TETHER_COAP_CON)
        tether_heap_arm(&XR(n)->timers, &r->ack, now + n->conf.ack_delay_ms);
    return true;
}

bool tether_xrelay_elsewhere(tether_node_t *n, const char *host, tether_time_t now)
{
    lookup_t l;
    return directory_node(n, host, now, &l);
}

int tether_xrelay_group(tether_node_t *n, const tether_coap_msg_t *up, const char *host,
                        group_fan_t *f, tether_time_t now)
{
    lookup_t l;
    tether_coap_msg_t fwd;
    if (!directory_node(n, host, now, &l) || !node_alive(n, l.node, now))
        return TETHER_ENOTFOUND;
    if (fwd_msg(up, host, &fwd) < 0)
        return TETHER_ENOSPC;
    /* the client's pending share, as for a member here (relay.c) */
    tether_bclient_t *c = tether_group_client(f);
    if (tether_bounds_charge_more(c, TETHER_BOUND_PENDING, n->conf.max_pending_per_client) < 0)
        return TETHER_ELIMIT;
    xr_req_t *r = req_new(n, l.node, &fwd, l.queue_mode, now);
    if (!r) {
        tether_bounds_release(&n->bounds, c, TETHER_BOUND_PENDING);
        return TETHER_ELIMIT;
    }
    r->charged = c;
    n->stats.requests_relayed++;
    r->fan = f;
    r->member = host;
    r->ctype = TETHER_COAP_NON; /* no client to acknowledge */
    tether_list_push(tether_group_xsubs(f), &r->in_fan);
    return 0;
}

size_t tether_xrelay_group_cancel(tether_node_t *n, tether_list_t *xsubs)
{
    size_t k = 0;
    for (; xsubs->head; k++) {
        xr_req_t *r = container_of(xsubs->head, xr_req_t, in_fan);
        xend(n, r); /* B's slot goes now, not at its timeout */
        req_free(n, r);
    }
    return k;
}

/* B's answer or notification for our request `r`. */
static void on_xrsp(tether_node_t *n, xr_req_t *r, const uint8_t *msg, size_t len,
                    tether_time_t now)
{
    tether_coap_msg_t up, resp;
    tether_coap_perr_t perr;
    if (len > TETHER_MSG_MAX || tether_coap_parse(&up, msg, len, &perr) < 0 ||
        !tether_coap_is_response(up.code))
        return; /* an empty ACK or garbage: the retransmission goes on */
    xr_agg_t *a = r->agg;
    if (!a || !a->registered)
        tether_heap_disarm(&XR(n)->timers, &r->retry);
    if (r->fan) { /* one of a group's responses (group.h) */
        n->stats.relay_ok++;
        tether_reply_device_answer(&up, &resp);
        tether_group_answer(n, r->fan, r->member, true, &resp, now);
        req_free(n, r);
        return;
    }
    if (!a) {
        n->stats.relay_ok++;
        tether_reply_device_answer(&up, &resp);
        req_answer(n, r, &resp, now);
        return;
    }
    uint32_t ov;
    if (!success(up.code) || tether_coap_msg_get_uint(&up, TETHER_COAP_OPT_OBSERVE, &ov) < 0) {
        /* Not a notification: the observation ended at B (RFC 7641 §3.2). */
        tether_reply_device_answer(&up, &resp);
        a->reg = NULL; /* B's slot is done; nothing to end there */
        req_free(n, r);
        agg_fail(n, a, &resp, now);
        return;
    }
    tether_heap_disarm(&XR(n)->timers, &r->deadline); /* lives until the last observer goes */
    if (!a->registered)
        tether_heap_arm(&XR(n)->timers, &r->retry, now + REFRESH_MS);
    a->registered = true;
    a->seq++;
    memcpy(a->last, msg, len);
    a->last_len = (uint16_t)len;
    for (tether_lnode_t *l = a->observers.head; l; l = l->next)
        obsr_send(n, a, container_of(l, xr_obsr_t, in_agg), now);
}

void tether_xrelay_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    /* Plain requests of that client still get their answers dropped by
     * the DTLS layer; its observers leave now. Linear in the remote
     * aggregates (few: one per remote resource observed here). */
    for (tether_lnode_t *l = x->aggs.head, *ln; l; l = ln) {
        ln = l->next;
        xr_agg_t *a = container_of(l, xr_agg_t, all);
        for (tether_lnode_t *m = a->observers.head, *mn; m; m = mn) {
            mn = m->next;
            xr_obsr_t *o = container_of(m, xr_obsr_t, in_agg);
            if (tether_link_equal(&o->link, link)) {
                bool last = a->nobservers == 1;
                obsr_leave(n, a, o, now);
                if (last)
                    break;
            }
        }
    }
}

void tether_xrelay_reset(tether_node_t *n, const tether_link_t *link, uint16_t mid,
                         tether_time_t now)
{
    for (tether_lnode_t *l = XR(n)->aggs.head; l; l = l->next) {
        xr_agg_t *a = container_of(l, xr_agg_t, all);
        for (tether_lnode_t *m = a->observers.head; m; m = m->next) {
            xr_obsr_t *o = container_of(m, xr_obsr_t, in_agg);
            if (o->answered && o->last_mid == mid && tether_link_equal(&o->link, link)) {
                obsr_leave(n, a, o, now);
                return;
            }
        }
    }
}

/* ---- B: requests other nodes relayed to us ------------------------------------- */

static void slot_key(uint8_t node, uint32_t id, uint8_t k[5])
{
    k[0] = node;
    put32(k + 1, id);
}

static tether_link_t slot_link(const xr_slot_t *s)
{
    tether_link_t l = {.kind = TETHER_LINK_CLUSTER, .id = s->link_id};
    return l;
}

static void slot_free(tether_node_t *n, xr_slot_t *s)
{
    struct tether_xrelay *x = XR(n);
    tether_hmap_remove(&x->by_src, &s->by_src);
    tether_hmap_remove(&x->by_link, &s->by_link);
    tether_list_del(&x->slots, &s->all);
    x->slots_per_node[s->node]--;
    x->nslots--;
    free(s);
}

/* Ends what the node holds for `s` (its observer, its message state). */
static void slot_close(tether_node_t *n, xr_slot_t *s, tether_time_t now)
{
    tether_link_t l = slot_link(s);
    s->closing = false;
    tether_node_link_down(n, &l, now);
}

static void xrsp(tether_node_t *n, const xr_slot_t *s, const uint8_t *msg, size_t len)
{
    uint8_t h[4];
    put32(h, s->reqid);
    xout(n, s->node, TETHER_CLUSTER_XRSP, h, sizeof h, msg, len);
}

static void on_xreq(tether_node_t *n, uint8_t from, const uint8_t *p, size_t len, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    if (len <= TETHER_XRELAY_HDR || len > TETHER_XRELAY_HDR + TETHER_MSG_MAX)
        return;
    uint8_t k[5];
    slot_key(from, get32(p), k);
    tether_hnode_t *h = tether_hmap_find(&x->by_src, k, sizeof k);
    if (h) { /* A retransmitted: the answer again if there is one */
        xr_slot_t *s = container_of(h, xr_slot_t, by_src);
        n->stats.xrelay_duplicates++;
        if (s->done && s->rlen)
            xrsp(n, s, s->resp, s->rlen);
        return;
    }
    if (x->nslots >= n->conf.xslots_max) {
        tether_coap_msg_t req, resp;
        tether_coap_perr_t perr;
        uint8_t buf[64];
        size_t bl;
        if (tether_coap_parse(&req, p + TETHER_XRELAY_HDR, len - TETHER_XRELAY_HDR, &perr) < 0)
            return;
        tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 0);
        tether_coap_msg_set_token(&resp, req.token, req.tkl);
        if (tether_coap_encode(&resp, buf, sizeof buf, &bl) == 0) {
            xr_slot_t tmp = {.node = from, .reqid = get32(p)};
            xrsp(n, &tmp, buf, bl);
        }
        return;
    }
    xr_slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->node = from;
    s->reqid = get32(p);
    s->observe = p[4] & F_OBSERVE;
    s->link_id = x->next_link++;
    s->since = now;
    tether_hmap_insert(&x->by_src, &s->by_src, k, sizeof k);
    tether_hmap_insert(&x->by_link, &s->by_link, &s->link_id, sizeof s->link_id);
    tether_list_push(&x->slots, &s->all);
    x->slots_per_node[from]++;
    x->nslots++;
    n->stats.xrelay_served++;
    if (x->next_sweep == UINT64_MAX)
        x->next_sweep = now + SWEEP_MS;
    tether_peer_t peer = {.link = slot_link(s)};
    tether_node_input(n, &peer, p + TETHER_XRELAY_HDR, len - TETHER_XRELAY_HDR, now);
}

void tether_node_xlink_out(tether_node_t *n, const tether_out_t *o)
{
    struct tether_xrelay *x = XR(n);
    tether_hnode_t *h = tether_hmap_find(&x->by_link, &o->link.id, sizeof o->link.id);
    if (!h || o->len < 4)
        return;
    xr_slot_t *s = container_of(h, xr_slot_t, by_link);
    uint8_t type = o->data[0] >> 4 & 3;
    if (type == TETHER_COAP_CON && x->nacks < 4096) { /* acknowledged in settle, as A would */
        if (x->nacks == x->acks_cap) {
            size_t cap = x->acks_cap ? x->acks_cap * 2 : 16;
            xr_ack_t *a = realloc(x->acks, cap * sizeof *a);
            if (a) {
                x->acks = a;
                x->acks_cap = cap;
            }
        }
        if (x->nacks < x->acks_cap)
            x->acks[x->nacks++] =
                (xr_ack_t){.link = o->link, .mid = (uint16_t)(o->data[2] << 8 | o->data[3])};
    }
    if (o->data[1] == 0 || s->done) /* an empty ACK or RST: A has its own exchange */
        return;
    xrsp(n, s, o->data, o->len);
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    uint32_t ov;
    bool notification = s->observe && tether_coap_parse(&m, o->data, o->len, &perr) == 0 &&
                        success(m.code) &&
                        tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &ov) == 0;
    if (!notification) { /* the final answer: kept for a retransmitted XREQ */
        s->done = true;
        if (x->ncloses == x->closes_cap) {
            size_t cap = x->closes_cap ? x->closes_cap * 2 : 16;
            uint64_t *c = realloc(x->closes, cap * sizeof *c);
            if (c) {
                x->closes = c;
                x->closes_cap = cap;
            }
        }
        if (x->ncloses < x->closes_cap) { /* else closed by the sweep when it expires */
            x->closes[x->ncloses++] = s->link_id;
            s->closing = true;
        }
        memcpy(s->resp, o->data, o->len);
        s->rlen = o->len;
    }
}

void tether_node_xsettle(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    while (x->nacks) {
        xr_ack_t a = x->acks[--x->nacks];
        uint8_t ack[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_ACK << 4), 0,
                          (uint8_t)(a.mid >> 8), (uint8_t)a.mid};
        tether_peer_t peer = {.link = a.link};
        tether_node_input(n, &peer, ack, sizeof ack, now);
    }
    while (x->ncloses) {
        uint64_t id = x->closes[--x->ncloses];
        tether_hnode_t *h = tether_hmap_find(&x->by_link, &id, sizeof id);
        xr_slot_t *s = h ? container_of(h, xr_slot_t, by_link) : NULL;
        if (s && s->closing)
            slot_close(n, s, now);
    }
}

/* B: node `id` went silent: its slots close, its registry records go. */
static void node_gone(tether_node_t *n, uint8_t id, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    for (tether_lnode_t *l = x->slots.head, *ln; l; l = ln) {
        ln = l->next;
        xr_slot_t *s = container_of(l, xr_slot_t, all);
        if (s->node != id)
            continue;
        tether_link_t link = slot_link(s);
        tether_observer_t *ob = tether_obs_link_first(&n->obs, &link);
        xr_drop_t *d = ob ? calloc(1, sizeof *d) : NULL;
        if (d) { /* its record lists that node's clients: an adopter takes them */
            d->at = now + REHOME_GRACE_MS;
            d->node = id;
            d->key_len = (uint16_t)ob->obs->key_len;
            memcpy(d->key, ob->obs->key, ob->obs->key_len);
            tether_list_push(&x->drops, &d->ln);
        } else if (ob) {
            tether_obsstore_drop(n, ob->obs->key, ob->obs->key_len, id, now);
        }
        slot_close(n, s, now);
        slot_free(n, s);
    }
}

void tether_node_xinput(tether_node_t *n, uint8_t from, uint8_t type, const uint8_t *p, size_t len,
                        tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    n->stats.xrelay_received++;
    if (len < 4 || !from || from == n->conf.node_id)
        return;
    if (type == TETHER_CLUSTER_XREQ) {
        on_xreq(n, from, p, len, now);
    } else if (type == TETHER_CLUSTER_XRSP) {
        tether_hnode_t *h = tether_hmap_find(&x->by_id, p, 4);
        xr_req_t *r = h ? container_of(h, xr_req_t, by_id) : NULL;
        if (!r || r->node != from) { /* nobody waits (any more): end it at B */
            xend(n, &(xr_req_t){.id = get32(p), .node = from});
            return;
        }
        on_xrsp(n, r, p + 4, len - 4, now);
    } else if (type == TETHER_CLUSTER_XEND) {
        uint8_t k[5];
        slot_key(from, get32(p), k);
        tether_hnode_t *h = tether_hmap_find(&x->by_src, k, sizeof k);
        if (h) {
            xr_slot_t *s = container_of(h, xr_slot_t, by_src);
            slot_close(n, s, now);
            slot_free(n, s);
        }
    }
}

/* ---- timers -------------------------------------------------------------------- */

/* A: `a`'s registration goes to node `to` instead (the one that adopted
 * its device's session): a new XREQ with the same request, the observers
 * kept. False when the bound leaves no request for it. */
static bool agg_move(tether_node_t *n, xr_agg_t *a, uint8_t to, bool queue_mode, tether_time_t now)
{
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    xr_req_t *old = a->reg;
    if (tether_coap_parse(&m, old->msg + TETHER_XRELAY_HDR, old->len - TETHER_XRELAY_HDR, &perr) <
        0)
        return false;
    uint8_t own[4];
    xr_req_t *r = req_new_tok(n, to, F_OBSERVE, &m, queue_mode, own, now);
    if (!r)
        return false;
    r->agg = a;
    req_free(n, old); /* no XEND: its node is gone */
    a->reg = r;
    a->registered = false;
    a->lost_at = 0;
    n->stats.xrelay_rehomed++;
    agg_publish(n, a, now); /* the registry names the new registration */
    return true;
}

/* A: the directory names this node for `a`'s device (we adopted its
 * session) and its tunnel is up here: each observer registers again on
 * the local observation, as if it had sent its request to us (a NON, so
 * only a notification answers it), and the aggregate goes. */
static void agg_localize(tether_node_t *n, xr_agg_t *a, tether_time_t now)
{
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    uint8_t req[TETHER_MSG_MAX];
    size_t rl = a->reg->len - TETHER_XRELAY_HDR;
    memcpy(req, a->reg->msg + TETHER_XRELAY_HDR, rl);
    size_t k = 0, cnt = a->nobservers;
    xr_obsr_t *v = cnt ? calloc(cnt, sizeof *v) : NULL;
    for (tether_lnode_t *l = a->observers.head; v && l; l = l->next)
        v[k++] = *container_of(l, xr_obsr_t, in_agg);
    agg_free(n, a, now);
    n->stats.xrelay_rehomed++;
    for (size_t i = 0; i < k; i++) {
        if (tether_coap_parse(&m, req, rl, &perr) < 0 ||
            tether_coap_msg_set_token(&m, v[i].tok, v[i].tkl) < 0)
            break;
        m.type = TETHER_COAP_NON;
        tether_peer_t peer = {.link = v[i].link,
                              .identity = v[i].identity[0] ? v[i].identity : NULL,
                              .role = v[i].role};
        tether_relay_request(n, &peer, &m, now);
    }
    free(v);
}

/* A: `a`'s device node is not alive. Its sessions continue on the node
 * that adopts them (SPEC S5), which the directory names once the
 * adoption is done: the observation follows it there, observers noticing
 * a pause only. 5.02 (they may register again, RFC 7641 §3.3.1) when no
 * live node is named within REHOME_GRACE_MS. */
static void agg_rehome(tether_node_t *n, xr_agg_t *a, tether_time_t now)
{
    if (!a->lost_at)
        a->lost_at = now;
    lookup_t l;
    if (directory_find(n, a->device, now, &l)) {
        if (l.node == n->conf.node_id) {
            const tether_device_t *d = tether_registry_find_host(&n->reg, a->device);
            if (d && d->link_up) {
                agg_localize(n, a, now);
                return;
            }
        } else if (l.node != a->reg->node && node_alive(n, l.node, now) &&
                   agg_move(n, a, l.node, l.queue_mode, now)) {
            return;
        }
    }
    if (now - a->lost_at < REHOME_GRACE_MS)
        return;
    tether_coap_msg_t resp;
    code_msg(&resp, TETHER_COAP_BAD_GATEWAY);
    n->stats.relay_gone++;
    agg_fail(n, a, &resp, now);
}

static void sweep(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    for (int id = 1; id < 256; id++)
        if (x->slots_per_node[id] && !node_alive(n, (uint8_t)id, now))
            node_gone(n, (uint8_t)id, now);
    /* Records of silent nodes whose grace ran out (none came back). */
    while (x->drops.head) {
        xr_drop_t *d = container_of(x->drops.head, xr_drop_t, ln);
        if (d->at > now)
            break;
        if (!node_alive(n, d->node, now))
            tether_obsstore_drop(n, d->key, d->key_len, d->node, now);
        tether_list_del(&x->drops, &d->ln);
        free(d);
    }
    /* Finished slots are kept while A may still retransmit its XREQ. */
    tether_time_t keep = n->conf.request_timeout_ms + n->conf.xrelay_margin_ms;
    for (tether_lnode_t *l = x->slots.head, *ln; l; l = ln) {
        ln = l->next;
        xr_slot_t *s = container_of(l, xr_slot_t, all);
        if (s->done && s->since + keep < now) {
            if (s->closing)
                slot_close(n, s, now);
            slot_free(n, s);
        } else if (!s->observe && !s->done && s->since + n->conf.queue_ttl_ms + keep < now) {
            slot_close(n, s, now); /* never answered: the node lost it */
            slot_free(n, s);
        }
    }
    /* A: an aggregate whose device node went silent follows its device
     * to the adopter (agg_rehome). */
    for (tether_lnode_t *l = x->aggs.head, *ln; l; l = ln) {
        ln = l->next;
        xr_agg_t *a = container_of(l, xr_agg_t, all);
        if (a->reg && !node_alive(n, a->reg->node, now))
            agg_rehome(n, a, now);
        else if (a->reg)
            a->lost_at = 0;
    }
    x->next_sweep = x->nslots || x->aggs.head || x->drops.head ? now + SWEEP_MS : UINT64_MAX;
}

void tether_xrelay_tick(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&x->timers, now))) {
        if (t->tag == T_DEADLINE) {
            xr_req_t *r = container_of(t, xr_req_t, deadline);
            tether_coap_msg_t resp;
            code_msg(&resp, TETHER_COAP_GATEWAY_TIMEOUT);
            n->stats.relay_timeouts++;
            xend(n, r);
            if (r->fan) { /* tether's verdict: not a member's response */
                req_free(n, r);
            } else if (r->agg) {
                xr_agg_t *a = r->agg;
                a->reg = NULL;
                req_free(n, r);
                agg_fail(n, a, &resp, now);
            } else {
                req_answer(n, r, &resp, now);
            }
        } else if (t->tag == T_RETRY) {
            xr_req_t *r = container_of(t, xr_req_t, retry);
            xout(n, r->node, TETHER_CLUSTER_XREQ, r->msg, r->len, NULL, 0);
            if (r->agg && r->agg->registered) { /* a refresh, not a retransmission */
                tether_heap_arm(&x->timers, &r->retry, now + REFRESH_MS);
                continue;
            }
            n->stats.xrelay_retransmissions++;
            r->backoff_ms *= 2;
            tether_heap_arm(&x->timers, &r->retry, now + r->backoff_ms);
        } else {
            xr_req_t *r = container_of(t, xr_req_t, ack);
            r->acked = true;
            tether_reply_empty(n, &r->client, TETHER_COAP_ACK, r->cmid);
        }
    }
    if (now >= x->next_sweep)
        sweep(n, now);
}

tether_time_t tether_xrelay_next_deadline(const tether_node_t *n)
{
    const struct tether_xrelay *x = XR(n);
    const tether_timer_t *t = tether_heap_top(&x->timers);
    tether_time_t d = x->next_sweep;
    return t && t->at < d ? t->at : d;
}

void tether_xrelay_free(tether_node_t *n)
{
    struct tether_xrelay *x = XR(n);
    if (!x)
        return;
    while (x->aggs.head) {
        xr_agg_t *a = container_of(x->aggs.head, xr_agg_t, all);
        while (a->observers.head) {
            xr_obsr_t *o = container_of(a->observers.head, xr_obsr_t, in_agg);
            tether_list_del(&a->observers, &o->in_agg);
            obsr_free(n, o);
        }
        if (a->reg)
            req_free(n, a->reg);
        tether_hmap_remove(&x->by_key, &a->by_key);
        tether_list_del(&x->aggs, &a->all);
        free(a);
    }
    /* Plain requests: the by_id map is their only owner. */
    while (tether_heap_top(&x->timers)) {
        tether_timer_t *t = tether_heap_top(&x->timers);
        xr_req_t *r = t->tag == T_DEADLINE ? container_of(t, xr_req_t, deadline)
                      : t->tag == T_RETRY  ? container_of(t, xr_req_t, retry)
                                           : container_of(t, xr_req_t, ack);
        req_free(n, r);
    }
    while (x->slots.head)
        slot_free(n, container_of(x->slots.head, xr_slot_t, all));
    while (x->drops.head) {
        xr_drop_t *d = container_of(x->drops.head, xr_drop_t, ln);
        tether_list_del(&x->drops, &d->ln);
        free(d);
    }
    tether_hmap_free(&x->by_id);
    tether_hmap_free(&x->by_key);
    tether_hmap_free(&x->by_src);
    tether_hmap_free(&x->by_link);
    tether_heap_free(&x->timers);
    free(x->acks);
    free(x->closes);
    free(x->out);
    free(x);
    n->xr = NULL;
}
