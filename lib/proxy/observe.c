/* Observe through the proxy (see observe.h). */
#include <stdlib.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/obsstore.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "util/container.h"

static tether_device_t *obs_dev(const tether_observation_t *o)
{
    return container_of(o->dev_list, tether_dev_work_t, observations)->dev;
}

static void obs_up_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now);
static void ob_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now);

/* Adds the Reply-From naming `o`'s device to `m` when `ob` is a group
 * observation's member (draft-ietf-core-groupcomm-proxy-07 §3.5.2: every
 * notification carries it, the final non-2.xx one too). rf holds the
 * value while `m` is encoded. 0, or TETHER_ENOSPC. */
static int ob_mark(const tether_node_t *n, const tether_observation_t *o,
                   const tether_observer_t *ob, tether_coap_msg_t *m,
                   uint8_t rf[TETHER_REPLY_FROM_MAX])
{
    if (!ob->group)
        return 0;
    return tether_coap_msg_add_opt(m, n->conf.opt_reply_from, rf,
                                   tether_group_reply_from(obs_dev(o)->name, rf));
}

/* tether_obs_encode, with the Reply-From of a group observation's member. */
static int ob_encode(const tether_node_t *n, const tether_observation_t *o,
                     const tether_observer_t *ob, uint8_t type, uint16_t mid, uint8_t *buf,
                     size_t cap, size_t *len)
{
    int rc = tether_obs_encode(o, ob, type, mid, buf, cap, len);
    if (rc < 0 || !ob->group)
        return rc;
    uint8_t plain[TETHER_MSG_MAX], rf[TETHER_REPLY_FROM_MAX];
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    if (*len > sizeof plain)
        return TETHER_ENOSPC;
    memcpy(plain, buf, *len);
    if (tether_coap_parse(&m, plain, *len, &perr) < 0)
        return TETHER_EPROTO; /* cannot happen: tether encoded it */
    if ((rc = ob_mark(n, o, ob, &m, rf)) < 0)
        return rc;
    return tether_coap_encode(&m, buf, cap, len);
}

