/* Node-level dispatch (the CoAP -> proxy layers of the pipeline): the
 * endpoint's checks, the message layer (dedup, ACK/RST), then local
 * resources, the resource directory (rd.c), or the relay to a device
 * tunnel (relay.c, with observe.c and relay_cache.c). Lifetimes: the node
 * owns everything below it; create/destroy in the usual ladder. */
#include <stdlib.h>
#include <string.h>

#include "proxy/blockwise.h"
#include "proxy/bounds.h"
#include "proxy/node_int.h"
#include "proxy/observe.h"
#include "proxy/rd.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "tether/log.h"
#include "util/container.h"

void tether_node_conf_defaults(tether_node_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->version = "0";
    c->opt_multicast_timeout = TETHER_COAP_OPT_MULTICAST_TIMEOUT_DEFAULT;
    c->opt_reply_from = TETHER_COAP_OPT_REPLY_FROM_DEFAULT;
    c->opt_group_etag = TETHER_COAP_OPT_GROUP_ETAG_DEFAULT;
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
    c->block_max_bytes = 1u << 20;
    c->block_size = 1024;
    c->block_max_transfers = 64;
    c->block_timeout_ms = 60000;
    c->block_idle_ms = 30000;
    c->upload_max_bytes = 16u << 20;
    c->uploads_per_device = 2;
    c->xrelay_max = 100000;
    c->xslots_max = 100000;
    c->xrelay_retry_ms = 1000;
    c->xrelay_margin_ms = 2000;
    c->max_pending_per_client = 1024;
    c->max_observers_per_client = 1024;
    c->max_group_requests_per_client = 4;
    c->max_observations_per_device = 256;
    c->nstart = 1;
    c->nstart_queue_max = 1024;
    c->dedup_max = 262144;
    c->dedup_per_peer = 4096;
    c->max_groups = 10000;
    c->group_max_members = 10000;
    c->group_max_requests = 64;
    c->group_pacing_burst = 32;
    c->group_pacing_interval_ms = 10;
    c->group_timeout_max_ms = 60000;
}

int tether_node_create(const tether_node_conf_t *conf, const tether_creds_t *creds,
                       tether_node_t **out)
{
    int rc = TETHER_ENOMEM;
    tether_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return rc;
    n->conf = *conf;
    n->creds = creds;
    tether_acl_memo_init(&n->acl, conf->seed ^ 0x5851f42d4c957f2dull);
    if ((rc = tether_coap_optreg_init(&n->optreg, conf->opt_multicast_timeout,
                                      conf->opt_reply_from)) < 0 ||
        (rc = tether_coap_optreg_add(
             &n->optreg, &(tether_coap_optdef_t){conf->opt_group_etag, "Group-ETag",
                                                 TETHER_COAP_FMT_OPAQUE, true, 1, 8})) < 0)
        goto fail_reg;
    tether_coap_ep_init(&n->ep, &n->optreg, (uint16_t)conf->seed);
    n->local.node_id = conf->node_id;
    n->local.version = conf->version;
    n->next_token = (uint32_t)(conf->seed >> 17);
    tether_cx_conf_t cc;
    tether_cx_conf_defaults(&cc);
    cc.seed = conf->seed ^ 0xda3e39cb94b95bdbull;
    cc.dedup_max = conf->dedup_max;
    cc.dedup_per_peer = conf->dedup_per_peer;
    if ((rc = tether_cx_create(&cc, &n->cx)) < 0)
        goto fail_reg;
    n->store = conf->store;
    if (!n->store && (rc = tether_store_mem_create(conf->max_devices, &n->own_store)) < 0)
        goto fail_store;
    if (!n->store)
        n->store = n->own_store;
    if ((rc = tether_registry_init(&n->reg, conf->node_id, conf->max_devices, conf->seed)) < 0)
        goto fail_registry;
    if ((rc = tether_hmap_init(&n->by_token, 1024, conf->seed ^ 0x27d4eb2f165667c5ull)) < 0)
        goto fail_tokens;
    if (conf->cache_bytes) {
        tether_cache_conf_t kc = {.max_bytes = conf->cache_bytes,
                                  .max_payload = conf->block_max_bytes,
                                  .seed = conf->seed ^ 0x94d049bb133111ebull};
        if ((rc = tether_cache_create(&kc, &n->cache)) < 0)
            goto fail_cache;
    }
    if ((rc = tether_obs_init(&n->obs, conf->seed ^ 0xbf58476d1ce4e5b9ull)) < 0)
        goto fail_obs;
    if ((rc = tether_xrelay_init(n)) < 0)
        goto fail_xrelay;
    if ((rc = tether_bounds_init(&n->bounds, conf->seed ^ 0x8cb92ba72f3d8dd7ull)) < 0)
        goto fail_bounds;
    if ((rc = tether_groups_init(&n->groups, conf->seed ^ 0x9e3779b97f4a7c15ull)) < 0)
        goto fail_groups;
    if ((rc = tether_group_store_init(n)) < 0)
        goto fail_group_store;
    *out = n;
    return 0;
fail_group_store:
    tether_groups_free(n);
fail_groups:
    tether_bounds_free(&n->bounds);
fail_bounds:
    tether_xrelay_free(n);
fail_xrelay:
    tether_obs_free(&n->obs);
fail_obs:
    tether_cache_destroy(n->cache);
fail_cache:
    tether_hmap_free(&n->by_token);
fail_tokens:
    tether_registry_free(&n->reg);
fail_registry:
    tether_store_destroy(n->own_store);
fail_store:
    tether_cx_destroy(n->cx);
fail_reg:
    free(n);
    return rc;
}

