/* Relaying client requests down device tunnels (see relay.h). */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "proxy/group.h"
#include "proxy/observe.h"
#include "proxy/relay.h"
#include "proxy/relay_cache.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "util/container.h"

enum timer_tag { T_DEADLINE = 1, T_ACK };

#define req_of(l) container_of(l, relay_req_t, in_dev)

static void dev_pump(tether_node_t *n, tether_device_t *d, tether_time_t now);

/* Takes `r` out of its state's counts (and the held list). */
static void state_leave(tether_node_t *n, relay_req_t *r)
{
    tether_dev_work_t *d = r->dev->work; /* a request's device has work */
    switch (r->state) {
    case R_QUEUED:
        d->nqueued--;
        n->stats.queue_pending--;
        break;
    case R_SENT:
        d->nsent--;
        d->ninflight--;
        break;
    case R_WAITING: d->ninflight--; break;
    case R_HELD:
        d->nheld--;
        tether_list_del(&d->held, &r->in_held);
        break;
    }
}

/* Moves `r` to state `st`, keeping its device's counts. */
static void req_set_state(tether_node_t *n, relay_req_t *r, uint8_t st)
{
    tether_dev_work_t *d = r->dev->work;
    state_leave(n, r);
    r->state = st;
    switch (st) {
    case R_QUEUED:
        d->nqueued++;
        n->stats.queue_pending++;
        break;
    case R_SENT:
        d->nsent++;
        d->ninflight++;
        break;
    case R_WAITING: d->ninflight++; break;
    case R_HELD:
        d->nheld++;
        tether_list_push(&d->held, &r->in_held);
        break;
    }
}

static void req_free(tether_node_t *n, relay_req_t *r)
{
    tether_heap_disarm(&n->timers, &r->deadline);
    tether_heap_disarm(&n->timers, &r->ack_timer);
    tether_hmap_remove(&n->by_token, &r->by_token);
    if (r->state == R_SENT) /* its waiter goes with it */
        tether_cx_cancel(n->cx, &r->dev_link, r->umid);
    state_leave(n, r);
    tether_list_del(&r->dev->work->reqs, &r->in_dev);
    tether_device_work_done(r->dev);
    tether_bw_detach(r);
    tether_bounds_release(&n->bounds, r->charged, TETHER_BOUND_PENDING);
    if (r->fan)
        tether_group_detach(r);
    n->npending--;
    free(r);
}

void tether_relay_cancel(tether_node_t *n, relay_req_t *r)
{
    req_free(n, r);
}

/* Answers the client of `r` with `resp` (its type, MID and token are set
 * here) and forgets `r`. */
static void req_answer(tether_node_t *n, relay_req_t *r, tether_coap_msg_t *resp, tether_time_t now)
{
    bw_xfer_t *x = r->bw_xfer;
    if (x) { /* tether's own request: the transfer hears the answer */
        req_free(n, r);
        tether_bw_xfer_answer(n, x, resp, now);
        return;
    }
    if (r->fan) { /* a group request's member: one of its responses */
        group_fan_t *f = r->fan;
        char dev[TETHER_IDENTITY_MAX];
        snprintf(dev, sizeof dev, "%s", r->dev->name);
        req_free(n, r);
        tether_group_answer(n, f, dev, false, resp, now);
        return;
    }
    if (r->bw_upload)
        tether_bw_upload_answer(n, r->bw_upload, resp, now);
    tether_reply_to(n, &r->client, r->ctype, r->cmid, r->ctok, r->ctkl, r->acked, resp, now);
    req_free(n, r);
}

static void req_fail(tether_node_t *n, relay_req_t *r, uint8_t code, tether_time_t now)
{
    tether_coap_msg_t resp;
    if (r->fan) { /* tether's verdict, not a member's response (group.h) */
        req_free(n, r);
        return;
    }
    tether_coap_msg_init(&resp, TETHER_COAP_NON, code, 0);
    if (code == TETHER_COAP_GATEWAY_TIMEOUT)
        n->stats.relay_timeouts++;
    else if (code == TETHER_COAP_BAD_GATEWAY)
        n->stats.relay_gone++;
    req_answer(n, r, &resp, now);
}

