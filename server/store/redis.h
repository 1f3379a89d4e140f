/* tetherd — the Redis state store (SPEC S5, S7, S10): tether/store.h on
 * Redis, with a local replica so that no request waits for Redis.
 *
 * Why here and not in lib/: it needs hiredis's async API and the libuv
 * loop, and lib/ is sans-I/O. It implements the public backend table
 * (tether/store_backend.h); lib/proxy only ever sees a tether_store_t.
 * Its pure parts are beside it and unit-tested alone: rkey.c (key layout,
 * values, JSON), wrap.c (sealed credential keys), backlog.c (coalesced
 * writes), rconn.c (connection state, timeouts, back-off).
 *
 * Replica. Every record of every kind except NODE is mirrored in this
 * process: loaded by a full resync (SCAN + GET, one key per command) after
 * each connect, then kept fresh from the change log (XREAD on
 * tether:{log} from the last entry id seen, every poll_ms). get and scan
 * answer from the replica at once; a get that misses while Redis is up
 * also asks Redis (the answer comes later, from the loop). NODE leases are
 * read with one MGET (one hash tag) every lease_poll_ms.
 *
 * Writes. DEVICE, OBSERVE and SESSION writes change the replica and are
 * acknowledged at once (the callback runs before put returns), then go
 * to Redis through the backlog (backlog.h): coalesced per key, bounded,
 * replayed after an outage with the version last seen (a Lua
 * compare-and-set), each applied write followed by its change-log entry.
 * So a Redis outage loses nothing acknowledged: the backlog holds it
 * until Redis takes it. CRED writes are the operator's and must reach
 * every node: they are sent at once as a compare-and-set and complete
 * when Redis answered (TETHER_EIO while Redis is down); their key is
 * sealed (wrap.h) under the key name and the version written. NODE puts
 * (leases) are a plain SET with an expiry, TETHER_EIO while down.
 *
 * Conflicts. A replayed write that finds another version in Redis: a
 * DEVICE or SESSION record that still names this node as its owner is
 * written again over it (this node holds the tunnel, so it is the truth);
 * otherwise the other node's record wins and is read back.
 *
 * Watchers hear this node's writes after their callback and other nodes'
 * writes when the change log (or a resync, or a lease poll) brings them.
 *
 * Not covered: Redis Cluster needs a cluster-aware client (hiredis 0.14
 * has none); the key layout is ready for it (rkey.h). A host name in the
 * URL is resolved synchronously by hiredis at each connect: use an
 * address (or a name in /etc/hosts). */
#ifndef TETHERD_STORE_REDIS_H
#define TETHERD_STORE_REDIS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "rconn.h"
#include "tether/store_backend.h"

typedef struct {
    const char *url;            /* redis://[:PASSWORD@]HOST[:PORT][/DB] */
    uint8_t node_id;            /* this node: stamps the change-log entries it writes */
    const uint8_t *cluster_key; /* derives the key that seals credentials */
    size_t cluster_key_len;
    size_t max_records; /* replica bound */
    size_t backlog_max; /* dirty keys at most (SPEC S10) */
    uint32_t poll_ms;   /* change-log read interval */
    uint32_t lease_poll_ms;
    uint32_t log_maxlen; /* the change log is trimmed to about this many entries */
    tetherd_rconn_conf_t conn;
} tetherd_redis_conf_t;

typedef struct tetherd_redis tetherd_redis_t;

typedef struct {
    const char *state; /* "up" or "down" */
    uint64_t backlog;  /* dirty keys waiting for Redis */
    uint64_t backlog_max;
    uint64_t reconnects;
    uint64_t errors;        /* error replies, undecodable records, timeouts */
    uint64_t conflicts;     /* replayed writes that found another version */
    uint64_t stale_refused; /* credential versions older than one seen (replay, reorder) */
    uint64_t records;       /* in the replica */
    uint64_t log_applied;   /* other nodes' changes applied from the change log */
    uint64_t resyncs;       /* full resyncs completed */
    uint64_t coalesced;     /* writes folded into a dirty key */
    bool synced;            /* the replica has been loaded since the last connect */
} tetherd_redis_stats_t;

void tetherd_redis_conf_defaults(tetherd_redis_conf_t *c);
/* Parses the URL and starts connecting (it is fine for Redis to be down:
 * the store works on its replica and connects when it can). 0,
 * TETHER_ECONFIG (bad URL, no cluster key) or TETHER_ENOMEM. */
int tetherd_redis_create(uv_loop_t *loop, const tetherd_redis_conf_t *conf, tetherd_redis_t **out);
tether_store_t *tetherd_redis_store(tetherd_redis_t *r);
/* Reads of the replica alone, for the process's own views (admin
 * listings, the credential set): never a Redis round trip. The record is
 * valid until the store is next called or the loop runs. */
const tether_store_rec_t *tetherd_redis_find(const tetherd_redis_t *r, tether_store_kind_t kind,
                                             const uint8_t *key, size_t key_len);
/* The record after *cursor (0: from the first) in the replica's order,
 * *cursor moved on; NULL at the end. */
const tether_store_rec_t *tetherd_redis_next(const tetherd_redis_t *r, tether_store_kind_t kind,
                                             uint64_t *cursor);
void tetherd_redis_stats(const tetherd_redis_t *r, tetherd_redis_stats_t *out);
/* Called after the store completed operations or told watchers something
 * from the loop (not from inside a store call): the process runs its
 * output pump there. */
void tetherd_redis_on_event(tetherd_redis_t *r, void (*fn)(void *user), void *user);
/* Disconnects and closes the timer; memory goes once the loop ran (the
 * tether_store_t must no longer be used). Idempotent; NULL is fine. */
void tetherd_redis_close(tetherd_redis_t *r);

#endif
