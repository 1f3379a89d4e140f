/* Node A's aggregate observations of remote resources (xrelay.h): one
 * XREQ registration per resource, its notifications fanned out to this
 * node's observers, and the aggregate following its device when the
 * device node goes silent (SPEC S5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/obsstore.h"
#include "proxy/registry.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/xrelay_int.h"

/* Frees an observer taken off its aggregate's list. */
static void obsr_free(tether_node_t *n, xr_obsr_t *o)
{
    tether_bounds_release(&n->bounds, o->charged, TETHER_BOUND_OBSERVERS);
    free(o);
}

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
    tether_be32_put(utok, a->reg ? a->reg->id : 0);
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
        xr_req_free(n, a->reg);
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
            xr_xend(n, a->reg);
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
void xr_agg_fail(tether_node_t *n, xr_agg_t *a, tether_coap_msg_t *resp, tether_time_t now)
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
bool xr_observe_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                        const char *host, uint8_t to, bool queue_mode, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    const tether_link_t *link = &peer->link;
    uint32_t ov;
    if (!tether_observe_option(req, link, &ov))
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
        if (!(a = calloc(1, sizeof *a)) || xr_fwd_msg(req, host, &fwd) < 0) {
            free(a);
            obsr_free(n, o);
            tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
            return true;
        }
        uint8_t own[4];
        a->reg = xr_req_new_tok(n, to, F_OBSERVE, &fwd, queue_mode, own, now);
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

void xr_agg_answer(tether_node_t *n, xr_req_t *r, const tether_coap_msg_t *up, const uint8_t *msg,
                   size_t len, tether_time_t now)
{
    xr_agg_t *a = r->agg;
    tether_coap_msg_t resp;
    uint32_t ov;
    if (!xr_success(up->code) || tether_coap_msg_get_uint(up, TETHER_COAP_OPT_OBSERVE, &ov) < 0) {
        /* Not a notification: the observation ended at B (RFC 7641 §3.2). */
        tether_reply_device_answer(up, &resp);
        a->reg = NULL; /* B's slot is done; nothing to end there */
        xr_req_free(n, r);
        xr_agg_fail(n, a, &resp, now);
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
    xr_req_t *r = xr_req_new_tok(n, to, F_OBSERVE, &m, queue_mode, own, now);
    if (!r)
        return false;
    r->agg = a;
    xr_req_free(n, old); /* no XEND: its node is gone */
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
    if (xr_directory_find(n, a->device, now, &l)) {
        if (l.node == n->conf.node_id) {
            const tether_device_t *d = tether_registry_find_host(&n->reg, a->device);
            if (d && d->link_up) {
                agg_localize(n, a, now);
                return;
            }
        } else if (l.node != a->reg->node && xr_node_alive(n, l.node, now) &&
                   agg_move(n, a, l.node, l.queue_mode, now)) {
            return;
        }
    }
    if (now - a->lost_at < REHOME_GRACE_MS)
        return;
    tether_coap_msg_t resp;
    xr_code_msg(&resp, TETHER_COAP_BAD_GATEWAY);
    n->stats.relay_gone++;
    xr_agg_fail(n, a, &resp, now);
}

void xr_aggs_sweep(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    /* A: an aggregate whose device node went silent follows its device
     * to the adopter (agg_rehome). */
    for (tether_lnode_t *l = x->aggs.head, *ln; l; l = ln) {
        ln = l->next;
        xr_agg_t *a = container_of(l, xr_agg_t, all);
        if (a->reg && !xr_node_alive(n, a->reg->node, now))
            agg_rehome(n, a, now);
        else if (a->reg)
            a->lost_at = 0;
    }
}

void xr_aggs_free(tether_node_t *n)
{
    struct tether_xrelay *x = XR(n);
    while (x->aggs.head) {
        xr_agg_t *a = container_of(x->aggs.head, xr_agg_t, all);
        while (a->observers.head) {
            xr_obsr_t *o = container_of(a->observers.head, xr_obsr_t, in_agg);
            tether_list_del(&a->observers, &o->in_agg);
            obsr_free(n, o);
        }
        if (a->reg)
            xr_req_free(n, a->reg);
        tether_hmap_remove(&x->by_key, &a->by_key);
        tether_list_del(&x->aggs, &a->all);
        free(a);
    }
}