/* Answers `r` 5.03 with a Max-Age of `retry_s` seconds (RFC 7252 §5.9.3.4:
 * the client may retry after that time). */
static void req_fail_retry(tether_node_t *n, relay_req_t *r, uint32_t retry_s, tether_time_t now)
{
    tether_coap_msg_t resp;
    uint8_t v[4];
    if (r->fan) {
        req_free(n, r);
        return;
    }
    tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 0);
    tether_reply_add_max_age(&resp, retry_s, v);
    req_answer(n, r, &resp, now);
}

/* Arms one of r's timers; the heap's room was reserved when r was
 * accepted (relay.h), so this only fails if that invariant broke, and then
 * r is answered 5.00 rather than left without a timeout. Returns false
 * when r is gone. */
static bool req_arm(tether_node_t *n, relay_req_t *r, tether_timer_t *t, tether_time_t at,
                    tether_time_t now)
{
    if (tether_heap_arm(&n->timers, t, at) == 0)
        return true;
    req_fail(n, r, TETHER_COAP_INTERNAL_ERROR, now);
    return false;
}

/* Holds `r` until the device next speaks, or fails it with 5.04 at the
 * queue TTL. */
static void req_queue(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    if (r->state != R_QUEUED) {
        req_set_state(n, r, R_QUEUED);
        n->stats.queued++;
    }
    if (!r->queued_until)
        r->queued_until = now + n->conf.queue_ttl_ms;
    if (r->queued_until <= now) {
        req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
        return;
    }
    req_arm(n, r, &r->deadline, r->queued_until, now);
}

/* The device did not get `r`, or can no longer answer it: a queue-mode
 * device gets it when it next speaks, otherwise the client gets `code`. */
static void req_lost(tether_node_t *n, relay_req_t *r, uint8_t code, tether_time_t now)
{
    if (r->dev->queue_mode)
        req_queue(n, r, now);
    else
        req_fail(n, r, code, now);
}

/* Outcome of r's upstream CON. */
static void req_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    relay_req_t *r = container_of(w, relay_req_t, w);
    tether_node_t *n = w->owner;
    tether_device_t *d = r->dev;
    if (r->state != R_SENT)
        return;
    switch (ev) {
    case TETHER_CX_ACKED: req_set_state(n, r, R_WAITING); break;
    case TETHER_CX_RESET: req_fail(n, r, TETHER_COAP_BAD_GATEWAY, now); break;
    case TETHER_CX_TIMEOUT: req_lost(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now); break;
    case TETHER_CX_LINK_DOWN: req_lost(n, r, TETHER_COAP_BAD_GATEWAY, now); break;
    }
    dev_pump(n, d, now); /* that CON is no longer outstanding */
}

void tether_relay_send(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    tether_device_t *d = r->dev;
    if (r->state == R_SENT) {
        /* Sent again before the first CON ended: that one is moot (and its
         * waiter is this request). */
        tether_cx_cancel(n->cx, &r->dev_link, r->umid);
    }
    req_set_state(n, r, R_SENT);
    r->dev_link = d->link;
    if (tether_cx_next_mid(n->cx, &d->link, now, &r->umid) < 0) {
        /* The device's MID budget for this EXCHANGE_LIFETIME is spent
         * (RFC 7252 §4.4): holding the request would only turn it into a
         * 5.04 later, so the client learns now when to try again. */
        tether_time_t at = tether_cx_mid_available_at(n->cx, &d->link, now);
        n->stats.relay_mid_exhausted++;
        req_set_state(n, r, R_WAITING); /* no CON outstanding to cancel */
        req_fail_retry(n, r, (uint32_t)((at - now + 999) / 1000), now);
        return;
    }
    r->msg[2] = (uint8_t)(r->umid >> 8);
    r->msg[3] = (uint8_t)r->umid;
    if (!req_arm(n, r, &r->deadline, now + n->conf.request_timeout_ms, now))
        return;
    if (tether_cx_send_con(n->cx, &d->link, r->msg, r->len, &r->w, now) < 0) {
        req_set_state(n, r, R_WAITING); /* nothing outstanding to cancel */
        req_fail(n, r, TETHER_COAP_INTERNAL_ERROR, now);
    }
}

