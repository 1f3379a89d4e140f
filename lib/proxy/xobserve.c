/* Node A's aggregate observations of remote resources (xrelay.h): one
 * XREQ registration per resource, its notifications fanned out to this
 * node's observers, and the aggregate following its device when the
 * device node goes silent (SPEC S5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/group.h"
#include "proxy/observe.h"
#include "proxy/obsstore.h"
#include "proxy/registry.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/xrelay_int.h"

/* Frees an observer taken off its aggregate's list, stopping its
 * outstanding confirmable notification; a group member leaves its group
 * observation (which may end it, group.h). */
static void obsr_free(tether_node_t *n, xr_obsr_t *o)
{
    group_fan_t *f = o->group;
    if (o->con_pending)
        tether_cx_cancel(n->cx, &o->link, o->con_mid);
    if (f)
        tether_list_del(tether_group_xobs(f), &o->in_group);
    tether_bounds_release(&n->bounds, o->charged, TETHER_BOUND_OBSERVERS);
    free(o);
    if (f)
        tether_group_xobs_left(n, f);
}

static void obsr_leave(tether_node_t *n, xr_agg_t *a, xr_obsr_t *o, tether_time_t now);

/* The client no longer wants `o`'s notifications (a RST, or a
 * confirmable one unacknowledged, RFC 7641 §4.5): it leaves; a group
 * member ends its whole group observation (draft §3.5.2, as observe.c). */
static void obsr_gone(tether_node_t *n, xr_obsr_t *o, tether_time_t now)
{
    if (o->group)
        tether_group_obs_cancel(n, o->group, now);
    else
        obsr_leave(n, o->agg, o, now);
}

static void obsr_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    xr_obsr_t *o = container_of(w, xr_obsr_t, con_w);
    if (!o->con_pending)
        return;
    o->con_pending = false;
    if (ev != TETHER_CX_ACKED)
        obsr_gone(w->owner, o, now);
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
        /* group members are not published (group.h: an adopter would
         * lose the group's Reply-From) */
        if (!o->group)
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
 * registration, RFC 7252 §5.2) or a notification with our Observe (and a
 * group member's Reply-From), confirmable when `o` had none for
 * TETHER_OBS_CON_INTERVAL_MS or its group observation checks its client,
 * unless one is still outstanding (as observe.c). */
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
    uint8_t type, buf[TETHER_MSG_MAX], rf[TETHER_REPLY_FROM_MAX];
    size_t len;
    bool check = o->group && tether_group_obs_check_due(o->group, TETHER_OBS_CON_INTERVAL_MS, now);
    bool con = (check || now - o->last_con >= TETHER_OBS_CON_INTERVAL_MS) && !o->con_pending;
    tether_reply_head(n, &o->link, con ? TETHER_COAP_CON : TETHER_COAP_NON, 0, true, &type,
                      &resp.mid, now);
    resp.type = type;
    if ((o->group && tether_coap_msg_add_opt(&resp, n->conf.opt_reply_from, rf,
                                             tether_group_reply_from(a->device, rf)) < 0) ||
        tether_coap_msg_set_token(&resp, o->tok, o->tkl) < 0 ||
        tether_coap_encode(&resp, buf, sizeof buf, &len) < 0)
        return;
    if (con) {
        if (tether_cx_send_con(n->cx, &o->link, buf, len, &o->con_w, now) < 0)
            return;
        o->con_pending = true;
        o->con_mid = resp.mid;
        o->last_con = now;
        if (o->group)
            tether_group_obs_checked(o->group, now);
    } else {
        tether_cx_emit(n->cx, &o->link, buf, len);
    }
    o->last_mid = resp.mid;
    o->notified = true;
    n->stats.observe_notifications_sent++;
}

void xr_agg_fail(tether_node_t *n, xr_agg_t *a, tether_coap_msg_t *resp, bool device,
                 tether_time_t now)
{
    for (tether_lnode_t *l = a->observers.head; l; l = l->next) {
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        tether_coap_msg_t m = *resp;
        uint8_t rf[TETHER_REPLY_FROM_MAX];
        if (o->group &&
            (!device || tether_coap_msg_add_opt(&m, n->conf.opt_reply_from, rf,
                                                tether_group_reply_from(a->device, rf)) < 0))
            continue; /* the member's final response carries Reply-From (group.h) */
        tether_reply_to(n, &o->link, o->answered ? TETHER_COAP_NON : o->ctype, o->cmid, o->tok,
                        o->tkl, o->answered || o->acked, &m, now);
    }
    agg_free(n, a, now);
}