static void obs_sync(tether_node_t *n)
{
    n->stats.observe_device_observations = n->obs.nobservations;
    n->stats.observe_observers = n->obs.nobservers + n->xobservers; /* + remote (xobserve.c) */
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
    o->up_seen = false; /* a new registration numbers its notifications anew */
    o->req[2] = (uint8_t)(o->up_mid >> 8);
    o->req[3] = (uint8_t)o->up_mid;
    if (tether_cx_send_con(n->cx, &d->link, o->req, o->req_len, &o->up_w, now) == 0) {
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
        tether_cx_send_con(n->cx, &d->link, buf, len, NULL, now);
}

/* Writes this node's own client observers of `o` to the observe registry
 * (obsstore.h): observers on cluster links are other nodes' aggregates,
 * which those nodes write themselves. */
static void obs_publish(tether_node_t *n, const tether_observation_t *o, tether_time_t now)
{
    tether_store_observer_t *v = o->nobservers ? calloc(o->nobservers, sizeof *v) : NULL;
    size_t k = 0;
    if (o->nobservers && !v)
        return;
    for (tether_lnode_t *l = o->observers.head; l; l = l->next) {
        const tether_observer_t *ob = container_of(l, tether_observer_t, in_obs);
        /* A group observation's members are not published: another node
         * taking them over would serve them as plain observers, without
         * the group's Reply-From (group.h). */
        if (ob->link.kind != TETHER_LINK_CLUSTER && !ob->group)
            tether_obsstore_observer(n, &ob->link, ob->tok, ob->tkl, &v[k++]);
    }
    char dev[TETHER_IDENTITY_MAX];
    size_t dl = o->key_len && o->key[0] < sizeof dev && o->key[0] < o->key_len ? o->key[0] : 0;
    memcpy(dev, o->key + 1, dl);
    dev[dl] = 0;
    tether_obsstore_write(n, o->key, o->key_len, dev, o->utok, sizeof o->utok, v, k, now);
    free(v);
}

/* Removes `ob`, stopping its outstanding confirmable notification; its
 * client is charged one observer less (bounds.h). */
static void ob_drop(tether_node_t *n, tether_observer_t *ob)
{
    if (ob->con_pending)
        tether_cx_cancel(n->cx, &ob->link, ob->con_mid);
    if (ob->group)
        tether_group_obs_left(n, ob);
    tether_bounds_release(&n->bounds, ob->charged, TETHER_BOUND_OBSERVERS);
    tether_obs_remove_observer(&n->obs, ob);
}

/* Frees observation `o` (its observers are gone); its device counts one
 * observation less. */
static void obs_destroy(tether_node_t *n, tether_observation_t *o)
{
    tether_device_t *d = obs_dev(o);
    d->work->nobservations--;
    tether_obs_destroy(&n->obs, o);
    tether_device_work_done(d);
}

/* Removes `ob`; the last observer to leave cancels and frees the device
 * side too. */
void tether_observe_leave(tether_node_t *n, tether_observer_t *ob, tether_time_t now)
{
    tether_observation_t *o = ob->obs;
    bool local = ob->link.kind != TETHER_LINK_CLUSTER && !ob->group;
    ob_drop(n, ob);
    if (local)
        obs_publish(n, o, now);
    if (!o->nobservers) {
        obs_cancel_up(n, o, now);
        obs_destroy(n, o);
    }
    obs_sync(n);
}

/* Ends `o`: every observer gets `resp` (a final response without Observe,
 * its token and MID set here) and is removed; `o` is freed. The device side
 * is not cancelled: it ended it, or is gone. `device`: resp is the
 * device's; tether's own verdicts are not a group member's response and
 * do not go to group observations (group.h). */
static void obs_end(tether_node_t *n, tether_observation_t *o, tether_coap_msg_t *resp, bool device,
                    tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX], rf[TETHER_REPLY_FROM_MAX];
    size_t len;
    if (o->up_pending) {
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    resp->type = TETHER_COAP_NON;
    while (o->observers.head) {
        tether_observer_t *ob = container_of(o->observers.head, tether_observer_t, in_obs);
        tether_coap_msg_t m = *resp;
        tether_coap_msg_set_token(&m, ob->tok, ob->tkl);
        if ((device || !ob->group) && tether_cx_next_mid(n->cx, &ob->link, now, &m.mid) == 0 &&
            ob_mark(n, o, ob, &m, rf) == 0 && tether_coap_encode(&m, buf, sizeof buf, &len) == 0)
            tether_cx_emit(n->cx, &ob->link, buf, len);
        ob_drop(n, ob);
    }
    obs_publish(n, o, now); /* no observers left: the record goes */
    obs_destroy(n, o);
    obs_sync(n);
}

static void obs_fail(tether_node_t *n, tether_observation_t *o, uint8_t code, const char *diag,
                     tether_time_t now)
{
    tether_coap_msg_t resp;
    tether_coap_msg_init(&resp, TETHER_COAP_NON, code, 0);
    resp.payload = (const uint8_t *)diag;
    resp.payload_len = strlen(diag);
    obs_end(n, o, &resp, false, now);
}

/* Sends `o`'s latest notification to `ob`: confirmable when `con` (the
 * device sent it so) or when `ob` had none for TETHER_OBS_CON_INTERVAL_MS, unless
 * one is still outstanding (RFC 7641 §4.5.2: the newer state goes
 * non-confirmable meanwhile, the outstanding one keeps its back-off and
 * still detects a client that is gone); non-confirmable otherwise. */
static void obs_notify_one(tether_node_t *n, tether_observation_t *o, tether_observer_t *ob,
                           bool con, tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    uint16_t mid;
    /* A group observation past T' also checks its client (group.h) */
    bool gcheck =
        ob->group && tether_group_obs_check_due(ob->group, TETHER_OBS_CON_INTERVAL_MS, now);
    con = (con || gcheck || now - ob->last_con >= TETHER_OBS_CON_INTERVAL_MS) && !ob->con_pending;
    if (tether_cx_next_mid(n->cx, &ob->link, now, &mid) < 0 ||
        ob_encode(n, o, ob, con ? TETHER_COAP_CON : TETHER_COAP_NON, mid, buf, sizeof buf, &len) <
            0)
        return;
    if (con) {
        if (tether_cx_send_con(n->cx, &ob->link, buf, len, &ob->con_w, now) < 0)
            return;
        ob->con_pending = true;
        ob->con_mid = mid;
        ob->last_con = now;
        if (ob->group)
            tether_group_obs_checked(ob->group, now);
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
bool tether_observe_response(tether_node_t *n, const tether_peer_t *peer,
                             const tether_coap_msg_t *msg, tether_time_t now)
{
    tether_observation_t *o = tether_obs_find_token(&n->obs, msg->token, msg->tkl);
    if (!o)
        return false;
    tether_device_t *d = obs_dev(o);
    if (!peer->identity || strcmp(peer->identity, d->name) != 0 || !d->link_up ||
        !tether_link_equal(&d->link, &peer->link))
        return false;
    if (o->up_pending && msg->type != TETHER_COAP_ACK) {
        /* A separate response: the registration arrived, its ACK did not. */
        tether_cx_cancel(n->cx, &o->up_link, o->up_mid);
        o->up_pending = false;
    }
    /* RFC 7641 §3.4: a notification older than the newest one seen is
     * acknowledged (the caller does) but not used: not cached, not sent. */
    uint32_t v;
    if (msg->code == TETHER_COAP_CONTENT &&
        tether_coap_msg_get_uint(msg, TETHER_COAP_OPT_OBSERVE, &v) == 0 &&
        tether_coap_msg_find_opt(msg, TETHER_COAP_OPT_OBSERVE)) {
        if (o->up_seen && !tether_coap_observe_newer(o->up_seq, o->up_at, v, now)) {
            n->stats.observe_stale++;
            return true;
        }
        o->up_seen = true;
        o->up_seq = v;
        o->up_at = now;
    }
    tether_coap_msg_t resp;
    tether_reply_device_answer(msg, &resp);
    if (n->cache) {
        tether_cache_key_t k;
        k.len = o->key_len;
        k.path_len = o->key_path_len;
        memcpy(k.buf, o->key, o->key_len);
        tether_cache_store(n->cache, &k, &resp, now);
        tether_node_cache_sync(n);
    }
    bool notification =
        msg->code == TETHER_COAP_CONTENT && tether_coap_msg_find_opt(msg, TETHER_COAP_OPT_OBSERVE);
    if (!notification) {
        n->stats.relay_ok++;
        obs_end(n, o, &resp, true, now);
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

/* Outcome of a confirmable notification. */
static void ob_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    tether_observer_t *ob = container_of(w, tether_observer_t, con_w);
    if (!ob->con_pending)
        return;
    ob->con_pending = false;
    if (ev == TETHER_CX_ACKED)
        return;
    /* RST, timeout or link down: the client is gone (RFC 7641 §4.5); from
     * a group observation, from all of it (draft §3.5.2). */
    if (ob->group)
        tether_group_obs_cancel(w->owner, ob->group, now);
    else
        tether_observe_leave(w->owner, ob, now);
}

/* Outcome of an upstream registration. */
static void obs_up_on_cx(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    tether_observation_t *o = container_of(w, tether_observation_t, up_w);
    tether_node_t *n = w->owner;
    if (!o->up_pending)
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
        uint8_t utok[TETHER_UTOK_LEN];
        tether_observation_t *o;
        if (!tries && n->adopt_utok_len == TETHER_UTOK_LEN) /* the dead node's (adopt) */
            memcpy(utok, n->adopt_utok, TETHER_UTOK_LEN);
        else
            tether_node_next_token(n, utok);
        if (tether_hmap_find(&n->by_token, utok, TETHER_UTOK_LEN))
            continue; /* the counter wrapped onto a relayed request */
        tether_coap_msg_set_token(&m, utok, TETHER_UTOK_LEN);
        if (tether_coap_encode(&m, buf, sizeof buf, &len) < 0)
            return NULL;
        tether_dev_work_t *w = tether_device_work(d);
        int rc =
            w ? tether_obs_create(&n->obs, k, utok, buf, len, &w->observations, &o) : TETHER_ENOMEM;
        if (rc == TETHER_EEXIST)
            continue;
        if (rc < 0) {
            tether_device_work_done(d); /* when it was made for this one */
            return NULL;
        }
        w->nobservations++;
        o->up_w.done = obs_up_on_cx;
        o->up_w.owner = n;
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
    uint8_t type;
    uint16_t mid;
    tether_reply_head(n, link, req->type, req->mid, false, &type, &mid, now);
    if (tether_obs_encode(o, ob, type, mid, buf, sizeof buf, &len) < 0)
        return;
    tether_cx_reply(n->cx, link, req->mid, buf, len);
    ob->notified = true;
    ob->last_mid = mid;
    n->stats.observe_notifications_sent++;
}

/* Why `d` cannot have one more observer of `o` (NULL: a new observation),
 * counted as rejected; NULL when it can. */
static const char *obs_full(tether_node_t *n, const tether_device_t *d,
                            const tether_observation_t *o)
{
    if (n->obs.nobservers >= n->conf.max_observers ||
        (o && o->nobservers >= n->conf.max_observers_per_resource)) {
        n->stats.observe_rejected++;
        return "too many observers";
    }
    /* Per-device: varying Uri-Query makes a new device-side observation
     * per variant, so a device has at most so many (bounds.h). */
    if (!o && n->conf.max_observations_per_device &&
        tether_device_work_peek(d)->nobservations >= n->conf.max_observations_per_device) {
        n->stats.observe_rejected++;
        n->stats.bound_observations++;
        return "too many observations of this device";
    }
    return NULL;
}

/* The observe part of a client request for device `d`, `up` being the
 * request as it would be forwarded (Observe stripped). Observe: 0 on a
 * cacheable GET/FETCH makes the client an observer of the shared
 * device-side observation (the first observer creates and registers it)
 * and is answered with the latest notification, or an empty ACK until the
 * first one comes: returns true. Observe: 1 removes the client's observer
 * with that token and returns false, so the request goes on as a plain
 * one (RFC 7641 §3.6). Operator requests are never observers. */
int tether_observe_charge(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_bclient_t **out, tether_time_t now)
{
    int rc = tether_bounds_charge(&n->bounds, peer, TETHER_BOUND_OBSERVERS,
                                  n->conf.max_observers_per_client, out);
    if (rc == TETHER_ELIMIT) {
        n->stats.observe_rejected++;
        n->stats.bound_observers++;
        tether_reply_code(n, &peer->link, req, TETHER_COAP_SERVICE_UNAVAILABLE,
                          "too many observers of this client", now);
    }
    return rc;
}

bool tether_observe_option(const tether_coap_msg_t *req, const tether_link_t *link, uint32_t *ov)
{
    return (req->code == TETHER_COAP_GET || req->code == TETHER_COAP_FETCH) &&
           link->kind != TETHER_LINK_INTERNAL &&
           tether_coap_msg_get_uint(req, TETHER_COAP_OPT_OBSERVE, ov) == 0;
}

bool tether_observe_request(tether_node_t *n, const tether_peer_t *peer,
                            const tether_coap_msg_t *req, tether_device_t *d,
                            const tether_coap_msg_t *up, tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    uint32_t ov;
    if (!tether_observe_option(req, link, &ov))
        return false;
    tether_observer_t *ob = tether_obs_observer_find(&n->obs, link, req->token, req->tkl);
    if (ov != 0) {
        if (ov == 1 && ob)
            tether_observe_leave(n, ob, now);
        return false;
    }
    tether_cache_key_t k;
    if (!tether_cache_request_cacheable(up) || tether_cache_key(&k, d->name, up) < 0)
        return false; /* e.g. block-wise: relayed as a plain request */
    tether_observation_t *o = tether_obs_find(&n->obs, &k);
    if (ob && ob->obs != o) { /* the token now observes something else */
        tether_observe_leave(n, ob, now);
        ob = NULL;
    }
    if (!ob) {
        const char *full = obs_full(n, d, o);
        if (full) {
            tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, full, now);
            return true;
        }
        tether_bclient_t *charged;
        int rc = tether_observe_charge(n, peer, req, &charged, now);
        if (rc == TETHER_ELIMIT)
            return true;
        bool created = !o;
        if (rc < 0 || (!o && !(o = obs_new(n, d, &k, up, now))) ||
            tether_obs_add_observer(&n->obs, o, link, req->token, req->tkl, now, &ob) < 0) {
            if (rc == 0)
                tether_bounds_release(&n->bounds, charged, TETHER_BOUND_OBSERVERS);
            if (o && created) {
                obs_cancel_up(n, o, now);
                obs_destroy(n, o);
            }
            tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
            return true;
        }
        ob->charged = charged;
        ob->con_w.done = ob_on_cx;
        ob->con_w.owner = n;
        obs_sync(n);
        if (link->kind != TETHER_LINK_CLUSTER)
            obs_publish(n, o, now);
    }
    if (o->last_code)
        obs_answer(n, link, req, o, ob, now);
    else if (req->type == TETHER_COAP_CON)
        tether_reply_empty(n, link, TETHER_COAP_ACK, req->mid);
    return true;
}

void tether_observe_relink(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    for (tether_lnode_t *l = tether_device_work_peek(d)->observations.head; l; l = l->next)
        obs_register_up(n, container_of(l, tether_observation_t, dev_node), d, now);
}

void tether_observe_device_gone(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    while (d->work && d->work->observations.head)
        obs_fail(n, container_of(d->work->observations.head, tether_observation_t, dev_node),
                 TETHER_COAP_BAD_GATEWAY, "device gone", now);
}

void tether_observe_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now)
{
    tether_observer_t *ob;
    while ((ob = tether_obs_link_first(&n->obs, link)))
        tether_observe_leave(n, ob, now);
}

void tether_observe_reset(tether_node_t *n, const tether_link_t *link, uint16_t mid,
                          tether_time_t now)
{
    tether_observer_t *ob = tether_obs_observer_by_mid(&n->obs, link, mid);
    if (ob && ob->group) /* the client rejects the group's notifications */
        tether_group_obs_cancel(n, ob->group, now);
    else if (ob)
        tether_observe_leave(n, ob, now);
}

int tether_observe_group_join(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                              const tether_link_t *link, const uint8_t *tok, size_t tkl,
                              struct group_fan *f, tether_observer_t **out, tether_time_t now)
{
    tether_cache_key_t k;
    if (!tether_cache_request_cacheable(up) || tether_cache_key(&k, d->name, up) < 0)
        return TETHER_EINVAL;
    tether_observation_t *o = tether_obs_find(&n->obs, &k);
    if (obs_full(n, d, o))
        return TETHER_ELIMIT;
    bool created = !o;
    tether_observer_t *ob;
    if ((!o && !(o = obs_new(n, d, &k, up, now))) ||
        tether_obs_add_observer(&n->obs, o, link, tok, tkl, now, &ob) < 0) {
        if (o && created) {
            obs_cancel_up(n, o, now);
            obs_destroy(n, o);
        }
        return TETHER_ENOMEM;
    }
    /* Charged to the client's observer bound by the caller (group.c). */
    ob->con_w.done = ob_on_cx;
    ob->con_w.owner = n;
    ob->group = f;
    *out = ob;
    obs_sync(n);
    if (o->last_code) /* the shared observation has a state: it goes now */
        obs_notify_one(n, o, ob, false, now);
    return 0;
}

/* SPEC S5: see tether/node.h. The registration goes through the request
 * path like the client's own, so the ACL, the bounds and the choice
 * between the local observation and an aggregate at the device's node
 * are the usual ones. */
int tether_node_observer_adopt(tether_node_t *n, const tether_peer_t *peer, const uint8_t *key,
                               size_t key_len, const uint8_t *tok, size_t tkl, const uint8_t *utok,
                               size_t utok_len, tether_time_t now)
{
    tether_coap_msg_t m;
    int rc = tether_cache_key_request(key, key_len, &m);
    if (rc < 0)
        return rc;
    if (!peer->identity || tkl > TETHER_COAP_MAX_TOKEN ||
        tether_coap_msg_set_token(&m, tok, tkl) < 0 ||
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, "", 0) < 0)
        return TETHER_EINVAL;
    n->adopt_utok_len = utok_len == TETHER_UTOK_LEN ? TETHER_UTOK_LEN : 0;
    if (n->adopt_utok_len)
        memcpy(n->adopt_utok, utok, TETHER_UTOK_LEN);
    tether_relay_request(n, peer, &m, now);
    n->adopt_utok_len = 0;
    n->stats.observe_adopted++;
    return 0;
}