static bool dev_awake(const tether_node_t *n, const tether_device_t *d, tether_time_t now)
{
    if (!d->link_up)
        return false;
    return !d->queue_mode || now < d->last_rx + n->conf.queue_awake_ms;
}

/* An NSTART slot of `d` is free (RFC 7252 §4.7; nstart 0: no limit). */
static bool nstart_free(const tether_node_t *n, const tether_device_t *d)
{
    return !n->conf.nstart || tether_device_work_peek(d)->nsent < n->conf.nstart;
}

/* Holds `r` until an NSTART slot of its device is free, or 5.04 at the
 * request timeout. */
static void req_hold(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    req_set_state(n, r, R_HELD);
    n->stats.nstart_held++;
    req_arm(n, r, &r->deadline, now + n->conf.request_timeout_ms, now);
}

/* Sends `r` if its device is awake and has an NSTART slot free, holds it
 * for a slot, or queues it for the sleeping device. */
static void req_dispatch(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    if (!dev_awake(n, r->dev, now))
        req_queue(n, r, now);
    else if (!nstart_free(n, r->dev))
        req_hold(n, r, now);
    else
        tether_relay_send(n, r, now);
}

/* Sends held requests of `d`, oldest first, into its free NSTART slots. */
static void dev_pump(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    const tether_dev_work_t *w;
    while ((w = tether_device_work_peek(d))->held.head && dev_awake(n, d, now) && nstart_free(n, d))
        tether_relay_send(n, container_of(w->held.head, relay_req_t, in_held), now);
}

void tether_relay_flush(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    tether_lnode_t *l = tether_device_work_peek(d)->reqs.head, *next;
    /* A dispatch can fail the request, and the last one frees the work. */
    for (; l && d->work && d->work->nqueued; l = next) {
        next = l->next;
        if (req_of(l)->state == R_QUEUED)
            req_dispatch(n, req_of(l), now);
    }
    dev_pump(n, d, now);
}

