/* The cache's part of relaying (see relay_cache.h). */
#include <string.h>

#include "proxy/relay_cache.h"
#include "proxy/reply.h"

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
    uint8_t type;
    uint16_t mid;
    tether_reply_head(n, link, req->type, req->mid, false, &type, &mid, now);
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    int rc =
        tether_cache_encode(e, type, mid, req->token, req->tkl, valid, now, buf, sizeof buf, &len);
    if (rc < 0)
        return rc;
    tether_cx_reply(n->cx, link, req->mid, buf, len);
    return 0;
}

bool tether_relay_cache_request(tether_node_t *n, const tether_link_t *link,
                                const tether_coap_msg_t *req, const char *host,
                                tether_coap_msg_t *up, uint8_t *cflags, uint8_t *vtag,
                                uint8_t *vtag_len, tether_time_t now)
{
    tether_cache_key_t k;
    *cflags = *vtag_len = 0;
    if (tether_coap_msg_find_opt(up, TETHER_COAP_OPT_OSCORE))
        return false;
    if (tether_cache_method_unsafe(up->code)) {
        /* A block of an upload changes nothing until the device's final
         * answer (RFC 7959 §2.5), which invalidates then. */
        if (!tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK1) &&
            tether_cache_key_path(&k, host, up, TETHER_COAP_OPT_URI_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
        tether_node_cache_sync(n);
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
    tether_node_cache_sync(n);
    return false;
}

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
    tether_relay_send(n, r, now);
    return true;
}

bool tether_relay_cache_response(tether_node_t *n, relay_req_t *r, tether_coap_msg_t *resp,
                                 uint8_t *buf, size_t cap, tether_time_t now)
{
    uint8_t code = resp->code;
    bool modified =
        code == TETHER_COAP_CREATED || code == TETHER_COAP_DELETED || code == TETHER_COAP_CHANGED;
    if (!modified && !(r->cflags & C_STORE))
        return false;
    tether_coap_msg_t up;
    tether_coap_perr_t perr;
    tether_cache_key_t k;
    const char *dev = r->dev->name;
    if (tether_coap_parse(&up, r->msg, r->len, &perr) < 0 ||
        tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_OSCORE))
        return false;
    bool resent = false;
    if (modified) {
        if (tether_cache_key_path(&k, dev, &up, TETHER_COAP_OPT_URI_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
        if (code == TETHER_COAP_CREATED &&
            tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_LOCATION_PATH) &&
            tether_cache_key_path(&k, dev, resp, TETHER_COAP_OPT_LOCATION_PATH) == 0)
            tether_cache_invalidate(n->cache, &k);
    } else if (tether_cache_key(&k, dev, &up) < 0) {
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
    tether_node_cache_sync(n);
    return resent;
}
