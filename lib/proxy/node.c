/* Node-level dispatch (the CoAP -> proxy layers of the pipeline):
 * message layer (dedup, ACK/RST), then local resources, the resource
 * directory, or the relay to a device tunnel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap/exchange.h"
#include "proxy/cache.h"
#include "proxy/observe.h"
#include "proxy/registry.h"
#include "tether/coap_ep.h"
#include "tether/linkformat.h"
#include "tether/local.h"
#include "tether/log.h"
#include "tether/node.h"
#include "util/heap.h"
#include "util/hmap.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define UTOK_LEN 4
#define RD_LT_DEFAULT 90000u /* RFC 9176 default lifetime, seconds */
#define MAX_LINKS 64

enum req_state { R_QUEUED, R_SENT, R_WAITING };
enum timer_tag { T_DEADLINE = 1, T_ACK };
/* What the cache does with a relayed request's answer. */
enum cache_flag {
    C_STORE = 1,       /* cacheable: store the response */
    C_CLIENT_VTAG = 2, /* the client sent the ETag being revalidated itself */
};

/* A client request relayed to a device: where the answer goes (the
 * downstream side) and the encoded upstream request. */
struct relay_req {
    tether_hnode_t by_token; /* key: upstream token */
    tether_timer_t deadline; /* request timeout, or queue TTL while queued */
    tether_timer_t ack_timer; /* client CON not yet acknowledged */
    relay_req_t *prev, *next; /* the device's list */
    tether_device_t *dev;
    uint8_t state;
    uint8_t utok[UTOK_LEN];
    uint16_t umid;
    tether_link_t dev_link; /* link the upstream CON went out on */
    tether_link_t client;
    uint16_t cmid;
    uint8_t ctype;
    uint8_t ctkl;
    uint8_t ctok[TETHER_COAP_MAX_TOKEN];
    bool acked;
    uint8_t cflags;   /* enum cache_flag */
    uint8_t vtag_len; /* ETag of the stale entry being revalidated, 0: none */
    uint8_t vtag[8];
    tether_time_t queued_until;
    uint16_t len;
    uint8_t msg[]; /* upstream request, MID patched in when sent */
};

struct tether_node {
    tether_node_conf_t conf;
    tether_coap_optreg_t optreg;
    tether_coap_ep_t ep;
    tether_local_t local;
    const tether_creds_t *creds;
    tether_cx_t *cx;
    tether_registry_t reg;
    tether_cache_t *cache; /* NULL: caching disabled */
    tether_obs_table_t obs;
    tether_hmap_t by_token;
    tether_heap_t timers;
    uint32_t next_token;
    size_t npending;
    tether_node_stats_t stats;
};

void tether_node_conf_defaults(tether_node_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->version = "0";
    c->opt_multicast_timeout = TETHER_COAP_OPT_MULTICAST_TIMEOUT_DEFAULT;
    c->opt_reply_from = TETHER_COAP_OPT_REPLY_FROM_DEFAULT;
    c->seed = 0x853c49e6748fea9bull;
    c->request_timeout_ms = 10000;
    c->ack_delay_ms = 1000;
    c->queue_max = 16;
    c->queue_ttl_ms = 60000;
    c->queue_awake_ms = 1000;
    c->max_devices = 1000000;
    c->max_pending = 100000;
    c->plain_trusted = true;
    c->cache_bytes = 64u << 20;
    c->max_observers = 100000;
    c->max_observers_per_resource = 10000;
}

static void on_cx(void *owner, uint64_t cookie, tether_cx_event_t ev, tether_time_t now);
static void obs_on_cx(tether_node_t *n, uint64_t cookie, tether_cx_event_t ev, tether_time_t now);

int tether_node_create(const tether_node_conf_t *conf, const tether_creds_t *creds,
                       tether_node_t **out)
{
    int rc = TETHER_ENOMEM;
    tether_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return rc;
    n->conf = *conf;
    n->creds = creds;
    if ((rc = tether_coap_optreg_init(&n->optreg, conf->opt_multicast_timeout,
                                      conf->opt_reply_from)) < 0)
        goto fail_reg;
    tether_coap_ep_init(&n->ep, &n->optreg, (uint16_t)conf->seed);
    n->local.node_id = conf->node_id;
    n->local.version = conf->version;
    n->next_token = (uint32_t)(conf->seed >> 17);
    tether_cx_conf_t cc;
    tether_cx_conf_defaults(&cc);
    cc.seed = conf->seed ^ 0xda3e39cb94b95bdbull;
    if ((rc = tether_cx_create(&cc, on_cx, n, &n->cx)) < 0)
        goto fail_reg;
    if ((rc = tether_registry_init(&n->reg, conf->node_id, conf->max_devices, conf->seed)) < 0)
        goto fail_registry;
    if ((rc = tether_hmap_init(&n->by_token, 1024, conf->seed ^ 0x27d4eb2f165667c5ull)) < 0)
        goto fail_tokens;
    if (conf->cache_bytes) {
        tether_cache_conf_t kc = {.max_bytes = conf->cache_bytes,
                                  .seed = conf->seed ^ 0x94d049bb133111ebull};
        if ((rc = tether_cache_create(&kc, &n->cache)) < 0)
            goto fail_cache;
    }
    if ((rc = tether_obs_init(&n->obs, conf->seed ^ 0xbf58476d1ce4e5b9ull)) < 0)
        goto fail_obs;
    *out = n;
    return 0;
fail_obs:
    tether_cache_destroy(n->cache);
fail_cache:
    tether_hmap_free(&n->by_token);
fail_tokens:
    tether_registry_free(&n->reg);
fail_registry:
    tether_cx_destroy(n->cx);
fail_reg:
    free(n);
    return rc;
}

static void req_free(tether_node_t *n, relay_req_t *r);

void tether_node_destroy(tether_node_t *n)
{
    if (!n)
        return;
    tether_obs_free(&n->obs); /* before the devices that list observations */
    tether_timer_t *t;
    while ((t = tether_heap_top(&n->reg.expiry))) {
        tether_device_t *d = container_of(t, tether_device_t, expiry);
        while (d->reqs)
            req_free(n, d->reqs);
        tether_registry_remove(&n->reg, d);
    }
    tether_registry_free(&n->reg);
    tether_cache_destroy(n->cache);
    tether_hmap_free(&n->by_token);
    tether_heap_free(&n->timers);
    tether_cx_destroy(n->cx);
    free(n);
}

void tether_node_set_creds(tether_node_t *n, const tether_creds_t *creds) { n->creds = creds; }

/* ---- replies ---------------------------------------------------------------- */

/* Starts a response to `req` from `peer`: piggybacked ACK for CON, NON with
 * a fresh per-peer MID for NON. */
static void response_init(tether_node_t *n, const tether_link_t *link,
                          const tether_coap_msg_t *req, uint8_t code, tether_coap_msg_t *resp,
                          tether_time_t now)
{
    uint16_t mid;
    if (req->type == TETHER_COAP_CON) {
        tether_coap_msg_init(resp, TETHER_COAP_ACK, code, req->mid);
    } else {
        if (tether_cx_next_mid(n->cx, link, now, &mid) < 0)
            mid = n->ep.next_mid++;
        tether_coap_msg_init(resp, TETHER_COAP_NON, code, mid);
    }
    tether_coap_msg_set_token(resp, req->token, req->tkl);
}

/* Encodes `resp` as the reply to the received message `req` (cached for
 * duplicates) and queues it. */