int tether_relay_forward_opts(const tether_node_t *n, const tether_coap_msg_t *in,
                              tether_coap_msg_t *out, bool skip_uri)
{
    for (size_t i = 0; i < in->nopts; i++) {
        const tether_coap_opt_t *o = &in->opts[i];
        if (o->num == n->conf.opt_multicast_timeout || o->num == n->conf.opt_group_etag)
            continue; /* for tether (group.h, group_cache.c), never for a device */
        switch (o->num) {
        case TETHER_COAP_OPT_URI_HOST:
        case TETHER_COAP_OPT_URI_PORT:
        case TETHER_COAP_OPT_PROXY_URI:
        case TETHER_COAP_OPT_PROXY_SCHEME:
        case TETHER_COAP_OPT_OBSERVE: /* the observe layer adds its own */ continue;
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

/* Why a new request for `d` cannot be taken now (the node-wide pending
 * table, the sleeping device's queue, the device's NSTART hold are full),
 * or NULL. */
static const char *req_refusal(tether_node_t *n, const tether_device_t *d, tether_time_t now)
{
    if (n->npending >= n->conf.max_pending)
        return "proxy busy";
    if (!dev_awake(n, d, now))
        return tether_device_work_peek(d)->nqueued >= n->conf.queue_max ? "device queue full"
                                                                        : NULL;
    if (!nstart_free(n, d) && tether_device_work_peek(d)->nheld >= n->conf.nstart_queue_max) {
        n->stats.bound_nstart++;
        return "device busy";
    }
    return NULL;
}

/* A new relayed request carrying `up` (its token is set here) for `d`,
 * owned by the node but neither sent nor queued yet; its client side is
 * the caller's to fill. TETHER_ELIMIT when req_refusal says so (*why),
 * TETHER_ENOMEM. */
static int req_new(tether_node_t *n, tether_device_t *d, tether_coap_msg_t *up, tether_time_t now,
                   relay_req_t **out, const char **why)
{
    dev_pump(n, d, now); /* slots freed where nothing pumped (tether_relay_cancel) */
    if ((*why = req_refusal(n, d, now)))
        return TETHER_ELIMIT;
    uint8_t utok[TETHER_UTOK_LEN];
    tether_node_next_token(n, utok);
    tether_coap_msg_set_token(up, utok, TETHER_UTOK_LEN);
    size_t len = tether_coap_encoded_size(up);
    tether_dev_work_t *w = tether_device_work(d);
    relay_req_t *r = w && len <= TETHER_MSG_MAX ? calloc(1, sizeof *r + len) : NULL;
    /* Room for both timers of every pending request (relay.h). */
    if (!r || tether_heap_reserve(&n->timers, 2 * (n->npending + 1)) < 0 ||
        tether_coap_encode(up, r->msg, len, &len) < 0 ||
        tether_hmap_insert(&n->by_token, &r->by_token, utok, TETHER_UTOK_LEN) < 0) {
        free(r);
        tether_device_work_done(d); /* when it was made for this one */
        return TETHER_ENOMEM;
    }
    memcpy(r->utok, utok, TETHER_UTOK_LEN);
    r->len = (uint16_t)len;
    r->w.done = req_on_cx;
    r->w.owner = n;
    tether_timer_init(&r->deadline);
    tether_timer_init(&r->ack_timer);
    r->deadline.tag = T_DEADLINE;
    r->ack_timer.tag = T_ACK;
    n->npending++;
    n->stats.requests_relayed++;
    r->state = R_WAITING; /* neither queued nor sent yet */
    r->dev = d;
    w->ninflight++;
    tether_list_push_front(&w->reqs, &r->in_dev);
    *out = r;
    return 0;
}

/* The device named by `req` (Proxy-Uri or Uri-Host) into host[cap], and
 * the path and query of a Proxy-Uri into `up` (decoded into scratch[scap],
 * which must outlive `up`); false when `req` has been answered with the
 * error. */
static bool relay_target(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                         const tether_coap_opt_t *pu, char *host, size_t cap, tether_coap_msg_t *up,
                         uint8_t *scratch, size_t scap, tether_time_t now)
{
    const tether_coap_opt_t *uh;
    if (pu) {
        tether_coap_msg_t u;
        bool secure;
        tether_coap_msg_init(&u, 0, 0, 0);
        if (tether_coap_uri_to_opts((const char *)pu->val, pu->len, &u, scratch, scap, &secure) <
            0) {
            tether_reply_code(n, link, req, TETHER_COAP_PROXYING_NOT_SUPPORTED,
                              "Proxy-Uri: only coap:// and coaps:// URIs of devices", now);
            return false;
        }
        uh = tether_coap_msg_find_opt(&u, TETHER_COAP_OPT_URI_HOST);
        if (!uh || uh->len >= cap) {
            tether_reply_code(n, link, req, TETHER_COAP_BAD_REQUEST,
                              "Proxy-Uri without a device name", now);
            return false;
        }
        memcpy(host, uh->val, uh->len);
        host[uh->len] = 0;
        for (size_t i = 0; i < u.nopts; i++)
            if (u.opts[i].num == TETHER_COAP_OPT_URI_PATH ||
                u.opts[i].num == TETHER_COAP_OPT_URI_QUERY)
                tether_coap_msg_add_opt(up, u.opts[i].num, u.opts[i].val, u.opts[i].len);
        return true;
    }
    uh = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_HOST);
    if (!uh || uh->len == 0 || uh->len >= cap) {
        tether_reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "no device named (Uri-Host)", now);
        return false;
    }
    memcpy(host, uh->val, uh->len);
    host[uh->len] = 0;
    return true;
}

void tether_relay_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    tether_coap_msg_t up;
    tether_coap_msg_init(&up, TETHER_COAP_CON, req->code, 0);
    char host[TETHER_IDENTITY_MAX];
    uint8_t scratch[1100];
    const tether_coap_opt_t *pu = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_PROXY_URI);
    if (!relay_target(n, link, req, pu, host, sizeof host, &up, scratch, sizeof scratch, now))
        return;
    /* Operators (admin API) are trusted; plain CoAP only on loopback. */
    if (link->kind == TETHER_LINK_PLAIN && !n->conf.plain_trusted) {
        n->stats.relay_denied++;
        tether_reply_code(n, link, req, TETHER_COAP_UNAUTHORIZED, "authenticate over DTLS", now);
        return;
    }
    /* A group's name where a device's would be (group.h). */
    tether_group_t *grp = tether_group_find(&n->groups, host);
    if (grp) {
        tether_group_request(n, peer, req, grp, &up, pu != NULL, now);
        return;
    }
    /* The device's own spelling of its name decides the ACL and the cache
     * key, whatever the case of the host the client wrote; the ACL is
     * still checked first, so a denied client cannot learn which devices
     * exist. */
    tether_device_t *d = tether_registry_find_host(&n->reg, host);
    if (d) { /* what snprintf("%s") wrote, without its formatting cost */
        size_t l = strnlen(d->name, sizeof host - 1);
        memcpy(host, d->name, l);
        host[l] = 0;
    }
    if (peer->identity &&
        !tether_acl_memo_allowed(&n->acl, n->creds, peer->identity, host, req->code)) {
        n->stats.relay_denied++;
        tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN, NULL, now);
        return;
    }
    /* Not registered here, or registered here but its tunnel is down: the
     * directory may name another node holding its tunnel now. */
    if ((!d || !d->link_up) && tether_xrelay_request(n, peer, req, host, now))
        return;
    if (!d) {
        n->stats.relay_unknown++;
        tether_reply_code(n, link, req, TETHER_COAP_NOT_FOUND, "unknown device", now);
        return;
    }
    if (tether_relay_forward_opts(n, req, &up, pu != NULL) < 0) {
        tether_reply_code(n, link, req, TETHER_COAP_BAD_GATEWAY, "option cannot be forwarded", now);
        return;
    }
    up.payload = req->payload;
    up.payload_len = req->payload_len;
    if (tether_observe_request(n, peer, req, d, &up, now))
        return; /* an observer now */
    uint8_t rtag[8];
    bw_upload_t *upload = NULL;
    if (tether_bw_request(n, link, req, d, host, &up, rtag, &upload, now))
        return; /* block-wise: answered, or waiting for a transfer */
    uint8_t cflags = 0, vtag[8], vtag_len = 0;
    if (n->cache &&
        tether_relay_cache_request(n, link, req, host, &up, &cflags, vtag, &vtag_len, now))
        return; /* answered from the cache */
    /* The client's share of the pending table (bounds.h): 4.29 with the
     * time by which its oldest request has surely ended (RFC 8516 §4). */
    tether_bclient_t *charged;
    int rc = tether_bounds_charge(&n->bounds, peer, TETHER_BOUND_PENDING,
                                  n->conf.max_pending_per_client, &charged);
    if (rc == TETHER_ELIMIT) {
        n->stats.bound_pending++;
        tether_reply_retry(n, link, req, TETHER_COAP_TOO_MANY_REQUESTS,
                           (n->conf.request_timeout_ms + 999) / 1000, now);
        return;
    }
    relay_req_t *r = NULL;
    const char *why = NULL;
    if (rc == 0)
        rc = req_new(n, d, &up, now, &r, &why);
    if (rc < 0)
        tether_bounds_release(&n->bounds, charged, TETHER_BOUND_PENDING);
    if (rc == TETHER_ELIMIT) {
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, why, now);
        return;
    }
    if (rc < 0) {
        tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    r->charged = charged;
    r->client = *link;
    r->cmid = req->mid;
    r->ctype = req->type;
    r->ctkl = req->tkl;
    memcpy(r->ctok, req->token, req->tkl);
    r->cflags = cflags;
    r->vtag_len = vtag_len;
    memcpy(r->vtag, vtag, vtag_len);
    if (upload)
        tether_bw_upload_attach(upload, r);
    if (req->type == TETHER_COAP_CON &&
        !req_arm(n, r, &r->ack_timer, now + n->conf.ack_delay_ms, now))
        return;
    req_dispatch(n, r, now);
}

