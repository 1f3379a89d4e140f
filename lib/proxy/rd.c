/* The resource directory (see rd.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/rd.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "tether/linkformat.h"
#include "tether/log.h"

#define RD_LT_DEFAULT 90000u /* RFC 9176 default lifetime, seconds */
#define MAX_LINKS 64

/* ---- the directory entry in the store ----------------------------------------- */

/* Completion of a directory write: the device (found again by name, it may
 * be gone by now with an asynchronous store) learns the entry's version. */
static void store_done(void *user, const tether_store_result_t *res)
{
    tether_node_t *n = user;
    char name[TETHER_IDENTITY_MAX];
    size_t len = res->key_len < sizeof name ? res->key_len : sizeof name - 1;
    memcpy(name, res->key, len);
    name[len] = 0;
    if (res->rc < 0) {
        if (tether_log_enabled(TETHER_LOG_WARN))
            tether_log_kv(TETHER_LOG_WARN, "rd", "directory write failed", "ep", name, "error",
                          tether_strerror(res->rc), NULL);
        return;
    }
    tether_device_t *d = tether_registry_find(&n->reg, name);
    if (d)
        d->store_version = res->version;
}

/* The entry read again after a conflicting delete: still this node's
 * registration (its version moved under us, e.g. a write replayed after a
 * store outage): deleted at the version read. Another node's entry, or a
 * newer registration here, stays. */
static void del_recheck(void *user, const tether_store_result_t *res)
{
    tether_node_t *n = user;
    char name[TETHER_IDENTITY_MAX];
    if (res->rc < 0 || !res->rec || res->key_len >= sizeof name)
        return;
    memcpy(name, res->key, res->key_len);
    name[res->key_len] = 0;
    /* A device of that name still here with the entry's regid is the
     * registration being removed (the in-memory store answers before
     * tether_rd_remove drops it); another regid is a new registration. */
    const tether_device_t *d = tether_registry_find(&n->reg, name);
    if (res->rec->u.device.node_id != n->conf.node_id ||
        (d && strcmp(tether_device_regid(d), res->rec->u.device.regid) != 0))
        return;
    tether_store_del(n->store, TETHER_STORE_DEVICE, res->key, res->key_len, res->version, n->rd_now,
                     NULL, NULL);
}

/* Completion of a directory delete: a conflict is usually the entry of
 * another node's newer registration, left alone on purpose (store_del);
 * del_recheck tells which. */
static void del_done(void *user, const tether_store_result_t *res)
{
    tether_node_t *n = user;
    if (res->rc == TETHER_ECONFLICT) {
        uint8_t key[TETHER_IDENTITY_MAX];
        size_t kl = res->key_len < sizeof key ? res->key_len : sizeof key;
        memcpy(key, res->key, kl); /* res is gone once the get below completes */
        tether_store_get(n->store, TETHER_STORE_DEVICE, key, kl, n->rd_now, del_recheck, n);
    } else if (res->rc < 0 && res->rc != TETHER_ENOTFOUND) {
        store_done(user, res);
    }
}

/* The links of d's directory entry as the store holds them now, when it
 * can tell at once (tether_store_peek) and the entry is d's registration
 * here; NULL otherwise. Valid until the store's next write. Device
 * entries carry no ttl, so `now` does not matter. */
static const char *stored_links(const tether_node_t *n, const tether_device_t *d, size_t *len,
                                uint64_t *version)
{
    tether_store_rec_t rec;
    if (tether_store_peek(n->store, TETHER_STORE_DEVICE, (const uint8_t *)d->name, strlen(d->name),
                          0, &rec, version) < 0)
        return NULL;
    const tether_store_device_t *e = &rec.u.device;
    if (e->node_id != d->node_id || strcmp(e->regid, tether_device_regid(d)) != 0 || !e->links)
        return NULL;
    *len = e->links_len;
    return e->links;
}

/* d's registered links: its own copy, else the store's. */
static const char *links_of(const tether_node_t *n, const tether_device_t *d, size_t *len)
{
    if (d->links) {
        *len = d->links_len;
        return d->links;
    }
    uint64_t v;
    const char *l = stored_links(n, d, len, &v);
    if (!l)
        *len = 0;
    return l;
}

/* Writes d's directory entry (last-seen and address as of now) with the
 * registered links[len] (borrowed). One copy of the links stays: the
 * store's when it can be read at once (the in-memory store), else d's. */