static void reply(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                  const tether_coap_msg_t *resp)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    if (tether_coap_encode(resp, buf, sizeof buf, &len) < 0) {
        tether_coap_msg_t err;
        tether_coap_msg_init(&err, resp->type, TETHER_COAP_INTERNAL_ERROR, resp->mid);
        tether_coap_msg_set_token(&err, resp->token, resp->tkl);
        if (tether_coap_encode(&err, buf, sizeof buf, &len) < 0)
            return;
    }
    tether_cx_reply(n->cx, link, req->mid, buf, len);
}

static void reply_code(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       uint8_t code, const char *diag, tether_time_t now)
{
    tether_coap_msg_t resp;
    response_init(n, link, req, code, &resp, now);
    if (diag) { /* diagnostic payload (RFC 7252 §5.5.2) */
        resp.payload = (const uint8_t *)diag;
        resp.payload_len = strlen(diag);
    }
    reply(n, link, req, &resp);
}

/* Sends an empty message (ACK or RST) for `mid`, remembered for duplicates. */
static void reply_empty(tether_node_t *n, const tether_link_t *link, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | type << 4), 0, (uint8_t)(mid >> 8),
                    (uint8_t)mid};
    tether_cx_reply(n->cx, link, mid, b, sizeof b);
}

/* ---- relay -------------------------------------------------------------------- */

/* The client's copy of a device's answer: its code, options and payload
 * (pointing into msg); type, MID, token and Observe are the client side's. */
static void device_answer(const tether_coap_msg_t *msg, tether_coap_msg_t *resp)
{
    tether_coap_msg_init(resp, TETHER_COAP_NON, msg->code, 0);
    for (size_t i = 0; i < msg->nopts; i++)
        if (msg->opts[i].num != TETHER_COAP_OPT_OBSERVE)
            tether_coap_msg_add_opt(resp, msg->opts[i].num, msg->opts[i].val, msg->opts[i].len);
    resp->payload = msg->payload;
    resp->payload_len = msg->payload_len;
}

static void dev_list_add(tether_device_t *d, relay_req_t *r)
{
    r->dev = d;
    r->prev = NULL;
    r->next = d->reqs;
    if (d->reqs)
        d->reqs->prev = r;
    d->reqs = r;
}

static void dev_list_del(relay_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->dev)
        r->dev->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(tether_node_t *n, relay_req_t *r)
{
    tether_heap_disarm(&n->timers, &r->deadline);
    tether_heap_disarm(&n->timers, &r->ack_timer);
    tether_hmap_remove(&n->by_token, &r->by_token);
    if (r->dev) {
        if (r->state == R_QUEUED) {
            r->dev->nqueued--;
            n->stats.queue_pending--;
        } else {
            r->dev->ninflight--;
            if (r->state == R_SENT)
                tether_cx_cancel(n->cx, &r->dev_link, r->umid);
        }
    }
    dev_list_del(r);
    n->npending--;
    free(r);
}

/* Answers the client of `r` with `resp` (its type, MID and token are set
 * here) and forgets `r`. */
static void req_answer(tether_node_t *n, relay_req_t *r, tether_coap_msg_t *resp,
                       tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    tether_coap_msg_set_token(resp, r->ctok, r->ctkl);
    bool separate = r->ctype == TETHER_COAP_CON && r->acked;
    if (r->ctype == TETHER_COAP_CON && !r->acked) {
        resp->type = TETHER_COAP_ACK;
        resp->mid = r->cmid;
    } else {
        resp->type = separate ? TETHER_COAP_CON : TETHER_COAP_NON;
        if (tether_cx_next_mid(n->cx, &r->client, now, &resp->mid) < 0)
            resp->mid = n->ep.next_mid++;
    }
    if (tether_coap_encode(resp, buf, sizeof buf, &len) < 0) {
        tether_coap_msg_t err;
        tether_coap_msg_init(&err, resp->type, TETHER_COAP_BAD_GATEWAY, resp->mid);
        tether_coap_msg_set_token(&err, r->ctok, r->ctkl);
        if (tether_coap_encode(&err, buf, sizeof buf, &len) < 0)
            len = 0;
    }
    if (len) {
        if (separate)
            tether_cx_send_con(n->cx, &r->client, buf, len, 0, now);
        else if (resp->type == TETHER_COAP_ACK)
            tether_cx_reply(n->cx, &r->client, r->cmid, buf, len);
        else
            tether_cx_emit(n->cx, &r->client, buf, len);
    }
    req_free(n, r);
}

static void req_fail(tether_node_t *n, relay_req_t *r, uint8_t code, tether_time_t now)
{
    tether_coap_msg_t resp;
    tether_coap_msg_init(&resp, TETHER_COAP_NON, code, 0);
    if (code == TETHER_COAP_GATEWAY_TIMEOUT)
        n->stats.relay_timeouts++;
    else if (code == TETHER_COAP_BAD_GATEWAY)
        n->stats.relay_gone++;
    req_answer(n, r, &resp, now);
}

/* Holds `r` until the device next speaks, or fails it with 5.04 at the
 * queue TTL. */
static void req_queue(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    if (r->state != R_QUEUED) {
        r->dev->ninflight--;
        r->dev->nqueued++;
        n->stats.queue_pending++;
        n->stats.queued++;
        r->state = R_QUEUED;
    }
    if (!r->queued_until)
        r->queued_until = now + n->conf.queue_ttl_ms;
    if (r->queued_until <= now) {
        req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
        return;
    }
    tether_heap_arm(&n->timers, &r->deadline, r->queued_until);
}

/* Sends `r` down its device's tunnel as a CON with a fresh MID. */
static void req_send(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    tether_device_t *d = r->dev;
    if (r->state == R_QUEUED) {
        d->nqueued--;
        d->ninflight++;
        n->stats.queue_pending--;
    }
    r->state = R_SENT;
    r->dev_link = d->link;
    if (tether_cx_next_mid(n->cx, &d->link, now, &r->umid) < 0) {
        req_queue(n, r, now); /* MID space exhausted for now: hold it */
        return;
    }
    r->msg[2] = (uint8_t)(r->umid >> 8);
    r->msg[3] = (uint8_t)r->umid;
    tether_heap_arm(&n->timers, &r->deadline, now + n->conf.request_timeout_ms);
    uint64_t cookie = 1 + ((uint64_t)r->utok[0] << 24 | (uint64_t)r->utok[1] << 16 |
                           (uint64_t)r->utok[2] << 8 | r->utok[3]);
    if (tether_cx_send_con(n->cx, &d->link, r->msg, r->len, cookie, now) < 0)
        req_fail(n, r, TETHER_COAP_INTERNAL_ERROR, now);
}

static bool dev_awake(const tether_node_t *n, const tether_device_t *d, tether_time_t now)
{
    if (!d->link_up)
        return false;
    return !d->queue_mode || now < d->last_rx + n->conf.queue_awake_ms;
}

/* The device spoke: deliver what was queued for it. */
static void dev_flush(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    relay_req_t *r = d->reqs, *next;
    for (; r && d->nqueued; r = next) {
        next = r->next;
        if (r->state == R_QUEUED)
            req_send(n, r, now);
    }
}

/* Outcome of an upstream CON; the cookie is its token plus one (0 marks a
 * separate response to a client, which nothing waits for; cookies of 2^40
 * and above are the observe layer's). */