/* A request of tether's own (no client) for `d`, attached to a Block2
 * transfer `x` or a group fan-out `f` before it is sent. */
static int relay_own(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                     bw_xfer_t *x, group_fan_t *f, tether_time_t now)
{
    relay_req_t *r;
    const char *why;
    tether_coap_msg_t m = *up;
    /* A group member request counts as its client's (bounds.h, group.h):
     * at its limit it waits for the fan-out's next pacing step. */
    tether_bclient_t *c = f ? tether_group_client(f) : NULL;
    int rc = tether_bounds_charge_more(c, TETHER_BOUND_PENDING, n->conf.max_pending_per_client);
    if (rc < 0)
        return rc;
    rc = req_new(n, d, &m, now, &r, &why);
    if (rc < 0) {
        tether_bounds_release(&n->bounds, c, TETHER_BOUND_PENDING);
        return rc;
    }
    r->charged = c;
    r->ctype = TETHER_COAP_NON; /* no client to acknowledge */
    if (x)
        tether_bw_xfer_attach(x, r);
    else
        tether_group_attach(f, r);
    req_dispatch(n, r, now);
    return 0;
}

int tether_relay_internal(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                          bw_xfer_t *x, tether_time_t now)
{
    return relay_own(n, d, up, x, NULL, now);
}