void tether_node_destroy(tether_node_t *n)
{
    if (!n)
        return;
    tether_xrelay_free(n);
    tether_bw_free(n);          /* before the requests of its transfers */
    tether_group_store_free(n); /* its watcher, before the store goes */
    tether_groups_free(n);      /* before the member requests of its fan-outs */
    tether_obs_free(&n->obs);   /* before the devices that list observations */
    tether_timer_t *t;
    while ((t = tether_heap_top(&n->reg.expiry))) {
        tether_device_t *d = container_of(t, tether_device_t, expiry);
        tether_relay_free_all(n, d);
        tether_registry_remove(&n->reg, d);
    }
    tether_registry_free(&n->reg);
    tether_cache_destroy(n->cache);
    tether_hmap_free(&n->by_token);
    tether_heap_free(&n->timers);
    tether_store_destroy(n->own_store);
    tether_cx_destroy(n->cx);
    tether_bounds_free(&n->bounds); /* after what was charged to it */
    free(n);
}

void tether_node_set_creds(tether_node_t *n, const tether_creds_t *creds)
{
    n->creds = creds;
    tether_acl_memo_clear(&n->acl); /* its decisions were the old set's */
}

/* Relayed requests and device-side observations share one 32-bit token
 * space per device session, and an observation lives for days: after 2^32
 * relays the counter comes round to a live observation's token, and its
 * answer would end the observation for every observer (security review
 * item 7). Tokens in use by either are skipped; there are far fewer live
 * ones than 2^32, so the loop ends. */
void tether_node_next_token(tether_node_t *n, uint8_t tok[TETHER_UTOK_LEN])
{
    _Static_assert(TETHER_UTOK_LEN == TETHER_OBS_TOKEN_LEN, "one token space");
    do {
        uint32_t t = n->next_token++;
        tok[0] = (uint8_t)(t >> 24);
        tok[1] = (uint8_t)(t >> 16);
        tok[2] = (uint8_t)(t >> 8);
        tok[3] = (uint8_t)t;
    } while (tether_hmap_find(&n->by_token, tok, TETHER_UTOK_LEN) ||
             tether_obs_find_token(&n->obs, tok, TETHER_UTOK_LEN));
}

void tether_node_cache_sync(tether_node_t *n)
{
    const tether_cache_stats_t *s = tether_cache_stats(n->cache);
    n->stats.cache_entries = s->entries;
    n->stats.cache_bytes = s->bytes;
    n->stats.cache_evictions = s->evictions;
    n->stats.cache_invalidations = s->invalidations;
    n->stats.cache_revalidated = s->refreshed;
}