static void on_cx(void *owner, uint64_t cookie, tether_cx_event_t ev, tether_time_t now)
{
    tether_node_t *n = owner;
    if (!cookie)
        return;
    if (cookie >> 40) {
        obs_on_cx(n, cookie, ev, now);
        return;
    }
    uint32_t tok = (uint32_t)(cookie - 1);
    uint8_t key[UTOK_LEN] = {(uint8_t)(tok >> 24), (uint8_t)(tok >> 16), (uint8_t)(tok >> 8),
                             (uint8_t)tok};
    tether_hnode_t *h = tether_hmap_find(&n->by_token, key, UTOK_LEN);
    relay_req_t *r = h ? container_of(h, relay_req_t, by_token) : NULL;
    if (!r || r->state != R_SENT)
        return;
    switch (ev) {
    case TETHER_CX_ACKED: r->state = R_WAITING; break;
    case TETHER_CX_RESET: req_fail(n, r, TETHER_COAP_BAD_GATEWAY, now); break;
    case TETHER_CX_TIMEOUT:
        if (r->dev->queue_mode)
            req_queue(n, r, now);
        else
            req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
        break;
    case TETHER_CX_LINK_DOWN:
        if (r->dev->queue_mode)
            req_queue(n, r, now);
        else
            req_fail(n, r, TETHER_COAP_BAD_GATEWAY, now);
        break;
    }
}

/* Copies the options a proxy forwards (RFC 7252 §5.7.2): everything but
 * the ones naming the target. An unrecognised unsafe option makes the
 * request unforwardable (5.02). */
static int copy_forward_opts(const tether_node_t *n, const tether_coap_msg_t *in,
                             tether_coap_msg_t *out, bool skip_uri)
{
    for (size_t i = 0; i < in->nopts; i++) {
        const tether_coap_opt_t *o = &in->opts[i];
        switch (o->num) {
        case TETHER_COAP_OPT_URI_HOST:
        case TETHER_COAP_OPT_URI_PORT:
        case TETHER_COAP_OPT_PROXY_URI:
        case TETHER_COAP_OPT_PROXY_SCHEME:
        case TETHER_COAP_OPT_OBSERVE: /* the observe layer adds its own */
            continue;
        case TETHER_COAP_OPT_URI_PATH:
        case TETHER_COAP_OPT_URI_QUERY:
            if (skip_uri)
                continue;
            break;
        default:
            if (!tether_coap_optreg_find(&n->optreg, o->num) && tether_coap_opt_unsafe(o->num))
                return TETHER_EPROTO;
        }
        if (tether_coap_msg_add_opt(out, o->num, o->val, o->len) < 0)
            return TETHER_ENOSPC;
    }
    return 0;
}

/* ---- cache (RFC 7252 §5.6-5.7) -------------------------------------------------- */

static void cache_sync(tether_node_t *n)
{
    const tether_cache_stats_t *s = tether_cache_stats(n->cache);
    n->stats.cache_entries = s->entries;
    n->stats.cache_bytes = s->bytes;
    n->stats.cache_evictions = s->evictions;
    n->stats.cache_invalidations = s->invalidations;
    n->stats.cache_revalidated = s->refreshed;
}

static bool has_etag(const tether_coap_msg_t *m, const uint8_t *etag, size_t len)
{
    for (const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_ETAG); o;
         o = tether_coap_msg_next_opt(m, o))
        if (o->len == len && memcmp(o->val, etag, len) == 0)
            return true;
    return false;
}

/* Answers `req` from the fresh entry `e`: the representation with its
 * remaining Max-Age, or 2.03 when the client's own ETag is the entry's. */
static int cache_answer(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                        const tether_cache_entry_t *e, tether_time_t now)
{
    const uint8_t *et;
    size_t el = tether_cache_etag(e, &et);
    bool valid = el && has_etag(req, et, el);
    uint8_t type = TETHER_COAP_ACK;
    uint16_t mid = req->mid;
    if (req->type != TETHER_COAP_CON) {
        type = TETHER_COAP_NON;
        if (tether_cx_next_mid(n->cx, link, now, &mid) < 0)
            mid = n->ep.next_mid++;
    }
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    int rc = tether_cache_encode(e, type, mid, req->token, req->tkl, valid, now, buf, sizeof buf,
                                 &len);
    if (rc < 0)
        return rc;
    tether_cx_reply(n->cx, link, req->mid, buf, len);
    return 0;
}

/* The cache's part of a client request for device `host`, `up` being the
 * request as it would be forwarded: answers it from a fresh entry (returns
 * true), or prepares the relay. An unsafe method invalidates the target
 * path; a stale entry's ETag is added to `up` (pointing at *vtag, which
 * must outlive it) so the device can revalidate it. Operator requests
 * (internal links) always reach the device; OSCORE passes untouched. */
