/* tether — group requests answered from the cache, and Group-ETag
 * (draft-ietf-core-groupcomm-proxy-07 §5; internal to lib/proxy, called by
 * group.c).
 *
 * Members' responses to a group GET/FETCH are stored in the response
 * cache under each member's own key (device, method, cache-key options:
 * the key a direct request for that device has), when the answer came
 * over this node's own tunnel of the member (not one relayed from another
 * node: see tether_group_cache_store and member_here), without Reply-From; it
 * is added on the way out, which is what the draft's "Reply-From before
 * caching" (§5.1) amounts to, the device being known from the key.
 *
 * The set J of a group request is the fresh cache entries of its members
 * (the snapshot group.c takes). When J is complete (every member has one)
 * the request is served from the cache alone, nothing reaches a device
 * (§5.2): a CON is acknowledged, then every member's entry goes to the
 * client as a NON with Reply-From, its Max-Age the remaining freshness,
 * paced like a fan-out's requests (group.c fan_step: group_pacing_burst
 * per group_pacing_interval_ms, until T'; a member whose entry went
 * meanwhile is asked instead),
 * and each 2.05 carries one Group-ETag naming J (§5.3). Its value is 8
 * bytes: a digest, in member order, of each member's name and entry
 * (code, options but Max-Age, payload), so it changes whenever an entry
 * of J does. A client that sends a Group-ETag equal to it gets one 2.03
 * Valid with that Group-ETag and no payload instead. When J is not
 * complete, the request fans out as usual and no Group-ETag is sent (the
 * draft's MAY: a fan-out's responses are not all known when the first is
 * forwarded). Group observations are not served from here.
 */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "proxy/group.h"
#include "proxy/node_int.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "util/hash.h"

/* Whether `device`'s entries here are the ones its requests use: it is
 * registered here and its tunnel is up here, or at least the directory
 * names no other node for it (a sleeping device of this node). A device
 * whose tunnel moved to another node is reached there (xrelay.h): an
 * unsafe request for it passes that node's cache, not ours, so an entry
 * here would not be invalidated and must not answer for it. */
static bool member_here(tether_node_t *n, const char *device, tether_time_t now)
{
    const tether_device_t *d = tether_registry_find_host(&n->reg, device);
    return d && (d->link_up || !tether_xrelay_elsewhere(n, device, now));
}

void tether_group_cache_store(tether_node_t *n, const uint8_t *up, size_t up_len,
                              const char *device, bool remote, const tether_coap_msg_t *resp,
                              tether_time_t now)
{
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    tether_cache_key_t k;
    /* Only answers that came over this node's own tunnel of the device:
     * one relayed from another node (xrelay.c, `remote`: a device
     * registered here whose tunnel moved there, or another node's device)
     * is that node's to cache; requests to the device pass that node's
     * cache (xrelay.h), so an unsafe one would not invalidate an entry
     * here, nor would its ETag be revalidated here. member_here says the
     * same when the entry is read. */
    if (!n->cache || remote || !member_here(n, device, now) ||
        tether_coap_parse(&m, up, up_len, &perr) < 0 || !tether_cache_request_cacheable(&m) ||
        tether_cache_key(&k, device, &m) < 0)
        return;
    tether_cache_store(n->cache, &k, resp, now);
    tether_node_cache_sync(n);
}

/* The entry `e` of `device` folded into digest h. */
static uint64_t entry_digest(const tether_cache_entry_t *e, const char *device, uint64_t h,
                             tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    tether_coap_msg_t m;
    h = tether_hash64(h, device, strlen(device) + 1);
    if (tether_cache_view(e, now, buf, sizeof buf, &m) < 0)
        return h; /* cannot happen: the entry came from a message */
    h = tether_hash64(h, &m.code, 1);
    for (size_t i = 0; i < m.nopts; i++) {
        const tether_coap_opt_t *o = &m.opts[i];
        if (o->num == TETHER_COAP_OPT_MAX_AGE) /* it counts down: not the content */
            continue;
        uint8_t hdr[4] = {(uint8_t)(o->num >> 8), (uint8_t)o->num, (uint8_t)(o->len >> 8),
                          (uint8_t)o->len};
        h = tether_hash64(tether_hash64(h, hdr, sizeof hdr), o->val, o->len);
    }
    return tether_hash64(h, m.payload, m.payload_len);
}