/* The direct observer of `a` with that link and token (a group's member
 * is not one: its token is the group request's). */
static xr_obsr_t *obsr_find(xr_agg_t *a, const tether_link_t *link, const uint8_t *tok, size_t tkl)
{
    for (tether_lnode_t *l = a->observers.head; l; l = l->next) {
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        if (!o->group && o->tkl == tkl && memcmp(o->tok, tok, tkl) == 0 &&
            tether_link_equal(&o->link, link))
            return o;
    }
    return NULL;
}

/* A new aggregate of `host`'s resource with cache key `k` (digest `dg`),
 * registered at node `to` with `req` (its Observe: 0 kept, Uri-Host set
 * here). 0; TETHER_ELIMIT (xrelay_max), TETHER_ENOMEM or TETHER_ENOSPC. */
static int agg_new(tether_node_t *n, const tether_cache_key_t *k, uint64_t dg,
                   const tether_coap_msg_t *req, const char *host, uint8_t to, bool queue_mode,
                   xr_agg_t **out, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    tether_coap_msg_t fwd;
    int rc = xr_fwd_msg(req, host, &fwd);
    if (rc < 0)
        return rc;
    xr_agg_t *a = calloc(1, sizeof *a);
    if (!a)
        return TETHER_ENOMEM;
    uint8_t own[4];
    a->reg = xr_req_new_tok(n, to, F_OBSERVE, &fwd, queue_mode, own, now);
    if (!a->reg) {
        free(a);
        return TETHER_ELIMIT;
    }
    a->reg->agg = a;
    snprintf(a->device, sizeof a->device, "%s", host);
    a->key_len = k->len;
    memcpy(a->key, k->buf, k->len);
    tether_hmap_insert(&x->by_key, &a->by_key, &dg, sizeof dg);
    tether_list_push(&x->aggs, &a->all);
    if (x->next_sweep == UINT64_MAX)
        x->next_sweep = now + SWEEP_MS;
    *out = a;
    return 0;
}

/* The aggregate with cache key `k` (digest `dg`); *collision when another
 * key has that digest (the request is then relayed without sharing). */
static xr_agg_t *agg_find(tether_node_t *n, const tether_cache_key_t *k, uint64_t dg,
                          bool *collision)
{
    tether_hnode_t *h = tether_hmap_find(&XR(n)->by_key, &dg, sizeof dg);
    xr_agg_t *a = h ? container_of(h, xr_agg_t, by_key) : NULL;
    *collision = a && (a->key_len != k->len || memcmp(a->key, k->buf, k->len) != 0);
    return *collision ? NULL : a;
}

/* A new observer `o` of `a`: its waiter, and no confirmable notification
 * due before TETHER_OBS_CON_INTERVAL_MS. */
static void obsr_init(tether_node_t *n, xr_agg_t *a, xr_obsr_t *o, tether_time_t now)
{
    o->agg = a;
    o->last_con = now;
    o->con_w.done = obsr_on_cx;
    o->con_w.owner = n;
}

static void agg_add(tether_node_t *n, xr_agg_t *a, xr_obsr_t *o)
{
    tether_list_push(&a->observers, &o->in_agg);
    a->nobservers++;
    n->xobservers++;
    agg_sync(n);
}