static bool cache_request(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                          const char *host, tether_coap_msg_t *up, uint8_t *cflags,
                          uint8_t *vtag, uint8_t *vtag_len, tether_time_t now)
{
    tether_cache_key_t k;
    *cflags = *vtag_len = 0;
    if (tether_coap_msg_find_opt(up, TETHER_COAP_OPT_OSCORE))
        return false;
    if (tether_cache_method_unsafe(up->code)) {
        if (tether_cache_key_path(&k, host, up, TETHER_COAP_OPT_URI_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
        cache_sync(n);
        return false;
    }
    if (!tether_cache_request_cacheable(up) || tether_cache_key(&k, host, up) < 0)
        return false;
    *cflags = C_STORE;
    if (link->kind == TETHER_LINK_INTERNAL)
        return false;
    tether_cache_entry_t *e = NULL;
    tether_cache_state_t st = tether_cache_lookup(n->cache, &k, now, &e);
    if (st == TETHER_CACHE_FRESH && cache_answer(n, link, req, e, now) == 0) {
        n->stats.cache_hits++;
        return true;
    }
    n->stats.cache_misses++;
    if (st == TETHER_CACHE_STALE) {
        const uint8_t *et;
        size_t el = tether_cache_etag(e, &et);
        memcpy(vtag, et, el);
        *vtag_len = (uint8_t)el;
        if (has_etag(up, vtag, el))
            *cflags |= C_CLIENT_VTAG;
        else if (tether_coap_msg_add_opt(up, TETHER_COAP_OPT_ETAG, vtag, el) < 0)
            *vtag_len = 0;
    }
    cache_sync(n);
    return false;
}

static void req_send(tether_node_t *n, relay_req_t *r, tether_time_t now);

/* Sends `r` again without the ETag the cache added (parsed as `up`): the
 * 2.03 it brought refers to an entry evicted since, so the device must
 * send the representation itself. */
static bool req_resend_unvalidated(tether_node_t *n, relay_req_t *r, const tether_coap_msg_t *up,
                                   tether_time_t now)
{
    tether_coap_msg_t m;
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    tether_coap_msg_init(&m, up->type, up->code, up->mid);
    tether_coap_msg_set_token(&m, up->token, up->tkl);
    for (size_t i = 0; i < up->nopts; i++) {
        const tether_coap_opt_t *o = &up->opts[i];
        if (o->num == TETHER_COAP_OPT_ETAG && o->len == r->vtag_len &&
            memcmp(o->val, r->vtag, o->len) == 0)
            continue;
        tether_coap_msg_add_opt(&m, o->num, o->val, o->len);
    }
    m.payload = up->payload;
    m.payload_len = up->payload_len;
    if (tether_coap_encode(&m, buf, sizeof buf, &len) < 0 || len > r->len)
        return false;
    memcpy(r->msg, buf, len);
    r->len = (uint16_t)len;
    r->vtag_len = 0;
    req_send(n, r, now);
    return true;
}

/* The cache's part of the device's answer `resp` to `r`. 2.01/2.02/2.04
 * invalidate the target path (and a 2.01's Location-Path); a cacheable
 * answer is stored; a 2.03 to the cache's own revalidation refreshes the
 * entry and, unless the client sent that ETag itself, *resp becomes the
 * cached representation (decoded from buf[cap], which must outlive it).
 * Returns true when `r` went to the device again instead. */
static bool cache_response(tether_node_t *n, relay_req_t *r, tether_coap_msg_t *resp,
                           uint8_t *buf, size_t cap, tether_time_t now)
{
    uint8_t code = resp->code;
    bool modified = code == TETHER_COAP_CREATED || code == TETHER_COAP_DELETED ||
                    code == TETHER_COAP_CHANGED;
    if (!modified && !(r->cflags & C_STORE))
        return false;
    tether_coap_msg_t up;
    tether_coap_perr_t perr;
    tether_cache_key_t k;
    if (tether_coap_parse(&up, r->msg, r->len, &perr) < 0 ||
        tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_OSCORE))
        return false;
    bool resent = false;
    if (modified) {
        if (tether_cache_key_path(&k, r->dev->name, &up, TETHER_COAP_OPT_URI_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
        if (code == TETHER_COAP_CREATED &&
            tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_LOCATION_PATH) &&
            tether_cache_key_path(&k, r->dev->name, resp, TETHER_COAP_OPT_LOCATION_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
    } else if (tether_cache_key(&k, r->dev->name, &up) < 0) {
        return false;
    } else if (code == TETHER_COAP_VALID && r->vtag_len) {
        /* Not our ETag: the client's own validator matched, its 2.03. */
        if (has_etag(resp, r->vtag, r->vtag_len)) {
            tether_cache_entry_t *e = tether_cache_validate(n->cache, &k, resp, now);
            size_t len;
            /* With C_CLIENT_VTAG the 2.03 answers the client as it is. */
            if (!(r->cflags & C_CLIENT_VTAG) &&
                (!e ||
                 tether_cache_encode(e, TETHER_COAP_NON, 0, NULL, 0, false, now, buf, cap, &len) <
                     0 ||
                 tether_coap_parse(resp, buf, len, &perr) < 0))
                resent = req_resend_unvalidated(n, r, &up, now);
        }
    } else {
        tether_cache_store(n->cache, &k, resp, now);
    }
    cache_sync(n);
    return resent;
}

/* ---- observe (RFC 7641) ----------------------------------------------------------
 *
 * One device-side observation per observed resource (proxy/observe.h),
 * fanned out to its client observers. CON cookies: relayed requests use
 * 1 + token (< 2^33); the two tags below sit above that. */

#define COOKIE_OBSERVER (1ull << 40) /* | observer id: a confirmable notification */
#define COOKIE_OBS_UP (2ull << 40)   /* | upstream token: an observe registration */
/* RFC 7641 §4.5: an observer gets a confirmable notification at least this
 * often, besides the ones the device itself sent confirmable. */
#define OBS_CON_INTERVAL_MS (24ull * 3600 * 1000)

static uint32_t tok32(const uint8_t *t)
{
    return (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3];
}

static bool link_same(const tether_link_t *a, const tether_link_t *b)
{
    uint8_t ka[20], kb[20];
    size_t la = tether_link_key(a, ka), lb = tether_link_key(b, kb);
    return la == lb && memcmp(ka, kb, la) == 0;
}

static tether_device_t *obs_dev(const tether_observation_t *o)
{
    return container_of(o->dev_list, tether_device_t, observations);
}

static void obs_sync(tether_node_t *n)
{
    n->stats.observe_device_observations = n->obs.nobservations;
    n->stats.observe_observers = n->obs.nobservers;
}

/* Sends `o`'s registration (Observe: 0 with its upstream token) down `d`'s
 * current tunnel as a CON, replacing one still outstanding elsewhere. A
 * no-op while the tunnel is down: the device's next message re-sends it. */
static void obs_register_up(tether_node_t *n, tether_observation_t *o, tether_device_t *d,
                            tether_time_t now)
{
    if (o->up_pending) {
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    if (!d->link_up || tether_cx_next_mid(n->cx, &d->link, now, &o->up_mid) < 0)
        return;
    o->req[2] = (uint8_t)(o->up_mid >> 8);
    o->req[3] = (uint8_t)o->up_mid;
    if (tether_cx_send_con(n->cx, &d->link, o->req, o->req_len, COOKIE_OBS_UP | tok32(o->utok),
                           now) == 0) {
        o->up_pending = true;
        o->up_link = d->link;
    }
}

/* Cancels the device side of `o` (RFC 7641 §3.6): a GET/FETCH with
 * Observe: 1 and the upstream token. Later notifications carrying the
 * token find no observation and are answered with RST. */
static void obs_cancel_up(tether_node_t *n, tether_observation_t *o, tether_time_t now)
{
    tether_device_t *d = obs_dev(o);
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    uint8_t buf[TETHER_MSG_MAX], one = 1;
    size_t len;
    if (o->up_pending) {
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    if (!d->link_up || tether_coap_parse(&m, o->req, o->req_len, &perr) < 0 ||
        tether_cx_next_mid(n->cx, &d->link, now, &m.mid) < 0)
        return;
    tether_coap_msg_del_opt(&m, TETHER_COAP_OPT_OBSERVE);
    if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &one, 1) == 0 &&
        tether_coap_encode(&m, buf, sizeof buf, &len) == 0)
        tether_cx_send_con(n->cx, &d->link, buf, len, 0, now);
}

/* Removes `ob`, stopping its outstanding confirmable notification. */
static void ob_drop(tether_node_t *n, tether_observer_t *ob)
{
    if (ob->con_pending)
        tether_cx_cancel(n->cx, &ob->link, ob->con_mid);
    tether_obs_remove_observer(&n->obs, ob);
}

/* Removes `ob`; the last observer to leave cancels and frees the device
 * side too. */
static void obs_leave(tether_node_t *n, tether_observer_t *ob, tether_time_t now)
{
    tether_observation_t *o = ob->obs;
    ob_drop(n, ob);
    if (!o->nobservers) {
        obs_cancel_up(n, o, now);
        tether_obs_destroy(&n->obs, o);
    }
    obs_sync(n);
}

/* Ends `o`: every observer gets `resp` (a final response without Observe,
 * its token and MID set here) and is removed; `o` is freed. The device side
 * is not cancelled: it ended it, or is gone. */
static void obs_end(tether_node_t *n, tether_observation_t *o, tether_coap_msg_t *resp,
                    tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    if (o->up_pending) {
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    resp->type = TETHER_COAP_NON;
    while (o->observers.head) {
        tether_observer_t *ob = container_of(o->observers.head, tether_observer_t, in_obs);
        tether_coap_msg_set_token(resp, ob->tok, ob->tkl);
        if (tether_cx_next_mid(n->cx, &ob->link, now, &resp->mid) == 0 &&
            tether_coap_encode(resp, buf, sizeof buf, &len) == 0)
            tether_cx_emit(n->cx, &ob->link, buf, len);
        ob_drop(n, ob);
    }
    tether_obs_destroy(&n->obs, o);
    obs_sync(n);
}

static void obs_fail(tether_node_t *n, tether_observation_t *o, uint8_t code, const char *diag,
                     tether_time_t now)
{
    tether_coap_msg_t resp;
    tether_coap_msg_init(&resp, TETHER_COAP_NON, code, 0);
    resp.payload = (const uint8_t *)diag;
    resp.payload_len = strlen(diag);
    obs_end(n, o, &resp, now);
}

/* Sends `o`'s latest notification to `ob`: confirmable when `con` (the
 * device sent it so) or when `ob` had none for OBS_CON_INTERVAL_MS, unless
 * one is still outstanding (RFC 7641 §4.5.2: the newer state goes
 * non-confirmable meanwhile, the outstanding one keeps its back-off and
 * still detects a client that is gone); non-confirmable otherwise. */
static void obs_notify_one(tether_node_t *n, tether_observation_t *o, tether_observer_t *ob,
                           bool con, tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    uint16_t mid;
    con = (con || now - ob->last_con >= OBS_CON_INTERVAL_MS) && !ob->con_pending;
    if (tether_cx_next_mid(n->cx, &ob->link, now, &mid) < 0 ||
        tether_obs_encode(o, ob, con ? TETHER_COAP_CON : TETHER_COAP_NON, mid, buf, sizeof buf,
                          &len) < 0)
        return;
    if (con) {
        if (tether_cx_send_con(n->cx, &ob->link, buf, len, COOKIE_OBSERVER | ob->id, now) < 0)
            return;
        ob->con_pending = true;
        ob->con_mid = mid;
        ob->last_con = now;
    } else {
        tether_cx_emit(n->cx, &ob->link, buf, len);
    }
    ob->notified = true;
    ob->last_mid = mid;
    n->stats.observe_notifications_sent++;
}

/* A response from a device carrying an observation's upstream token. A
 * 2.05 with Observe is a notification: it refreshes the cache entry and
 * goes to every observer. Anything else (an error, a response without
 * Observe) is forwarded to every observer and ends the observation.
 * Returns false when no observation has the token, or it did not come on
 * the device's current tunnel (the caller then answers a CON/NON with RST,
 * cancelling a stale device-side observation). */
static bool obs_response(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *msg,
                         tether_time_t now)
{
    tether_observation_t *o = tether_obs_find_token(&n->obs, msg->token, msg->tkl);
    if (!o)
        return false;
    tether_device_t *d = obs_dev(o);
    if (!peer->identity || strcmp(peer->identity, d->name) != 0 || !d->link_up ||
        !link_same(&d->link, &peer->link))
        return false;
    if (o->up_pending && msg->type != TETHER_COAP_ACK) {
        /* A separate response: the registration arrived, its ACK did not. */
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    tether_coap_msg_t resp;
    device_answer(msg, &resp);
    if (n->cache) {
        tether_cache_key_t k;
        k.len = o->key_len;
        k.path_len = o->key_path_len;
        memcpy(k.buf, o->key, o->key_len);
        tether_cache_store(n->cache, &k, &resp, now);
        cache_sync(n);
    }
    bool notification = msg->code == TETHER_COAP_CONTENT &&
                        tether_coap_msg_find_opt(msg, TETHER_COAP_OPT_OBSERVE);
    if (!notification) {
        n->stats.relay_ok++;
        obs_end(n, o, &resp, now);
        return true;
    }
    if (tether_obs_set_latest(o, &resp) < 0) {
        obs_fail(n, o, TETHER_COAP_BAD_GATEWAY, "notification too large", now);
        return true;
    }
    bool con = msg->type == TETHER_COAP_CON;
    for (tether_lnode_t *l = o->observers.head; l; l = l->next)
        obs_notify_one(n, o, container_of(l, tether_observer_t, in_obs), con, now);
    return true;
}

/* Outcome of a confirmable notification or of an upstream registration. */
static void obs_on_cx(tether_node_t *n, uint64_t cookie, tether_cx_event_t ev, tether_time_t now)
{
    if ((cookie >> 40) == 1) {
        tether_observer_t *ob = tether_obs_observer_by_id(&n->obs, (uint32_t)cookie);
        if (!ob || !ob->con_pending)
            return;
        ob->con_pending = false;
        if (ev != TETHER_CX_ACKED) /* RST, timeout or link down: the client is gone */
            obs_leave(n, ob, now);
        return;
    }
    uint32_t t = (uint32_t)cookie;
    uint8_t tok[TETHER_OBS_TOKEN_LEN] = {(uint8_t)(t >> 24), (uint8_t)(t >> 16), (uint8_t)(t >> 8),
                                         (uint8_t)t};
    tether_observation_t *o = tether_obs_find_token(&n->obs, tok, sizeof tok);
    if (!o || !o->up_pending)
        return;
    o->up_pending = false;
    if (ev == TETHER_CX_RESET)
        obs_fail(n, o, TETHER_COAP_BAD_GATEWAY, "device refused the observation", now);
    else if (ev == TETHER_CX_TIMEOUT)
        obs_fail(n, o, TETHER_COAP_GATEWAY_TIMEOUT, "device did not answer", now);
    /* Link down: the device's next session registers it again. */
}

/* A new observation of `k` on `d`, `up` being the request as forwarded
 * (without Observe or token); its registration goes out when the tunnel is
 * up. NULL when out of memory or tokens. */
static tether_observation_t *obs_new(tether_node_t *n, tether_device_t *d,
                                     const tether_cache_key_t *k, const tether_coap_msg_t *up,
                                     tether_time_t now)
{
    tether_coap_msg_t m = *up;
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, "", 0) < 0)
        return NULL;
    for (int tries = 0; tries < 4; tries++) {
        uint32_t t = n->next_token++;
        uint8_t utok[UTOK_LEN] = {(uint8_t)(t >> 24), (uint8_t)(t >> 16), (uint8_t)(t >> 8),
                                  (uint8_t)t};
        tether_observation_t *o;
        if (tether_hmap_find(&n->by_token, utok, UTOK_LEN))
            continue; /* the counter wrapped onto a relayed request */
        tether_coap_msg_set_token(&m, utok, UTOK_LEN);
        if (tether_coap_encode(&m, buf, sizeof buf, &len) < 0)
            return NULL;
        int rc = tether_obs_create(&n->obs, k, utok, buf, len, &d->observations, &o);
        if (rc == TETHER_EEXIST)
            continue;
        if (rc < 0)
            return NULL;
        obs_register_up(n, o, d, now);
        return o;
    }
    return NULL;
}

/* Answers the registration `req` of `ob` with the latest notification. */
static void obs_answer(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       tether_observation_t *o, tether_observer_t *ob, tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    uint8_t type = TETHER_COAP_ACK;
    uint16_t mid = req->mid;
    if (req->type != TETHER_COAP_CON) {
        type = TETHER_COAP_NON;
        if (tether_cx_next_mid(n->cx, link, now, &mid) < 0)
            mid = n->ep.next_mid++;
    }
    if (tether_obs_encode(o, ob, type, mid, buf, sizeof buf, &len) < 0)
        return;
    tether_cx_reply(n->cx, link, req->mid, buf, len);
    ob->notified = true;
    ob->last_mid = mid;
    n->stats.observe_notifications_sent++;
}

/* The observe part of a client request for device `d`, `up` being the
 * request as it would be forwarded (Observe stripped). Observe: 0 on a
 * cacheable GET/FETCH makes the client an observer of the shared
 * device-side observation (the first observer creates and registers it)
 * and is answered with the latest notification, or an empty ACK until the
 * first one comes: returns true. Observe: 1 removes the client's observer
 * with that token and returns false, so the request goes on as a plain
 * one (RFC 7641 §3.6). Operator requests are never observers. */
static bool obs_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                        tether_device_t *d, const tether_coap_msg_t *up, tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    uint32_t ov;
    if ((req->code != TETHER_COAP_GET && req->code != TETHER_COAP_FETCH) ||
        link->kind == TETHER_LINK_INTERNAL ||
        tether_coap_msg_get_uint(req, TETHER_COAP_OPT_OBSERVE, &ov) < 0)
        return false;
    tether_observer_t *ob = tether_obs_observer_find(&n->obs, link, req->token, req->tkl);
    if (ov != 0) {
        if (ov == 1 && ob)
            obs_leave(n, ob, now);
        return false;
    }
    tether_cache_key_t k;
    if (!tether_cache_request_cacheable(up) || tether_cache_key(&k, d->name, up) < 0)
        return false; /* e.g. block-wise: relayed as a plain request */
    tether_observation_t *o = tether_obs_find(&n->obs, &k);
    if (ob && ob->obs != o) { /* the token now observes something else */
        obs_leave(n, ob, now);
        ob = NULL;
    }
    if (!ob) {
        if (n->obs.nobservers >= n->conf.max_observers ||
            (o && o->nobservers >= n->conf.max_observers_per_resource)) {
            n->stats.observe_rejected++;
            reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "too many observers", now);
            return true;
        }
        bool created = !o;
        if ((!o && !(o = obs_new(n, d, &k, up, now))) ||
            tether_obs_add_observer(&n->obs, o, link, req->token, req->tkl, now, &ob) < 0) {
            if (o && created) {
                obs_cancel_up(n, o, now);
                tether_obs_destroy(&n->obs, o);
            }
            reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
            return true;
        }
        obs_sync(n);
    }
    if (o->last_code)
        obs_answer(n, link, req, o, ob, now);
    else if (req->type == TETHER_COAP_CON)
        reply_empty(n, link, TETHER_COAP_ACK, req->mid);
    return true;
}

/* The device's tunnel changed (new session, re-registration): every
 * observation of it is registered again there; observers notice nothing. */
static void obs_relink(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    for (tether_lnode_t *l = d->observations.head; l; l = l->next)
        obs_register_up(n, container_of(l, tether_observation_t, dev_node), d, now);
}

/* A client request for a device: target, access control, then send,
 * queue, or answer with the S4 error codes. */
static void relay_request(tether_node_t *n, const tether_peer_t *peer,
                          const tether_coap_msg_t *req, tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    tether_coap_msg_t up;
    tether_coap_msg_init(&up, TETHER_COAP_CON, req->code, 0);
    char host[TETHER_IDENTITY_MAX];
    uint8_t scratch[1100];
    const tether_coap_opt_t *pu = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_PROXY_URI);
    const tether_coap_opt_t *uh;
    if (pu) {
        tether_coap_msg_t u;
        bool secure;
        tether_coap_msg_init(&u, 0, 0, 0);
        if (tether_coap_uri_to_opts((const char *)pu->val, pu->len, &u, scratch, sizeof scratch,
                                    &secure) < 0) {
            reply_code(n, link, req, TETHER_COAP_PROXYING_NOT_SUPPORTED,
                       "Proxy-Uri: only coap:// and coaps:// URIs of devices", now);
            return;
        }
        uh = tether_coap_msg_find_opt(&u, TETHER_COAP_OPT_URI_HOST);
        if (!uh || uh->len >= sizeof host) {
            reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "Proxy-Uri without a device name",
                       now);
            return;
        }
        memcpy(host, uh->val, uh->len);
        host[uh->len] = 0;
        for (size_t i = 0; i < u.nopts; i++)
            if (u.opts[i].num == TETHER_COAP_OPT_URI_PATH ||
                u.opts[i].num == TETHER_COAP_OPT_URI_QUERY)
                tether_coap_msg_add_opt(&up, u.opts[i].num, u.opts[i].val, u.opts[i].len);
    } else {
        uh = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_HOST);
        if (!uh || uh->len == 0 || uh->len >= sizeof host) {
            reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "no device named (Uri-Host)", now);
            return;
        }
        memcpy(host, uh->val, uh->len);
        host[uh->len] = 0;
    }
    /* Operators (admin API) are trusted; plain CoAP only on loopback. */
    if (link->kind == TETHER_LINK_PLAIN && !n->conf.plain_trusted) {
        n->stats.relay_denied++;
        reply_code(n, link, req, TETHER_COAP_UNAUTHORIZED, "authenticate over DTLS", now);
        return;
    }
    if (peer->identity && !tether_creds_allowed(n->creds, peer->identity, host, req->code)) {
        n->stats.relay_denied++;
        reply_code(n, link, req, TETHER_COAP_FORBIDDEN, NULL, now);
        return;
    }
    tether_device_t *d = tether_registry_find(&n->reg, host);
    if (!d) {
        n->stats.relay_unknown++;
        reply_code(n, link, req, TETHER_COAP_NOT_FOUND, "unknown device", now);
        return;
    }
    if (copy_forward_opts(n, req, &up, pu != NULL) < 0) {
        reply_code(n, link, req, TETHER_COAP_BAD_GATEWAY, "option cannot be forwarded", now);
        return;
    }
    up.payload = req->payload;
    up.payload_len = req->payload_len;
    if (obs_request(n, peer, req, d, &up, now))
        return; /* an observer now */
    uint8_t cflags = 0, vtag[8], vtag_len = 0;
    if (n->cache &&
        cache_request(n, link, req, host, &up, &cflags, vtag, &vtag_len, now))
        return; /* answered from the cache */
    if (n->npending >= n->conf.max_pending) {
        reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
        return;
    }
    bool awake = dev_awake(n, d, now);
    if (!awake && d->nqueued >= n->conf.queue_max) {
        reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "device queue full", now);
        return;
    }
    uint32_t tok = n->next_token++;
    uint8_t utok[UTOK_LEN] = {(uint8_t)(tok >> 24), (uint8_t)(tok >> 16), (uint8_t)(tok >> 8),
                              (uint8_t)tok};
    tether_coap_msg_set_token(&up, utok, UTOK_LEN);
    size_t len = tether_coap_encoded_size(&up);
    relay_req_t *r = len <= TETHER_MSG_MAX ? calloc(1, sizeof *r + len) : NULL;
    if (!r || tether_coap_encode(&up, r->msg, len, &len) < 0 ||
        tether_hmap_insert(&n->by_token, &r->by_token, utok, UTOK_LEN) < 0) {
        free(r);
        reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    memcpy(r->utok, utok, UTOK_LEN);
    r->len = (uint16_t)len;
    r->client = *link;
    r->cmid = req->mid;
    r->ctype = req->type;
    r->ctkl = req->tkl;
    memcpy(r->ctok, req->token, req->tkl);
    r->cflags = cflags;
    r->vtag_len = vtag_len;
    memcpy(r->vtag, vtag, vtag_len);
    tether_timer_init(&r->deadline);
    tether_timer_init(&r->ack_timer);
    r->deadline.tag = T_DEADLINE;
    r->ack_timer.tag = T_ACK;
    n->npending++;
    n->stats.requests_relayed++;
    r->state = R_WAITING; /* neither queued nor sent yet */
    d->ninflight++;
    dev_list_add(d, r);
    if (req->type == TETHER_COAP_CON)
        tether_heap_arm(&n->timers, &r->ack_timer, now + n->conf.ack_delay_ms);
    if (awake)
        req_send(n, r, now);
    else
        req_queue(n, r, now);
}

