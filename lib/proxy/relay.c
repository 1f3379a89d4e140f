/* Relaying client requests down device tunnels (see relay.h). */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/relay.h"
#include "proxy/relay_cache.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "util/container.h"

enum timer_tag { T_DEADLINE = 1, T_ACK };

#define req_of(l) container_of(l, relay_req_t, in_dev)

static void req_free(tether_node_t *n, relay_req_t *r)
{
    tether_heap_disarm(&n->timers, &r->deadline);
    tether_heap_disarm(&n->timers, &r->ack_timer);
    tether_hmap_remove(&n->by_token, &r->by_token);
    if (r->state == R_QUEUED) {
        r->dev->nqueued--;
        n->stats.queue_pending--;
    } else {
        r->dev->ninflight--;
        if (r->state == R_SENT) /* its waiter goes with it */
            tether_cx_cancel(n->cx, &r->dev_link, r->umid);
    }
    tether_list_del(&r->dev->reqs, &r->in_dev);
    tether_bw_detach(r);
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
    if (r->bw_upload)
        tether_bw_upload_answer(n, r->bw_upload, resp, now);
    tether_reply_to(n, &r->client, r->ctype, r->cmid, r->ctok, r->ctkl, r->acked, resp, now);
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

/* Answers `r` 5.03 with a Max-Age of `retry_s` seconds (RFC 7252 §5.9.3.4:
 * the client may retry after that time). */
static void req_fail_retry(tether_node_t *n, relay_req_t *r, uint32_t retry_s, tether_time_t now)
{
    tether_coap_msg_t resp;
    uint8_t v[4];
    tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 0);
    tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_MAX_AGE, v, tether_coap_uint_encode(retry_s, v));
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
    req_arm(n, r, &r->deadline, r->queued_until, now);
}

/* The device did not get `r`, or can no longer answer it: a queue-mode
 * device gets it when it next speaks, otherwise the client gets `code`. */
static void req_lost(tether_node_t *n, relay_req_t *r, uint8_t code, tether_time_t now)
{
    if (r->dev->rec.queue_mode)
        req_queue(n, r, now);
    else
        req_fail(n, r, code, now);
}

/* Outcome of r's upstream CON. */
static void req_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    relay_req_t *r = container_of(w, relay_req_t, w);
    tether_node_t *n = w->owner;
    if (r->state != R_SENT)
        return;
    switch (ev) {
    case TETHER_CX_ACKED: r->state = R_WAITING; break;
    case TETHER_CX_RESET: req_fail(n, r, TETHER_COAP_BAD_GATEWAY, now); break;
    case TETHER_CX_TIMEOUT: req_lost(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now); break;
    case TETHER_CX_LINK_DOWN: req_lost(n, r, TETHER_COAP_BAD_GATEWAY, now); break;
    }
}

void tether_relay_send(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    tether_device_t *d = r->dev;
    if (r->state == R_QUEUED) {
        d->nqueued--;
        d->ninflight++;
        n->stats.queue_pending--;
    } else if (r->state == R_SENT) {
        /* Sent again before the first CON ended: that one is moot (and its
         * waiter is this request). */
        tether_cx_cancel(n->cx, &r->dev_link, r->umid);
    }
    r->state = R_SENT;
    r->dev_link = d->link;
    if (tether_cx_next_mid(n->cx, &d->link, now, &r->umid) < 0) {
        /* The device's MID budget for this EXCHANGE_LIFETIME is spent
         * (RFC 7252 §4.4): holding the request would only turn it into a
         * 5.04 later, so the client learns now when to try again. */
        tether_time_t at = tether_cx_mid_available_at(n->cx, &d->link, now);
        n->stats.relay_mid_exhausted++;
        r->state = R_WAITING; /* no CON outstanding to cancel */
        req_fail_retry(n, r, (uint32_t)((at - now + 999) / 1000), now);
        return;
    }
    r->msg[2] = (uint8_t)(r->umid >> 8);
    r->msg[3] = (uint8_t)r->umid;
    if (!req_arm(n, r, &r->deadline, now + n->conf.request_timeout_ms, now))
        return;
    if (tether_cx_send_con(n->cx, &d->link, r->msg, r->len, &r->w, now) < 0) {
        r->state = R_WAITING; /* nothing outstanding to cancel */
        req_fail(n, r, TETHER_COAP_INTERNAL_ERROR, now);
    }
}

static bool dev_awake(const tether_node_t *n, const tether_device_t *d, tether_time_t now)
{
    if (!d->link_up)
        return false;
    return !d->rec.queue_mode || now < d->last_rx + n->conf.queue_awake_ms;
}