/* The observe part of a remote request (xrelay.h): true when taken. */
bool xr_observe_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                        const char *host, uint8_t to, bool queue_mode, tether_time_t now)
{
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
    bool collision;
    xr_agg_t *a = agg_find(n, &k, dg, &collision);
    if (ov != 0) { /* deregistration (RFC 7641 §3.6): then a plain request */
        xr_obsr_t *o = a ? obsr_find(a, link, req->token, req->tkl) : NULL;
        if (o)
            obsr_leave(n, a, o, now);
        return false;
    }
    if (collision)
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
    if (!a && (rc = agg_new(n, &k, dg, req, host, to, queue_mode, &a, now)) < 0) {
        obsr_free(n, o);
        if (rc == TETHER_ELIMIT)
            tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
        else
            tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return true;
    }
    obsr_init(n, a, o, now);
    o->link = *link;
    o->role = peer->role;
    snprintf(o->identity, sizeof o->identity, "%s", peer->identity ? peer->identity : "");
    o->tkl = req->tkl;
    memcpy(o->tok, req->token, req->tkl);
    o->cmid = req->mid;
    o->ctype = req->type;
    agg_add(n, a, o);
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
        xr_agg_fail(n, a, &resp, !xr_verdict(up->code), now);
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

int tether_xrelay_group_observe(tether_node_t *n, const tether_coap_msg_t *up, const char *host,
                                group_fan_t *f, tether_time_t now)
{
    lookup_t l;
    if (!xr_directory_find(n, host, now, &l) || l.node == n->conf.node_id ||
        !xr_node_alive(n, l.node, now))
        return TETHER_ENOTFOUND;
    tether_cache_key_t k;
    if (!tether_cache_request_cacheable(up) || tether_cache_key(&k, host, up) < 0)
        return TETHER_EINVAL;
    uint64_t dg = tether_cache_key_digest(&k, 0);
    bool collision;
    xr_agg_t *a = agg_find(n, &k, dg, &collision);
    if (collision)
        return TETHER_EINVAL;
    if (n->obs.nobservers + n->xobservers >= n->conf.max_observers ||
        (a && a->nobservers >= n->conf.max_observers_per_resource)) {
        n->stats.observe_rejected++;
        return TETHER_ENOMEM; /* skipped, as a member here at the bound */
    }
    /* The group's client is charged one observer per member (bounds.h),
     * as for the members on this node (group.c). */
    tether_bclient_t *c = tether_group_client(f);
    if (tether_bounds_charge_more(c, TETHER_BOUND_OBSERVERS, n->conf.max_observers_per_client) <
        0) {
        n->stats.bound_observers++;
        return TETHER_ENOMEM;
    }
    xr_obsr_t *o = calloc(1, sizeof *o);
    int rc = o ? 0 : TETHER_ENOMEM;
    if (o && !a) {
        tether_coap_msg_t reg = *up; /* the registration: Observe: 0 (RFC 7641 §3.1) */
        rc = tether_coap_msg_add_opt(&reg, TETHER_COAP_OPT_OBSERVE, "", 0);
        if (rc == 0)
            rc = agg_new(n, &k, dg, &reg, host, l.node, l.queue_mode, &a, now);
    }
    if (rc < 0) {
        free(o);
        tether_bounds_release(&n->bounds, c, TETHER_BOUND_OBSERVERS);
        return rc == TETHER_ELIMIT ? TETHER_ELIMIT : TETHER_ENOMEM;
    }
    obsr_init(n, a, o, now);
    o->charged = c;
    const uint8_t *tok;
    tether_group_client_of(f, &o->link, &tok, &o->tkl);
    memcpy(o->tok, tok, o->tkl);
    o->answered = true; /* the group's request is answered by the group (group.c) */
    o->acked = true;
    o->group = f;
    tether_list_push(tether_group_xobs(f), &o->in_group);
    agg_add(n, a, o);
    n->stats.requests_relayed++;
    if (a->last_len) /* the shared observation has a state: it goes now */
        obsr_send(n, a, o, now);
    return 0;
}

void tether_xrelay_group_leave(tether_node_t *n, tether_list_t *xobs, bool silent,
                               tether_time_t now)
{
    for (tether_lnode_t *l = xobs->head, *next; l; l = next) {
        next = l->next;
        xr_obsr_t *o = container_of(l, xr_obsr_t, in_group);
        if (!silent || !o->notified)
            obsr_leave(n, o->agg, o, now); /* the last observer of `a` sends XEND */
    }
}

void tether_xrelay_group_detach(tether_list_t *xobs)
{
    while (xobs->head) {
        xr_obsr_t *o = container_of(xobs->head, xr_obsr_t, in_group);
        tether_list_del(xobs, &o->in_group);
        o->group = NULL;
    }
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
            if (o->notified && o->last_mid == mid && tether_link_equal(&o->link, link)) {
                obsr_gone(n, o, now);
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
    for (tether_lnode_t *l = a->observers.head; v && l; l = l->next) {
        const xr_obsr_t *o = container_of(l, xr_obsr_t, in_agg);
        if (!o->group) /* a group's member leaves (its fan-out is paced, not re-run) */
            v[k++] = *o;
    }
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
    xr_agg_fail(n, a, &resp, false, now);
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
            if (o->group) { /* teardown: the groups are freed next, not ended here */
                tether_list_del(tether_group_xobs(o->group), &o->in_group);
                o->group = NULL;
            }
            obsr_free(n, o);
        }
        if (a->reg)
            xr_req_free(n, a->reg);
        tether_hmap_remove(&x->by_key, &a->by_key);
        tether_list_del(&x->aggs, &a->all);
        free(a);
    }
}