/* A response from a device (piggybacked, separate CON/NON). Returns false
 * when no relayed request has its token. */
static bool relay_response(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *msg, tether_time_t now)
{
    if (msg->tkl != UTOK_LEN)
        return false;
    tether_hnode_t *h = tether_hmap_find(&n->by_token, msg->token, UTOK_LEN);
    if (!h)
        return false;
    relay_req_t *r = container_of(h, relay_req_t, by_token);
    /* Only the device the request went to may answer it. */
    if (!peer->identity || strcmp(peer->identity, r->dev->name) != 0 || r->state == R_QUEUED)
        return false;
    tether_coap_msg_t resp;
    device_answer(msg, &resp);
    uint8_t cached[TETHER_MSG_MAX];
    if (n->cache && cache_response(n, r, &resp, cached, sizeof cached, now))
        return true; /* asked again */
    n->stats.relay_ok++;
    req_answer(n, r, &resp, now);
    return true;
}

/* ---- resource directory (RFC 9176 subset) ----------------------------------- */

/* Value of query parameter `name` ("ep" for "ep=dev1") into out; false when
 * absent. */
static bool query_param(const tether_coap_msg_t *m, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_URI_QUERY); o;
         o = tether_coap_msg_next_opt(m, o)) {
        if (o->len > nl && memcmp(o->val, name, nl) == 0 && o->val[nl] == '=') {
            size_t vl = o->len - nl - 1;
            if (vl >= cap)
                return false;
            memcpy(out, o->val + nl + 1, vl);
            out[vl] = 0;
            return true;
        }
    }
    return false;
}