int tether_relay_group(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                       group_fan_t *f, tether_time_t now)
{
    return relay_own(n, d, up, NULL, f, now);
}

bool tether_relay_response(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *msg, tether_time_t now)
{
    if (msg->tkl != TETHER_UTOK_LEN)
        return false;
    tether_hnode_t *h = tether_hmap_find(&n->by_token, msg->token, TETHER_UTOK_LEN);
    if (!h)
        return false;
    relay_req_t *r = container_of(h, relay_req_t, by_token);
    /* Only the device the request went to may answer it. */
    if (!peer->identity || strcmp(peer->identity, r->dev->name) != 0 || r->state == R_QUEUED)
        return false;
    tether_coap_msg_t resp;
    tether_reply_device_answer(msg, &resp);
    if (!r->bw_xfer && !r->bw_upload && !r->fan && tether_bw_adopt(n, r, &resp, now)) {
        req_free(n, r); /* its client now waits for the whole representation */
        return true;
    }
    uint8_t cached[TETHER_MSG_MAX];
    tether_device_t *d = r->dev;
    if (n->cache && tether_relay_cache_response(n, r, &resp, cached, sizeof cached, now))
        return true; /* asked again */
    n->stats.relay_ok++;
    req_answer(n, r, &resp, now);
    dev_pump(n, d, now); /* a piggybacked answer ended its CON */
    return true;
}

void tether_relay_link_down(tether_node_t *n, tether_device_t *d, const tether_link_t *link,
                            tether_time_t now)
{
    /* Requests already acknowledged by the device wait for a separate
     * response that can no longer come on this session. */
    /* The last request to go frees the work: `next` is read first. */
    for (tether_lnode_t *l = tether_device_work_peek(d)->reqs.head, *next; l; l = next) {
        next = l->next;
        relay_req_t *r = req_of(l);
        if (r->state == R_WAITING && r->dev_link.kind == link->kind && r->dev_link.id == link->id)
            req_lost(n, r, TETHER_COAP_BAD_GATEWAY, now);
    }
}

void tether_relay_fail_all(tether_node_t *n, tether_device_t *d, uint8_t code, tether_time_t now)
{
    while (d->work && d->work->reqs.head)
        req_fail(n, req_of(d->work->reqs.head), code, now);
}

void tether_relay_free_all(tether_node_t *n, tether_device_t *d)
{
    while (d->work && d->work->reqs.head)
        req_free(n, req_of(d->work->reqs.head));
}

void tether_relay_tick(tether_node_t *n, tether_time_t now)
{
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&n->timers, now))) {
        relay_req_t *r;
        if (t->tag == T_DEADLINE) { /* request timeout or queue TTL */
            r = container_of(t, relay_req_t, deadline);
            tether_device_t *d = r->dev;
            req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
            dev_pump(n, d, now);
        } else {
            r = container_of(t, relay_req_t, ack_timer);
            r->acked = true;
            tether_reply_empty(n, &r->client, TETHER_COAP_ACK, r->cmid);
        }
    }
}