static void store_put(tether_node_t *n, tether_device_t *d, const char *links, size_t len,
                      tether_time_t now)
{
    tether_store_rec_t rec = {.kind = TETHER_STORE_DEVICE};
    tether_store_device_t *e = &rec.u.device;
    memcpy(e->name, d->name, strlen(d->name) + 1); /* < TETHER_IDENTITY_MAX (registry_add) */
    const char *id = tether_device_regid(d);
    size_t il = strnlen(id, sizeof e->regid - 1); /* shorter (registry.c) */
    memcpy(e->regid, id, il);
    e->regid[il] = 0;
    e->node_id = d->node_id;
    e->addr = d->link.addr;
    e->lifetime_s = d->lifetime_s;
    e->queue_mode = d->queue_mode;
    e->last_seen_s = now / 1000;
    e->links = links ? links : "";
    e->links_len = links ? len : 0;
    tether_store_result_t fail = {.key = (const uint8_t *)d->name, .key_len = strlen(d->name)};
    uint64_t before = d->store_version, version;
    if ((fail.rc = tether_store_put(n->store, &rec, TETHER_STORE_ANY, 0, now, store_done, n)) < 0)
        store_done(n, &fail);
    /* The store holds this very write (store_done recorded its version)
     * and shows it at once: d needs no copy. `links` is not read again
     * then: it may have pointed into the entry this write replaced. */
    size_t sl;
    if (stored_links(n, d, &sl, &version) && version == d->store_version && version != before)
        tether_registry_forget_links(d);
    else if (e->links != d->links)
        tether_registry_set_links(d, e->links, e->links_len);
}

/* Deletes d's directory entry only if it is still the one this node
 * wrote (compare-and-set on its version): a device that registered again
 * on another node meanwhile has a newer entry there, which must stay. An
 * entry this node never managed to write is not ours to delete. */
static void store_del(tether_node_t *n, const tether_device_t *d, tether_time_t now)
{
    tether_store_result_t fail = {.key = (const uint8_t *)d->name, .key_len = strlen(d->name)};
    if (!d->store_version)
        return;
    n->rd_now = now; /* for the re-check of a conflict (del_done), maybe completing later */
    if ((fail.rc = tether_store_del(n->store, TETHER_STORE_DEVICE, fail.key, fail.key_len,
                                    d->store_version, now, del_done, n)) < 0)
        store_done(n, &fail);
}

/* ---- registration --------------------------------------------------------------- */

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
    /* Cannot fail: the registry reserved the device's timer slot. */
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

void tether_rd_remove(tether_node_t *n, tether_device_t *d, tether_time_t now)
{
    tether_relay_fail_all(n, d, TETHER_COAP_BAD_GATEWAY, now);
    tether_observe_device_gone(n, d, now);
    store_del(n, d, now);
    tether_registry_remove(&n->reg, d);
    n->stats.devices_registered = n->reg.count;
}

void tether_rd_handle(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                      tether_time_t now)
{
    const tether_link_t *link = &peer->link;
    const tether_coap_opt_t *p1 = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_PATH);
    const tether_coap_opt_t *p2 = tether_coap_msg_next_opt(req, p1);
    if (p2 && tether_coap_msg_next_opt(req, p2)) {
        tether_reply_code(n, link, req, TETHER_COAP_NOT_FOUND, NULL, now);
        return;
    }
    if (!peer->identity) {
        tether_reply_code(n, link, req, TETHER_COAP_UNAUTHORIZED, "register over DTLS", now);
        return;
    }
    if (peer->role != TETHER_ROLE_DEVICE) {
        tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN, "not a device identity", now);
        return;
    }
    tether_coap_msg_t resp;
    if (!p2) { /* POST /rd?ep=NAME&lt=S: registration */
        char ep[TETHER_IDENTITY_MAX];
        if (req->code != TETHER_COAP_POST) {
            tether_reply_code(n, link, req, TETHER_COAP_METHOD_NOT_ALLOWED, NULL, now);
            return;
        }
        if (!query_param(req, "ep", ep, sizeof ep))
            snprintf(ep, sizeof ep, "%s", peer->identity); /* inferred from the session */
        if (strcmp(ep, peer->identity) != 0) {
            tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN,
                              "ep differs from the DTLS identity", now);
            return;
        }
        if (!rd_links_ok(req)) {
            tether_reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "payload is not link-format",
                              now);
            return;
        }
        tether_device_t *d;
        bool created;
        int rc = tether_registry_add(&n->reg, ep, &d, &created);
        if (rc == TETHER_EEXIST) {
            tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN,
                              "a device of that name in another case is registered", now);
            return;
        }
        if (rc < 0) {
            tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "directory full", now);
            return;
        }
        if (!rd_params(n, d, req, created, now)) {
            if (created)
                tether_registry_remove(&n->reg, d);
            tether_reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, "bad lt", now);
            return;
        }
        d->registered_at = now;
        tether_registry_touch(&n->reg, d, link, now);
        store_put(n, d, (const char *)req->payload, req->payload_len, now);
        n->stats.registrations++;
        n->stats.devices_registered = n->reg.count;
        if (created && tether_log_enabled(TETHER_LOG_INFO))
            tether_log_kv(TETHER_LOG_INFO, "rd", "registered", "ep", d->name, "id",
                          tether_device_regid(d), NULL);
        tether_reply_start(n, link, req, TETHER_COAP_CREATED, &resp, now);
        tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_LOCATION_PATH, "rd", 2);
        tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_LOCATION_PATH, tether_device_regid(d),
                                strlen(tether_device_regid(d)));
        tether_reply_send(n, link, req, &resp);
        tether_relay_flush(n, d, now);
        return;
    }
    char id[16];
    if (p2->len >= sizeof id) {
        tether_reply_code(n, link, req, TETHER_COAP_NOT_FOUND, NULL, now);
        return;
    }
    memcpy(id, p2->val, p2->len);
    id[p2->len] = 0;
    tether_device_t *d = tether_registry_find_reg(&n->reg, id);
    if (!d) {
        tether_reply_code(n, link, req, TETHER_COAP_NOT_FOUND, "no such registration", now);
        return;
    }
    if (strcmp(d->name, peer->identity) != 0) {
        tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN, NULL, now);
        return;
    }
    if (req->code == TETHER_COAP_DELETE) {
        tether_rd_remove(n, d, now);
        tether_reply_code(n, link, req, TETHER_COAP_DELETED, NULL, now);
        return;
    }
    if (req->code != TETHER_COAP_POST) {
        tether_reply_code(n, link, req, TETHER_COAP_METHOD_NOT_ALLOWED, NULL, now);
        return;
    }
    if (!rd_links_ok(req) || !rd_params(n, d, req, false, now)) {
        tether_reply_code(n, link, req, TETHER_COAP_BAD_REQUEST, NULL, now);
        return;
    }
    size_t ll = req->payload_len;
    const char *links = ll ? (const char *)req->payload : links_of(n, d, &ll);
    store_put(n, d, links, ll, now);
    tether_reply_code(n, link, req, TETHER_COAP_CHANGED, NULL, now);
    tether_relay_flush(n, d, now);
}