/* Applies lt= and b= of a registration or update; false on a bad value. */
static bool rd_params(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *req,
                      bool is_new, tether_time_t now)
{
    char v[16];
    uint32_t lt = is_new ? RD_LT_DEFAULT : d->lifetime_s;
    if (query_param(req, "lt", v, sizeof v)) {
        char *end;
        unsigned long x = strtoul(v, &end, 10);
        if (!*v || *end || x < 1 || x > 4294967295ul)
            return false;
        lt = (uint32_t)x;
    }
    if (query_param(req, "b", v, sizeof v))
        d->queue_mode = strchr(v, 'Q') != NULL;
    else if (is_new)
        d->queue_mode = false;
    tether_registry_set_lifetime(&n->reg, d, lt, now);
    return true;
}

static bool rd_links_ok(const tether_coap_msg_t *req)
{
    uint32_t cf;
    if (!req->payload_len)
        return true;
    if (tether_coap_msg_get_uint(req, TETHER_COAP_OPT_CONTENT_FORMAT, &cf) == 0 &&
        cf != TETHER_COAP_CF_LINK_FORMAT)
        return false;
    tether_lf_link_t links[MAX_LINKS];
    size_t nl;
    return tether_lf_parse((const char *)req->payload, req->payload_len, links, MAX_LINKS, &nl,
                           NULL) == 0;
}

