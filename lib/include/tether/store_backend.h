/* tether — the state-store backend interface: what an implementation of
 * tether/store.h provides (an operations table) and what it shares (the
 * watcher list). Public because a backend that does I/O lives outside the
 * sans-I/O library: the Redis store (server/store/redis.c) needs hiredis
 * and the libuv loop, which lib/ never includes, so tetherd implements the
 * table there and hands lib/ a plain tether_store_t. The in-memory store
 * (state/store_mem.c) implements the same table inside lib/.
 *
 * An implementation embeds tether_store_t first, sets `ops` and leaves the
 * watchers zeroed; every operation keeps the contract of tether/store.h
 * (exactly one callback when it returns 0, none when it fails). */
#ifndef TETHER_STORE_BACKEND_H
#define TETHER_STORE_BACKEND_H

#include "tether/list.h"
#include "tether/store.h"

typedef struct {
    int (*get)(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
               tether_time_t now, tether_store_cb cb, void *user);
    int (*put)(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect, uint32_t ttl_ms,
               tether_time_t now, tether_store_cb cb, void *user);
    int (*del)(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
               uint64_t expect, tether_time_t now, tether_store_cb cb, void *user);
    int (*scan)(tether_store_t *s, tether_store_kind_t kind, uint64_t cursor, tether_time_t now,
                tether_store_cb cb, void *user);
    void (*tick)(tether_store_t *s, tether_time_t now);
    tether_time_t (*next_deadline)(const tether_store_t *s);
    void (*destroy)(tether_store_t *s);
    /* Optional (NULL: the store cannot answer without waiting). */
    int (*peek)(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                tether_time_t now, tether_store_rec_t *out, uint64_t *version);
} tether_store_ops_t;

struct tether_store {
    const tether_store_ops_t *ops;
    struct {
        tether_store_watch_cb cb;
        void *user;
    } watchers[TETHER_STORE_WATCHERS_MAX];
};

/* Where a scan resumes (both backends keep each kind's records in a list
 * in creation order, seq increasing, and a scan's cursor is the seq of the
 * record it returned last): scans of a whole kind run in steps, one record
 * each (a pattern group's members, /devices), so each step starts after
 * the previous one's record instead of walking from the head (quadratic:
 * 40k devices took 7 s). */
typedef struct {
    const tether_lnode_t *at; /* the record returned last, NULL: none */
    uint64_t seq;             /* its seq */
} tether_store_scan_pos_t;

/* The first node to look at for records after `cursor` in `order`. */
TETHER_API tether_lnode_t *tether_store_scan_start(const tether_list_t *order,
                                                   const tether_store_scan_pos_t *p,
                                                   uint64_t cursor);
/* A record leaves `order`: a position on it moves to its predecessor
 * (whose successors are still the records after the removed one). Call
 * before unlinking n. */
TETHER_API void tether_store_scan_forget(tether_store_scan_pos_t *p, const tether_lnode_t *n);

/* Tells every watcher about a change (after the operation's callback, and
 * for another node's write as soon as the backend learns of it). */
TETHER_API void tether_store_notify(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                                    size_t key_len, uint64_t version);

#endif