/* Whether `req` names Group-ETag tag[TETHER_GROUP_ETAG_LEN] (it may name several). */
static bool names_tag(const tether_node_t *n, const tether_coap_msg_t *req, const uint8_t *tag)
{
    for (size_t i = 0; i < req->nopts; i++)
        if (req->opts[i].num == n->conf.opt_group_etag &&
            req->opts[i].len == TETHER_GROUP_ETAG_LEN &&
            memcmp(req->opts[i].val, tag, TETHER_GROUP_ETAG_LEN) == 0)
            return true;
    return false;
}

int tether_group_cache_check(tether_node_t *n, const tether_link_t *link,
                             const tether_coap_msg_t *req, const tether_coap_msg_t *up,
                             char *const *members, size_t nmembers,
                             uint8_t tag[TETHER_GROUP_ETAG_LEN], tether_time_t now)
{
    if (!n->cache || !nmembers || !tether_cache_request_cacheable(up))
        return 0;
    uint64_t h = n->groups.seed ^ 0x5bd1e9955bd1e995ull; /* not the name map's own seed */
    for (size_t i = 0; i < nmembers; i++) {
        tether_cache_key_t k;
        tether_cache_entry_t *e;
        if (!member_here(n, members[i], now) || tether_cache_key(&k, members[i], up) < 0 ||
            tether_cache_lookup(n->cache, &k, now, &e) != TETHER_CACHE_FRESH)
            return 0; /* J is not complete */
        h = entry_digest(e, members[i], h, now);
    }
    /* The chained digest is invertible (util/hash.h is a mixer, not a
     * MAC): the client gets a MAC of it, so the tag says nothing about
     * the seeds. */
    uint8_t hb[8], mac[WC_SHA256_DIGEST_SIZE];
    for (int i = 0; i < 8; i++)
        hb[i] = (uint8_t)(h >> (56 - 8 * i));
    Hmac hm;
    if (wc_HmacInit(&hm, NULL, INVALID_DEVID) != 0)
        return 0;
    bool macd = wc_HmacSetKey(&hm, WC_SHA256, n->groups.etag_key, sizeof n->groups.etag_key) == 0 &&
                wc_HmacUpdate(&hm, hb, sizeof hb) == 0 && wc_HmacFinal(&hm, mac) == 0;
    wc_HmacFree(&hm);
    if (!macd)
        return 0;
    memcpy(tag, mac, TETHER_GROUP_ETAG_LEN);
    n->groups.from_cache++;
    if (!names_tag(n, req, tag))
        return 2;
    n->groups.requests++; /* §5.3: the client's set is current */
    tether_coap_msg_t resp;
    tether_reply_start(n, link, req, TETHER_COAP_VALID, &resp, now);
    tether_coap_msg_add_opt(&resp, n->conf.opt_group_etag, tag, TETHER_GROUP_ETAG_LEN);
    tether_reply_send(n, link, req, &resp);
    return 1;
}

bool tether_group_cache_send(tether_node_t *n, const tether_link_t *client, const uint8_t *tok,
                             size_t tkl, const tether_coap_msg_t *up, const char *member,
                             const uint8_t tag[TETHER_GROUP_ETAG_LEN], tether_time_t now)
{
    tether_cache_key_t k;
    tether_cache_entry_t *e;
    uint8_t buf[TETHER_MSG_MAX], rf[TETHER_REPLY_FROM_MAX];
    tether_coap_msg_t m;
    if (!n->cache || !member_here(n, member, now) || tether_cache_key(&k, member, up) < 0 ||
        tether_cache_lookup(n->cache, &k, now, &e) != TETHER_CACHE_FRESH ||
        tether_cache_view(e, now, buf, sizeof buf, &m) < 0)
        return false; /* gone since the check: the caller asks the member */
    if (tether_coap_msg_add_opt(&m, n->conf.opt_reply_from, rf,
                                tether_group_reply_from(member, rf)) < 0 ||
        (m.code == TETHER_COAP_CONTENT &&
         tether_coap_msg_add_opt(&m, n->conf.opt_group_etag, tag, TETHER_GROUP_ETAG_LEN) < 0))
        return true; /* no room for the options: not sent, as before */
    n->groups.responses++;
    n->stats.cache_hits++;
    tether_reply_to(n, client, TETHER_COAP_NON, 0, tok, tkl, true, &m, now);
    return true;
}