/* Fails every request and ends every observation of `d` (5.02: the device
 * is gone) and removes it. */
static void dev_remove(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    while (d->reqs)
        req_fail(n, d->reqs, TETHER_COAP_BAD_GATEWAY, now);
    while (d->observations.head)
        obs_fail(n, container_of(d->observations.head, tether_observation_t, dev_node),
                 TETHER_COAP_BAD_GATEWAY, "device gone", now);
    tether_registry_remove(&n->reg, d);
    n->stats.devices_registered = n->reg.count;
}

static void rd_handle(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                      tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    const tether_coap_opt_t *p1 = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_PATH);
    const tether_coap_opt_t *p2 = tether_coap_msg_next_opt(req, p1);
    if (p2 && tether_coap_msg_next_opt(req, p2)) {
        reply_code(n, link, req, TETHER_COAP_NOT_FOUND, NULL, now);
        return;
    }
    if (!peer->identity) {
        reply_code(n, link, req, TETHER_COAP_UNAUTHORIZED, "register over DTLS", now);
        return;
    }
    if (peer->role != TETHER_ROLE_DEVICE) {
        reply_code(n, link, req, TETHER_COAP_FORBIDDEN, "not a device identity", now);
        return;
    }
    tether_coap_msg_t resp;
    if (!p2) { /* POST /rd?ep=NAME&lt=S: registration */
        char ep[TETHER_IDENTITY_MAX];
        if (req->code != TETHER_COAP_POST) {
            reply_code(n, link, req, TETHER_COAP_METHOD_NOT_ALLOWED, NULL, now);
            return;
        }
        if (!query_param(req, "ep", ep, sizeof ep))
            snprintf(ep, sizeof ep, "%s", peer->identity); /* inferred from the session */
        if (strcmp(ep, peer->identity) != 0) {
            reply_code(n, link, req, TETHER_COAP_FORBIDDEN, "ep differs from the DTLS identity",
                       now);
            return;
        }
        if (!rd_links_ok(req)) {
            reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "payload is not link-format", now);
            return;
        }
        tether_device_t *d;
        bool created;
        int rc = tether_registry_add(&n->reg, ep, &d, &created);
        if (rc < 0) {
            reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "directory full", now);
            return;
        }
        if (!rd_params(n, d, req, created, now)) {
            if (created)
                tether_registry_remove(&n->reg, d);
            reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "bad lt", now);
            return;
        }
        tether_registry_set_links(d, (const char *)req->payload, req->payload_len);
        d->registered_at = now;
        tether_registry_touch(&n->reg, d, link, now);
        n->stats.registrations++;
        n->stats.devices_registered = n->reg.count;
        if (created && tether_log_enabled(TETHER_LOG_INFO))
            tether_log_kv(TETHER_LOG_INFO, "rd", "registered", "ep", d->name, "id", d->regid,
                          NULL);
        response_init(n, link, req, TETHER_COAP_CREATED, &resp, now);
        tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_LOCATION_PATH, "rd", 2);
        tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_LOCATION_PATH, d->regid,
                                strlen(d->regid));
        reply(n, link, req, &resp);
        dev_flush(n, d, now);
        return;
    }
    char id[16];
    if (p2->len >= sizeof id) {
        reply_code(n, link, req, TETHER_COAP_NOT_FOUND, NULL, now);
        return;
    }
    memcpy(id, p2->val, p2->len);
    id[p2->len] = 0;
    tether_device_t *d = tether_registry_find_reg(&n->reg, id);
    if (!d) {
        reply_code(n, link, req, TETHER_COAP_NOT_FOUND, "no such registration", now);
        return;
    }
    if (strcmp(d->name, peer->identity) != 0) {
        reply_code(n, link, req, TETHER_COAP_FORBIDDEN, NULL, now);
        return;
    }
    if (req->code == TETHER_COAP_DELETE) {
        dev_remove(n, d, now);
        reply_code(n, link, req, TETHER_COAP_DELETED, NULL, now);
        return;
    }
    if (req->code != TETHER_COAP_POST) {
        reply_code(n, link, req, TETHER_COAP_METHOD_NOT_ALLOWED, NULL, now);
        return;
    }
    if (!rd_links_ok(req) || !rd_params(n, d, req, false, now)) {
        reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, NULL, now);
        return;
    }
    if (req->payload_len)
        tether_registry_set_links(d, (const char *)req->payload, req->payload_len);
    reply_code(n, link, req, TETHER_COAP_CHANGED, NULL, now);
    dev_flush(n, d, now);
}

/* ---- input ------------------------------------------------------------------- */