/* ---- input ------------------------------------------------------------------- */

static void handle_request(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *req, tether_time_t now)
{
    if (!tether_local_is_for_node(req)) {
        tether_relay_request(n, peer, req, now);
        return;
    }
    if (tether_group_early_stop(n, peer, req, now))
        return;
    const tether_coap_opt_t *p1 = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_PATH);
    if (p1 && p1->len == 2 && memcmp(p1->val, "rd", 2) == 0) {
        tether_rd_handle(n, peer, req, now);
        return;
    }
    n->stats.requests_local++;
    tether_coap_msg_t resp;
    uint8_t scratch[1024], blk[3], sz2[4];
    if (tether_local_handle(&n->local, &n->ep, req, &resp, scratch, sizeof scratch) < 0) {
        tether_reply_code(n, &peer->link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    /* The client's block size applies to tether's own resources too. */
    if (resp.code == TETHER_COAP_CONTENT && tether_bw_slice(n, req, &resp, blk, sz2) < 0) {
        tether_reply_code(n, &peer->link, req, TETHER_COAP_BAD_OPTION, "no such block", now);
        return;
    }
    /* tether_local_handle started the response with the shared endpoint's
     * MID; NON answers take a per-peer MID instead. */
    tether_reply_head(n, &peer->link, req->type, req->mid, false, &resp.type, &resp.mid, now);
    tether_reply_send(n, &peer->link, req, &resp);
}

/* Duplicate detection (RFC 7252 §4.5) at the message layer; the per-peer
 * quota's counter is copied as it moves (proxy.bound_dedup). */
static bool dedup_seen(tether_node_t *n, const tether_link_t *link, uint16_t mid, tether_time_t now)
{
    bool dup = tether_cx_seen(n->cx, link, mid, now);
    n->stats.bound_dedup = tether_cx_stats(n->cx)->dedup_quota_dropped;
    return dup;
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
        relinked = !d->link_up || !tether_link_equal(&d->link, &peer->link);
        tether_registry_touch(&n->reg, d, &peer->link, now);
    }
    tether_coap_ep_res_t res = tether_coap_ep_input(&n->ep, buf, len, &msg, rej, sizeof rej, &rlen);
    if (res != TETHER_COAP_EP_UP) {
        if (rlen > 0) {
            if (rej[1] != 0)
                n->stats.rx_rejected++;
            tether_cx_emit(n->cx, &peer->link, rej, rlen);
        }
        goto device; /* a ping or a rejected message still shows the device is here */
    }
    if (msg.type == TETHER_COAP_ACK || msg.type == TETHER_COAP_RST) {
        bool ours = tether_cx_on_ack(n->cx, &peer->link, msg.mid, msg.type == TETHER_COAP_RST, now);
        if (msg.type == TETHER_COAP_ACK && tether_coap_is_response(msg.code) &&
            !tether_relay_response(n, peer, &msg, now))
            tether_observe_response(n, peer, &msg, now);
        /* A client rejecting a non-confirmable notification (RFC 7641 §3.6). */
        if (!ours && msg.type == TETHER_COAP_RST) {
            tether_observe_reset(n, &peer->link, msg.mid, now);
            tether_xrelay_reset(n, &peer->link, msg.mid, now);
        }
    } else if (dedup_seen(n, &peer->link, msg.mid, now)) {
        n->stats.duplicates++;
    } else if (tether_coap_is_request(msg.code)) {
        handle_request(n, peer, &msg, now);
    } else if (tether_coap_is_response(msg.code)) {
        bool matched = tether_relay_response(n, peer, &msg, now) ||
                       tether_observe_response(n, peer, &msg, now);
        if (msg.type == TETHER_COAP_CON)
            tether_reply_empty(n, &peer->link, matched ? TETHER_COAP_ACK : TETHER_COAP_RST,
                               msg.mid);
        else if (!matched) /* e.g. a notification nobody wants: cancel it */
            tether_reply_empty(n, &peer->link, TETHER_COAP_RST, msg.mid);
    }
device:
    /* Looked up again: the message may have removed the registration. A
     * device's new session resumes its observations; what was queued for
     * a sleeping device goes now (S3: "when the device next sends anything"). */
    if (d && (d = tether_registry_find(&n->reg, peer->identity))) {
        if (relinked)
            tether_observe_relink(n, d, now);
        tether_relay_flush(n, d, now);
    }
}