int tether_node_device_adopt(tether_node_t *n, const tether_store_device_t *rec,
                             const tether_link_t *link, tether_time_t now)
{
    if (!rec->name[0] || strnlen(rec->name, sizeof rec->name) == sizeof rec->name)
        return TETHER_EINVAL;
    tether_device_t *d;
    bool created;
    int rc = tether_registry_add(&n->reg, rec->name, &d, &created);
    if (rc < 0)
        return rc == TETHER_EEXIST ? TETHER_EINVAL : rc;
    if (created) {
        /* Its updates name the dead node's id; a clash keeps ours (the
         * device then gets 4.04 and registers again). */
        if (rec->regid[0])
            tether_registry_set_regid(&n->reg, d, rec->regid);
        d->queue_mode = rec->queue_mode;
        d->registered_at = now;
        tether_registry_set_lifetime(&n->reg, d, rec->lifetime_s ? rec->lifetime_s : RD_LT_DEFAULT,
                                     now);
        n->stats.devices_registered = n->reg.count;
    }
    tether_link_t l = *link;
    if (l.addr.len == 0)
        l.addr = rec->addr;
    tether_registry_touch(&n->reg, d, &l, now);
    size_t ll = rec->links ? rec->links_len : 0;
    const char *links = created ? rec->links : links_of(n, d, &ll);
    store_put(n, d, links, ll, now);
    if (tether_log_enabled(TETHER_LOG_DEBUG))
        tether_log_kv(TETHER_LOG_DEBUG, "rd", "adopted a registration", "ep", d->name, "id",
                      tether_device_regid(d), NULL);
    tether_relay_flush(n, d, now);
    return 0;
}

void tether_rd_expire(tether_node_t *n, tether_time_t now)
{
    tether_device_t *d;
    while ((d = tether_registry_pop_expired(&n->reg, now))) {
        if (tether_log_enabled(TETHER_LOG_INFO))
            tether_log_kv(TETHER_LOG_INFO, "rd", "registration expired", "ep", d->name, NULL);
        tether_rd_remove(n, d, now);
    }
}

/* ---- operator views (admin API) -------------------------------------------------- */

static void device_info(const tether_node_t *n, const tether_device_t *d,
                        tether_device_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->name = d->name;
    info->regid = tether_device_regid(d);
    info->node_id = d->node_id;
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
    info->queued = tether_device_work_peek(d)->nqueued;
    size_t ll;
    const char *links = links_of(n, d, &ll);
    info->links = links ? links : "";
}

int tether_node_device(const tether_node_t *n, const char *name, tether_device_info_t *info)
{
    const tether_device_t *d = tether_registry_find(&n->reg, name);
    if (!d)
        return TETHER_ENOTFOUND;
    device_info(n, d, info);
    return 0;
}

int tether_node_device_next(const tether_node_t *n, const char *cursor, tether_device_info_t *info)
{
    const tether_device_t *d = tether_registry_next(&n->reg, cursor);
    if (!d)
        return TETHER_ENOTFOUND;
    device_info(n, d, info);
    return 0;
}

int tether_node_device_remove(tether_node_t *n, const char *name, tether_time_t now)
{
    tether_device_t *d = tether_registry_find(&n->reg, name);
    if (!d)
        return TETHER_ENOTFOUND;
    tether_rd_remove(n, d, now);
    return 0;
}