static void handle_request(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *req, tether_time_t now)
{
    if (!tether_local_is_for_node(req)) {
        relay_request(n, peer, req, now);
        return;
    }
    const tether_coap_opt_t *p1 = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_PATH);
    if (p1 && p1->len == 2 && memcmp(p1->val, "rd", 2) == 0) {
        rd_handle(n, peer, req, now);
        return;
    }
    n->stats.requests_local++;
    tether_coap_msg_t resp;
    uint8_t scratch[1024];
    if (tether_local_handle(&n->local, &n->ep, req, &resp, scratch, sizeof scratch) < 0) {
        reply_code(n, &peer->link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    /* tether_local_handle started the response with the shared endpoint's
     * MID; NON answers take a per-peer MID instead. */
    if (resp.type == TETHER_COAP_NON && tether_cx_next_mid(n->cx, &peer->link, now, &resp.mid) < 0)
        resp.mid = n->ep.next_mid++;
    reply(n, &peer->link, req, &resp);
}

void tether_node_input(tether_node_t *n, const tether_peer_t *peer, const uint8_t *buf, size_t len,
                       tether_time_t now)
{
    tether_coap_msg_t msg;
    uint8_t rej[64];
    size_t rlen = 0;
    n->stats.rx_datagrams++;
    /* Any message from a registered device proves its tunnel is up here,
     * a CoAP ping (the usual keep-alive, answered below by the endpoint
     * layer) included: NAT-binding learning needs every gap. */
    tether_device_t *d = NULL;
    bool relinked = false;
    if (peer->identity && peer->role == TETHER_ROLE_DEVICE &&
        (d = tether_registry_find(&n->reg, peer->identity))) {
        relinked = !d->link_up || !link_same(&d->link, &peer->link);
        tether_registry_touch(&n->reg, d, &peer->link, now);
    }
    tether_layer_res_t res = tether_coap_ep_input(&n->ep, buf, len, &msg, rej, sizeof rej, &rlen);
    if (res != TETHER_LAYER_CONTINUE) {
        if (rlen > 0) {
            if (rej[1] != 0)
                n->stats.rx_rejected++;
            tether_cx_emit(n->cx, &peer->link, rej, rlen);
        }
        goto device; /* a ping or a rejected message still shows the device is here */
    }
    if (msg.type == TETHER_COAP_ACK || msg.type == TETHER_COAP_RST) {
        bool ours =
            tether_cx_on_ack(n->cx, &peer->link, msg.mid, msg.type == TETHER_COAP_RST, now);
        if (msg.type == TETHER_COAP_ACK && tether_coap_is_response(msg.code) &&
            !relay_response(n, peer, &msg, now))
            obs_response(n, peer, &msg, now);
        tether_observer_t *ob;
        /* A client rejecting a non-confirmable notification (RFC 7641 §3.6). */
        if (!ours && msg.type == TETHER_COAP_RST &&
            (ob = tether_obs_observer_by_mid(&n->obs, &peer->link, msg.mid)))
            obs_leave(n, ob, now);
    } else if (tether_cx_seen(n->cx, &peer->link, msg.mid, now)) {
        n->stats.duplicates++;
    } else if (tether_coap_is_request(msg.code)) {
        handle_request(n, peer, &msg, now);
    } else if (tether_coap_is_response(msg.code)) {
        bool matched = relay_response(n, peer, &msg, now) || obs_response(n, peer, &msg, now);
        if (msg.type == TETHER_COAP_CON)
            reply_empty(n, &peer->link, matched ? TETHER_COAP_ACK : TETHER_COAP_RST, msg.mid);
        else if (!matched) /* e.g. a notification nobody wants: cancel it */
            reply_empty(n, &peer->link, TETHER_COAP_RST, msg.mid);
    }
device:
    /* Looked up again: the message may have removed the registration. A
     * device's new session resumes its observations; what was queued for
     * a sleeping device goes now (S3: "when the device next sends anything"). */
    if (d && (d = tether_registry_find(&n->reg, peer->identity))) {
        if (relinked)
            obs_relink(n, d, now);
        dev_flush(n, d, now);
    }
}

void tether_node_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now)
{
    tether_device_t *d = tether_registry_find_link(&n->reg, link);
    if (d)
        tether_registry_link_down(&n->reg, d);
    tether_cx_link_down(n->cx, link, now);
    tether_observer_t *ob; /* a client session: its observations end */
    while ((ob = tether_obs_link_first(&n->obs, link)))
        obs_leave(n, ob, now);
    if (!d)
        return;
    /* Requests already acknowledged by the device wait for a separate
     * response that can no longer come on this session. */
    for (relay_req_t *r = d->reqs, *next; r; r = next) {
        next = r->next;
        if (r->state == R_WAITING && r->dev_link.kind == link->kind &&
            r->dev_link.id == link->id) {
            if (d->queue_mode)
                req_queue(n, r, now);
            else
                req_fail(n, r, TETHER_COAP_BAD_GATEWAY, now);
        }
    }
}

void tether_node_tick(tether_node_t *n, tether_time_t now)
{
    tether_cx_tick(n->cx, now);
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&n->timers, now))) {
        relay_req_t *r;
        if (t->tag == T_DEADLINE) { /* request timeout or queue TTL */
            r = container_of(t, relay_req_t, deadline);
            req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
        } else {
            r = container_of(t, relay_req_t, ack_timer);
            r->acked = true;
            reply_empty(n, &r->client, TETHER_COAP_ACK, r->cmid);
        }
    }
    tether_device_t *d;
    while ((d = tether_registry_pop_expired(&n->reg, now))) {
        if (tether_log_enabled(TETHER_LOG_INFO))
            tether_log_kv(TETHER_LOG_INFO, "rd", "registration expired", "ep", d->name, NULL);
        dev_remove(n, d, now);
    }
    n->stats.retransmissions = tether_cx_stats(n->cx)->retransmissions;
}

tether_time_t tether_node_next_deadline(const tether_node_t *n)
{
    tether_time_t d = tether_cx_next_deadline(n->cx);
    const tether_timer_t *t = tether_heap_top(&n->timers);
    if (t && t->at < d)
        d = t->at;
    if ((t = tether_heap_top(&n->reg.expiry)) && t->at < d)
        d = t->at;
    return d;
}

size_t tether_node_out_count(const tether_node_t *n) { return tether_cx_out_count(n->cx); }
const tether_out_t *tether_node_out_get(const tether_node_t *n, size_t i)
{
    return tether_cx_out_get(n->cx, i);
}
void tether_node_out_clear(tether_node_t *n) { tether_cx_out_clear(n->cx); }
const tether_node_stats_t *tether_node_stats(const tether_node_t *n) { return &n->stats; }
size_t tether_node_pending(const tether_node_t *n) { return n->npending; }

static void device_info(const tether_device_t *d, tether_device_info_t *info);

int tether_node_device(const tether_node_t *n, const char *name, tether_device_info_t *info)
{
    const tether_device_t *d = tether_registry_find(&n->reg, name);
    if (!d)
        return TETHER_ENOTFOUND;
    device_info(d, info);
    return 0;
}

int tether_node_device_next(const tether_node_t *n, const char *cursor,
                            tether_device_info_t *info)
{
    const tether_device_t *d = tether_registry_next(&n->reg, cursor);
    if (!d)
        return TETHER_ENOTFOUND;
    device_info(d, info);
    return 0;
}

int tether_node_device_remove(tether_node_t *n, const char *name, tether_time_t now)
{
    tether_device_t *d = tether_registry_find(&n->reg, name);
    if (!d)
        return TETHER_ENOTFOUND;
    dev_remove(n, d, now);
    return 0;
}

static void device_info(const tether_device_t *d, tether_device_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->name = d->name;
    info->regid = d->regid;
    info->online = d->link_up;
    info->queue_mode = d->queue_mode;
    info->lifetime_s = d->lifetime_s;
    info->registered_at = d->registered_at;
    info->last_seen = d->last_rx;
    info->expires = d->expiry.at;
    info->addr = d->link.addr;
    info->nat_binding_min_ms = d->nat_lo_ms;
    info->nat_binding_max_ms = d->nat_hi_ms;
    info->keepalive_ms = tether_registry_keepalive_ms(d);
    info->queued = d->nqueued;
    info->links = d->links ? d->links : "";
}
