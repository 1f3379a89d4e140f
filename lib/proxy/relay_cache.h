/* tether — the response cache's part of relaying (internal to lib/proxy;
 * RFC 7252 §5.6-5.7, SPEC S4): fresh entries answer requests without the
 * device, stale ones are revalidated with their ETag, unsafe requests and
 * 2.01/2.02/2.04 answers invalidate. The cache itself is proxy/cache.h;
 * this is the policy around a relayed request. Only called when caching
 * is enabled (n->cache). */
#ifndef TETHER_PROXY_RELAY_CACHE_H
#define TETHER_PROXY_RELAY_CACHE_H

#include "proxy/relay.h"

/* The cache's part of a client request for device `host`, `up` being the
 * request as it would be forwarded: answers it from a fresh entry (returns
 * true), or prepares the relay (*cflags, and the ETag of a stale entry in
 * vtag[8], added to `up`, which then points at vtag: it must outlive up).
 * Operator requests (internal links) always reach the device; OSCORE
 * passes untouched. */
bool tether_relay_cache_request(tether_node_t *n, const tether_link_t *link,
                                const tether_coap_msg_t *req, const char *host,
                                tether_coap_msg_t *up, uint8_t *cflags, uint8_t *vtag,
                                uint8_t *vtag_len, tether_time_t now);
/* The cache's part of the device's answer `resp` to `r`: stores or
 * invalidates; a 2.03 to the cache's own revalidation refreshes the entry
 * and, unless the client sent that ETag itself, *resp becomes the cached
 * representation (decoded from buf[cap], which must outlive it). Returns
 * true when `r` went to the device again instead. */
bool tether_relay_cache_response(tether_node_t *n, relay_req_t *r, tether_coap_msg_t *resp,
                                 uint8_t *buf, size_t cap, tether_time_t now);

#endif
