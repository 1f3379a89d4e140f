/* Client requests relayed to other nodes, the channel outbox and the
 * timers (xrelay.h). Aggregate observations are in xobserve.c, the
 * device node's side in xserve.c. */
#include <stdlib.h>
#include <string.h>

#include "proxy/reply.h"
#include "proxy/xrelay_int.h"
#include "tether/cluster.h"
#include "util/vec.h"

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

/* ---- the outbox for the channel -------------------------------------------- */
void xr_out(tether_node_t *n, uint8_t to, uint8_t type, const uint8_t *hdr, size_t hl,
            const uint8_t *body, size_t bl)
{
    struct tether_xrelay *x = XR(n);
    if (hl + bl > TETHER_XMSG_MAX)
        return;
    /* a burst beyond 4096 messages is dropped, like UDP */
    tether_xmsg_t *o = tether_vec_grow(x->out, &x->out_cap, x->nout + 1, sizeof *o, 8, 4096);
    if (!o)
        return;
    x->out = o;
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

bool xr_node_alive(const tether_node_t *n, uint8_t id, tether_time_t now)
{
    return n->alive && n->alive(n->alive_user, id, now);
}

/* ---- A: requests relayed to another node ----------------------------------- */
void xr_req_free(tether_node_t *n, xr_req_t *r)
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

void xr_xend(tether_node_t *n, const xr_req_t *r)
{
    uint8_t h[4];
    tether_be32_put(h, r->id);
    xr_out(n, r->node, TETHER_CLUSTER_XEND, h, sizeof h, NULL, 0);
}

/* Answers a plain relayed request's client and forgets it. */
static void req_answer(tether_node_t *n, xr_req_t *r, tether_coap_msg_t *resp, tether_time_t now)
{
    tether_reply_to(n, &r->client, r->ctype, r->cmid, r->ctok, r->ctkl, r->acked, resp, now);
    xr_req_free(n, r);
}

void xr_code_msg(tether_coap_msg_t *m, uint8_t code)
{
    tether_coap_msg_init(m, TETHER_COAP_NON, code, 0);
}

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
bool xr_directory_find(tether_node_t *n, const char *host, tether_time_t now, lookup_t *l)
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
    return xr_directory_find(n, host, now, l) && l->node != n->conf.node_id;
}

/* A new request to node `to` with the XREQ for `msg`; NULL at the bound.
 * An observation's registration (flags F_OBSERVE) carries the request's
 * own id as its token (tok[4]), not any client's. */
xr_req_t *xr_req_new_tok(tether_node_t *n, uint8_t to, uint8_t flags, tether_coap_msg_t *msg,
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
    tether_be32_put(r->msg, r->id);
    r->msg[4] = flags;
    if (flags & F_OBSERVE) {
        tether_be32_put(tok, r->id);
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
    xr_out(n, to, TETHER_CLUSTER_XREQ, r->msg, r->len, NULL, 0);
    return r;
}

static xr_req_t *req_new(tether_node_t *n, uint8_t to, tether_coap_msg_t *msg, bool queue_mode,
                         tether_time_t now)
{
    uint8_t tok[4];
    return xr_req_new_tok(n, to, 0, msg, queue_mode, tok, now);
}

/* The request as the device node gets it: the client's, Observe and the
 * target options kept (Uri-Host names the device there). */
int xr_fwd_msg(const tether_coap_msg_t *req, const char *host, tether_coap_msg_t *out)
{
    *out = *req;
    tether_coap_msg_del_opt(out, TETHER_COAP_OPT_URI_HOST);
    if (!tether_coap_msg_find_opt(out, TETHER_COAP_OPT_PROXY_URI) &&
        tether_coap_msg_add_opt(out, TETHER_COAP_OPT_URI_HOST, host, strlen(host)) < 0)
        return TETHER_ENOSPC;
    return 0;
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
    if (!xr_node_alive(n, l.node, now)) {
        n->stats.relay_gone++;
        n->stats.xrelay_node_down++;
        tether_reply_code(n, link, req, TETHER_COAP_BAD_GATEWAY, "device's node unreachable", now);
        return true;
    }
    if (xr_observe_request(n, peer, req, host, l.node, l.queue_mode, now))
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
    if (rc < 0 || xr_fwd_msg(&plain, host, &fwd) < 0 ||
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
    if (!directory_node(n, host, now, &l) || !xr_node_alive(n, l.node, now))
        return TETHER_ENOTFOUND;
    if (xr_fwd_msg(up, host, &fwd) < 0)
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
        xr_xend(n, r); /* B's slot goes now, not at its timeout */
        xr_req_free(n, r);
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
        if (!xr_verdict(up.code)) /* the device node's own verdict goes nowhere */
            tether_group_answer(n, r->fan, r->member, true, &resp, now);
        xr_req_free(n, r);
        return;
    }
    if (!a) {
        n->stats.relay_ok++;
        tether_reply_device_answer(&up, &resp);
        req_answer(n, r, &resp, now);
        return;
    }
    xr_agg_answer(n, r, &up, msg, len, now);
}

void tether_node_xinput(tether_node_t *n, uint8_t from, uint8_t type, const uint8_t *p, size_t len,
                        tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    n->stats.xrelay_received++;
    if (len < 4 || !from || from == n->conf.node_id)
        return;
    if (type == TETHER_CLUSTER_XREQ) {
        xr_on_xreq(n, from, p, len, now);
    } else if (type == TETHER_CLUSTER_XRSP) {
        tether_hnode_t *h = tether_hmap_find(&x->by_id, p, 4);
        xr_req_t *r = h ? container_of(h, xr_req_t, by_id) : NULL;
        if (!r || r->node != from) { /* nobody waits (any more): end it at B */
            xr_xend(n, &(xr_req_t){.id = tether_be32_get(p), .node = from});
            return;
        }
        on_xrsp(n, r, p + 4, len - 4, now);
    } else if (type == TETHER_CLUSTER_XEND) {
        xr_on_xend(n, from, p, now);
    }
}

/* ---- timers ---------------------------------------------------------------- */
static void sweep(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    xr_slots_sweep(n, now);
    xr_aggs_sweep(n, now);
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
            xr_code_msg(&resp, TETHER_COAP_GATEWAY_TIMEOUT);
            n->stats.relay_timeouts++;
            xr_xend(n, r);
            if (r->fan) { /* tether's verdict: not a member's response */
                xr_req_free(n, r);
            } else if (r->agg) {
                xr_agg_t *a = r->agg;
                a->reg = NULL;
                xr_req_free(n, r);
                xr_agg_fail(n, a, &resp, false, now);
            } else {
                req_answer(n, r, &resp, now);
            }
        } else if (t->tag == T_RETRY) {
            xr_req_t *r = container_of(t, xr_req_t, retry);
            xr_out(n, r->node, TETHER_CLUSTER_XREQ, r->msg, r->len, NULL, 0);
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
    xr_aggs_free(n);
    /* Plain requests: the by_id map is their only owner. */
    while (tether_heap_top(&x->timers)) {
        tether_timer_t *t = tether_heap_top(&x->timers);
        xr_req_t *r = t->tag == T_DEADLINE ? container_of(t, xr_req_t, deadline)
                      : t->tag == T_RETRY  ? container_of(t, xr_req_t, retry)
                                           : container_of(t, xr_req_t, ack);
        xr_req_free(n, r);
    }
    xr_slots_free(n);
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