void tether_relay_flush(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    tether_lnode_t *l = d->reqs.head, *next;
    for (; l && d->nqueued; l = next) {
        next = l->next;
        if (req_of(l)->state == R_QUEUED)
            tether_relay_send(n, req_of(l), now);
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

/* A new relayed request carrying `up` (its token is set here) for `d`,
 * owned by the node but neither sent nor queued yet; its client side is
 * the caller's to fill. TETHER_ELIMIT at max_pending or when a sleeping
 * device's queue is full, TETHER_ENOMEM. */
static int req_new(tether_node_t *n, tether_device_t *d, tether_coap_msg_t *up, tether_time_t now,
                   relay_req_t **out)
{
    if (n->npending >= n->conf.max_pending)
        return TETHER_ELIMIT;
    if (!dev_awake(n, d, now) && d->nqueued >= n->conf.queue_max)
        return TETHER_ELIMIT;
    uint8_t utok[TETHER_UTOK_LEN];
    tether_node_next_token(n, utok);
    tether_coap_msg_set_token(up, utok, TETHER_UTOK_LEN);
    size_t len = tether_coap_encoded_size(up);
    relay_req_t *r = len <= TETHER_MSG_MAX ? calloc(1, sizeof *r + len) : NULL;
    /* Room for both timers of every pending request (relay.h). */
    if (!r || tether_heap_reserve(&n->timers, 2 * (n->npending + 1)) < 0 ||
        tether_coap_encode(up, r->msg, len, &len) < 0 ||
        tether_hmap_insert(&n->by_token, &r->by_token, utok, TETHER_UTOK_LEN) < 0) {
        free(r);
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
    d->ninflight++;
    tether_list_push_front(&d->reqs, &r->in_dev);
    *out = r;
    return 0;
}

/* Sends `r`, or queues it for its sleeping device. */
static void req_start(tether_node_t *n, relay_req_t *r, tether_time_t now)
{
    if (dev_awake(n, r->dev, now))
        tether_relay_send(n, r, now);
    else
        req_queue(n, r, now);
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
    /* The device's own spelling of its name decides the ACL and the cache
     * key, whatever the case of the host the client wrote; the ACL is
     * still checked first, so a denied client cannot learn which devices
     * exist. */
    tether_device_t *d = tether_registry_find_host(&n->reg, host);
    if (d)
        snprintf(host, sizeof host, "%s", d->rec.name);
    if (peer->identity && !tether_creds_allowed(n->creds, peer->identity, host, req->code)) {
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
    if (copy_forward_opts(n, req, &up, pu != NULL) < 0) {
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
    relay_req_t *r;
    int rc = req_new(n, d, &up, now, &r);
    if (rc == TETHER_ELIMIT) {
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE,
                          n->npending >= n->conf.max_pending ? "proxy busy" : "device queue full",
                          now);
        return;
    }
    if (rc < 0) {
        tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
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
    req_start(n, r, now);
}

int tether_relay_internal(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                          bw_xfer_t *x, tether_time_t now)
{
    relay_req_t *r;
    tether_coap_msg_t m = *up;
    int rc = req_new(n, d, &m, now, &r);
    if (rc < 0)
        return rc;
    r->ctype = TETHER_COAP_NON; /* no client to acknowledge */
    tether_bw_xfer_attach(x, r);
    req_start(n, r, now);
    return 0;
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
    if (!peer->identity || strcmp(peer->identity, r->dev->rec.name) != 0 || r->state == R_QUEUED)
        return false;
    tether_coap_msg_t resp;
    tether_reply_device_answer(msg, &resp);
    if (!r->bw_xfer && !r->bw_upload && tether_bw_adopt(n, r, &resp, now)) {
        req_free(n, r); /* its client now waits for the whole representation */
        return true;
    }
    uint8_t cached[TETHER_MSG_MAX];
    if (n->cache && tether_relay_cache_response(n, r, &resp, cached, sizeof cached, now))
        return true; /* asked again */
    n->stats.relay_ok++;
    req_answer(n, r, &resp, now);
    return true;
}

void tether_relay_link_down(tether_node_t *n, tether_device_t *d, const tether_link_t *link,
                            tether_time_t now)
{
    /* Requests already acknowledged by the device wait for a separate
     * response that can no longer come on this session. */
    for (tether_lnode_t *l = d->reqs.head, *next; l; l = next) {
        next = l->next;
        relay_req_t *r = req_of(l);
        if (r->state == R_WAITING && r->dev_link.kind == link->kind && r->dev_link.id == link->id)
            req_lost(n, r, TETHER_COAP_BAD_GATEWAY, now);
    }
}

void tether_relay_fail_all(tether_node_t *n, tether_device_t *d, uint8_t code, tether_time_t now)
{
    while (d->reqs.head)
        req_fail(n, req_of(d->reqs.head), code, now);
}

void tether_relay_free_all(tether_node_t *n, tether_device_t *d)
{
    while (d->reqs.head)
        req_free(n, req_of(d->reqs.head));
}

void tether_relay_tick(tether_node_t *n, tether_time_t now)
{
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&n->timers, now))) {
        relay_req_t *r;
        if (t->tag == T_DEADLINE) { /* request timeout or queue TTL */
            r = container_of(t, relay_req_t, deadline);
            req_fail(n, r, TETHER_COAP_GATEWAY_TIMEOUT, now);
        } else {
            r = container_of(t, relay_req_t, ack_timer);
            r->acked = true;
            tether_reply_empty(n, &r->client, TETHER_COAP_ACK, r->cmid);
        }
    }
}
