/* tether — the proxy's response cache (RFC 7252 §5.6-5.7, 5.9), sans-I/O.
 *
 * Entries are device responses keyed by target device + method + the
 * request's cache-key options (every option that is not NoCacheKey, minus
 * the ones that name the target and ETag, which validates instead) + the
 * payload of a FETCH. Freshness comes from Max-Age (60 s when absent); a
 * stale entry with an ETag stays to be revalidated (a 2.03 refreshes it),
 * one without is dropped when next looked up. The total size is bounded by
 * a byte budget with least-recently-used eviction. Lookups are hash
 * lookups on a keyed digest of the key; the full key is compared, so a
 * digest collision only costs a miss. Responses carrying Block2 are not
 * cached: blockwise.c stores the reassembled representation instead.
 * Time is passed in; the cache reads no clock and sends nothing.
 */
#ifndef TETHER_PROXY_CACHE_H
#define TETHER_PROXY_CACHE_H

#include <stdbool.h>

#include "tether/coap.h"

#define TETHER_CACHE_DEFAULT_MAX_AGE 60 /* seconds (RFC 7252 §5.10.5) */
#define TETHER_CACHE_KEY_MAX 2048

typedef struct tether_cache tether_cache_t;
typedef struct tether_cache_entry tether_cache_entry_t;

typedef struct {
    uint64_t max_bytes;   /* entries, keys and representations; must be > 0 */
    uint32_t max_payload; /* largest representation stored, 0: 64 KiB */
    uint64_t seed;        /* keys the digests */
} tether_cache_conf_t;

typedef struct {
    uint64_t entries;
    uint64_t bytes;
    uint64_t stored;        /* responses stored (new or replacing) */
    uint64_t refreshed;     /* entries refreshed by a 2.03 Valid */
    uint64_t invalidations; /* entries made stale or dropped by an unsafe request */
    uint64_t evictions;     /* entries dropped to stay within max_bytes */
} tether_cache_stats_t;

/* A request's key, built on the caller's stack. The first path_len bytes
 * (target and Uri-Path) are what invalidation matches. */
typedef struct {
    uint16_t len;
    uint16_t path_len;
    uint8_t buf[TETHER_CACHE_KEY_MAX];
} tether_cache_key_t;

typedef enum {
    TETHER_CACHE_MISS = 0, /* nothing usable */
    TETHER_CACHE_FRESH,    /* the entry answers the request */
    TETHER_CACHE_STALE,    /* expired, but its ETag can revalidate it */
} tether_cache_state_t;

int tether_cache_create(const tether_cache_conf_t *conf, tether_cache_t **out);
void tether_cache_destroy(tether_cache_t *c);

/* True when `req`, a request as forwarded to the device, may be answered
 * from the cache and its response stored: GET or FETCH, not
 * OSCORE-protected, not block-wise (no Block1/Block2). */
bool tether_cache_request_cacheable(const tether_coap_msg_t *req);
/* True for the methods that invalidate (POST, PUT, DELETE, PATCH, iPATCH). */
bool tether_cache_method_unsafe(uint8_t code);

/* Builds the key of `req` for the device named `target`. TETHER_ENOSPC
 * when it exceeds TETHER_CACHE_KEY_MAX (such a request is not cached). */
int tether_cache_key(tether_cache_key_t *k, const char *target, const tether_coap_msg_t *req);
/* The request a key was built from, as a device would get it: `code`,
 * Uri-Host = the target, its Uri-Path and the options in the key (their
 * values point into key[len], which must outlive *out), a FETCH's payload.
 * Type NON, MID 0, no token. TETHER_EPROTO when key[len] is not a key
 * (it may come from the state store: every length is checked). */
int tether_cache_key_request(const uint8_t *key, size_t len, tether_coap_msg_t *out);
/* Seeded 64-bit digest of the whole key (for tables keyed like the cache;
 * equal digests still need the full key compared). */
uint64_t tether_cache_key_digest(const tether_cache_key_t *k, uint64_t seed);
/* Builds only the path part (target and the `path_opt` options of `msg`:
 * Uri-Path of a request, Location-Path of a 2.01) for invalidation. */
int tether_cache_key_path(tether_cache_key_t *k, const char *target, const tether_coap_msg_t *msg,
                          uint16_t path_opt);

/* Looks `k` up at `now` and marks the entry recently used. *e is set for
 * FRESH and STALE. An expired entry without an ETag is dropped (MISS). */
tether_cache_state_t tether_cache_lookup(tether_cache_t *c, const tether_cache_key_t *k,
                                         tether_time_t now, tether_cache_entry_t **e);
/* The entry's ETag (length 0: none); the pointer lives as long as the entry. */
size_t tether_cache_etag(const tether_cache_entry_t *e, const uint8_t **etag);
/* The length of the payload the entry answers with (tether_cache_view's). */
size_t tether_cache_payload_len(const tether_cache_entry_t *e);

/* Stores `resp`, the device's answer to the request keyed `k`, when it is
 * cacheable: 2.05, or a 4.xx/5.xx carrying Max-Age; Max-Age > 0; no Block2
 * and no OSCORE. Any entry under `k` is replaced, or dropped when `resp`
 * is not stored. Least recently used entries make room. Returns the new
 * entry, or NULL when nothing was stored. */
tether_cache_entry_t *tether_cache_store(tether_cache_t *c, const tether_cache_key_t *k,
                                         const tether_coap_msg_t *resp, tether_time_t now);
/* A 2.03 Valid `resp` to a request keyed `k` that carried the entry's
 * ETag: when the entry is still there with the ETag `resp` names, its
 * freshness restarts from `resp`'s Max-Age (default 60 s) and it is
 * returned; otherwise NULL. */
tether_cache_entry_t *tether_cache_validate(tether_cache_t *c, const tether_cache_key_t *k,
                                            const tether_coap_msg_t *resp, tether_time_t now);
/* Every entry whose path part equals `k`'s (any method, query or other
 * option) stops being fresh: kept for revalidation when it has an ETag,
 * dropped otherwise. Returns how many entries were affected. */
size_t tether_cache_invalidate(tether_cache_t *c, const tether_cache_key_t *k);

/* The entry as a message (type, MID and token 0; Max-Age the remaining
 * freshness at `now`): options decoded into buf[cap], the payload pointing
 * into the entry (valid until the cache next changes). TETHER_ENOSPC when
 * the options do not fit. */
int tether_cache_view(const tether_cache_entry_t *e, tether_time_t now, uint8_t *buf, size_t cap,
                      tether_coap_msg_t *m);

/* Encodes the entry as a response with the given type, MID and token; its
 * Max-Age is the remaining freshness at `now` in whole seconds. With
 * `valid_only`, a 2.03 Valid carrying only ETag and Max-Age (the client's
 * own ETag matched). TETHER_ENOSPC when it does not fit buf[cap]. */
int tether_cache_encode(const tether_cache_entry_t *e, uint8_t type, uint16_t mid,
                        const uint8_t *token, size_t tkl, bool valid_only, tether_time_t now,
                        uint8_t *buf, size_t cap, size_t *out_len);

const tether_cache_stats_t *tether_cache_stats(const tether_cache_t *c);

#endif