void tether_node_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now)
{
    tether_device_t *d = tether_registry_find_link(&n->reg, link);
    if (d)
        tether_registry_link_down(&n->reg, d);
    tether_cx_link_down(n->cx, link, now);
    tether_group_link_down(n, link, now);   /* before its observers go one by one */
    tether_observe_link_down(n, link, now); /* a client session: its observations end */
    tether_xrelay_link_down(n, link, now);
    if (d)
        tether_relay_link_down(n, d, link, now);
}

void tether_node_tick(tether_node_t *n, tether_time_t now)
{
    tether_cx_tick(n->cx, now);
    tether_relay_tick(n, now);
    tether_bw_tick(n, now);
    tether_group_tick(n, now);
    tether_rd_expire(n, now);
    tether_xrelay_tick(n, now);
    if (n->own_store) /* a borrowed store is ticked by its owner */
        tether_store_tick(n->own_store, now);
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
    if (tether_bw_next_deadline(n) < d)
        d = tether_bw_next_deadline(n);
    if (tether_xrelay_next_deadline(n) < d)
        d = tether_xrelay_next_deadline(n);
    if (tether_group_next_deadline(n) < d)
        d = tether_group_next_deadline(n);
    if (n->own_store && tether_store_next_deadline(n->own_store) < d)
        d = tether_store_next_deadline(n->own_store);
    return d;
}

size_t tether_node_out_count(const tether_node_t *n)
{
    return tether_cx_out_count(n->cx);
}
const tether_out_t *tether_node_out_get(const tether_node_t *n, size_t i)
{
    return tether_cx_out_get(n->cx, i);
}
void tether_node_out_clear(tether_node_t *n)
{
    tether_cx_out_clear(n->cx);
}
const tether_node_stats_t *tether_node_stats(const tether_node_t *n)
{
    /* the group counters live with the groups (group.c) */
    tether_node_stats_t *s = (tether_node_stats_t *)&n->stats;
    s->groups_defined = n->groups.ngroups;
    s->group_requests = n->groups.requests;
    s->group_requests_active = n->groups.nfans;
    s->group_members_sent = n->groups.members_sent;
    s->group_responses = n->groups.responses;
    s->group_members_unanswered = n->groups.late_dropped;
    s->group_rejected = n->groups.rejected;
    s->group_from_cache = n->groups.from_cache;
    return s;
}

int tether_node_group_set(tether_node_t *n, const char *name, const char *pattern,
                          const char *const *members, size_t nmembers)
{
    return tether_group_set(n, name, pattern, members, nmembers);
}

int tether_node_group_remove(tether_node_t *n, const char *name)
{
    return tether_group_remove(n, name);
}

static void group_info(const tether_group_t *g, tether_group_info_t *info)
{
    info->name = g->name;
    info->pattern = g->pattern[0] ? g->pattern : NULL;
    info->nmembers = g->nmembers;
    info->member = (const char *const *)g->members;
}

int tether_node_group(const tether_node_t *n, const char *name, tether_group_info_t *info)
{
    const tether_group_t *g = tether_group_find(&n->groups, name);
    if (!g)
        return TETHER_ENOTFOUND;
    group_info(g, info);
    return 0;
}

int tether_node_group_next(const tether_node_t *n, const char *after, tether_group_info_t *info)
{
    const tether_group_t *g = after ? tether_group_find(&n->groups, after) : NULL;
    const tether_lnode_t *l = after ? (g ? g->ln.next : NULL) : n->groups.groups.head;
    if (!l)
        return TETHER_ENOTFOUND;
    group_info(container_of(l, tether_group_t, ln), info);
    return 0;
}
size_t tether_node_pending(const tether_node_t *n)
{
    return n->npending;
}
tether_store_t *tether_node_store(const tether_node_t *n)
{
    return n->store;
}
