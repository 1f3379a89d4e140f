/* tether — the state store: what the nodes of a cluster share (SPEC S5,
 * S7), behind one asynchronous interface.
 *
 * Records are plain values, one kind per thing the cluster shares:
 *   DEVICE   device directory entry       key: device name
 *   CRED     credential and its ACL       key: identity (or derived prefix)
 *   OBSERVE  observe registry entry       key: the observed resource (cache key bytes)
 *   SESSION  session checkpoint           key: the session's CID
 *   NODE     node liveness (a lease)      key: the node id (one byte)
 *   GROUP    group of devices (admin API)  key: group name
 * Every record has a version: 1 when created, +1 on every put. A put or
 * delete may name the version it expects (compare-and-set): TETHER_STORE_ANY
 * (unconditional), 0 (only if absent: create) or the version last seen;
 * another version fails with TETHER_ECONFLICT, reporting the current one.
 *
 * Asynchronous: every operation completes through its callback, exactly
 * once, when it returns 0 (a negative return means it was not started and
 * the callback is never called). The in-memory store completes before the
 * call returns; a networked store (Redis) completes later from its event
 * loop, so callers must not assume either: a callback's `user` must stay
 * valid until it runs (pass the long-lived owner and find what the
 * operation was about by res->key, not a pointer that may be freed).
 *
 * Borrowing: the variable parts of a record (links, ACL rules, observers,
 * session blob) are borrowed for the duration of a put and copied; in a
 * result they point into the store and are valid during the callback only.
 *
 * Change notification: watchers hear every change (put, delete, expiry),
 * their own writes included, after the operation's callback; a networked
 * store reports other nodes' writes too. A change carries kind, key and
 * the new version (0: the record is gone), not the record: a watcher that
 * cares reads it.
 *
 * Time: sans-I/O like the rest of lib/; `now` is passed in. A record put
 * with a ttl expires ttl_ms after the put (the node lease); the in-memory
 * store drops expired records in tether_store_tick and never returns them.
 */
#ifndef TETHER_STORE_H
#define TETHER_STORE_H

#include <stdbool.h>

#include "tether/addr.h"
#include "tether/common.h"
#include "tether/creds.h"

#define TETHER_STORE_ANY UINT64_MAX /* expected version: any (unconditional) */
#define TETHER_STORE_KEY_MAX 2048   /* longest key (an observed resource) */
#define TETHER_STORE_CID_MAX 16
#define TETHER_STORE_REGID_MAX 16
#define TETHER_STORE_TOKEN_MAX 8

typedef enum {
    TETHER_STORE_DEVICE = 1,
    TETHER_STORE_CRED = 2,
    TETHER_STORE_OBSERVE = 3,
    TETHER_STORE_SESSION = 4,
    TETHER_STORE_NODE = 5,
    TETHER_STORE_GROUP = 6,
} tether_store_kind_t;
#define TETHER_STORE_KINDS 7 /* one past the last kind */

/* A registered device (SPEC S3, S5): where its tunnel is and what it
 * registered. The proxy keeps its runtime state (requests, observations,
 * timers) in proxy/registry.h. */
typedef struct {
    char name[TETHER_IDENTITY_MAX];
    char regid[TETHER_STORE_REGID_MAX]; /* RD registration id, names its node */
    uint8_t node_id;                    /* the node holding its tunnel */
    uint8_t cid_len;                    /* its session's CID (0: not known here) */
    uint8_t cid[TETHER_STORE_CID_MAX];
    tether_addr_t addr; /* where its latest message came from */
    uint32_t lifetime_s;
    bool queue_mode;
    /* Coarse last-seen: written at registration and update, not per
     * message, in seconds of the writer's `now` (a monotonic clock today;
     * shared across hosts it has to become wall-clock time). */
    uint64_t last_seen_s;
    const char *links; /* registered link-format (RFC 6690) */
    size_t links_len;
    const char *groups; /* its groups, comma-separated */
    size_t groups_len;
} tether_store_device_t;

/* One ACL rule: the credentials' own (tether/creds.h). */
typedef tether_creds_rule_t tether_store_allow_t;

/* Identities and derived prefixes share the key space: a prefix record's
 * identity ends in '*' ("dev*"). */
typedef struct {
    char identity[TETHER_IDENTITY_MAX]; /* or "prefix*" for derived identities */
    bool derived;                       /* key is the fleet master (HMAC-derived keys) */
    tether_role_t role;
    uint8_t key_len;
    uint8_t key[64];
    const tether_store_allow_t *allow;
    size_t nallow;
} tether_store_cred_t;

/* One client observer of a shared observation, on any node. */
typedef struct {
    uint8_t node_id;  /* the node its session is on */
    uint8_t link_len; /* tether_link_key of its link on that node */
    uint8_t link[20];
    uint8_t tkl;
    uint8_t token[TETHER_STORE_TOKEN_MAX];
} tether_store_observer_t;

/* A device resource observed through the cluster (SPEC S4 Observe). */
typedef struct {
    const uint8_t *key; /* the resource: the cache key (device, method, options) */
    size_t key_len;
    char device[TETHER_IDENTITY_MAX];
    uint8_t utok_len; /* the upstream token tether registered it with */
    uint8_t utok[TETHER_STORE_TOKEN_MAX];
    const tether_store_observer_t *observers;
    size_t nobservers;
} tether_store_observe_t;

/* What another node needs to continue a DTLS session (SPEC S5): an opaque,
 * already wrapped blob, the node that owns it and its transmit-sequence
 * ceiling. The record version orders checkpoints. */
typedef struct {
    uint8_t cid_len;
    uint8_t cid[TETHER_STORE_CID_MAX];
    uint8_t node_id;     /* the node holding it now (the CID's byte names its first) */
    uint64_t generation; /* that node's generation when it wrote it (checkpoint.h binding) */
    uint64_t seq_ceiling;
    const uint8_t *blob;
    size_t blob_len;
} tether_store_session_t;

/* A node's lease (put with a ttl, renewed before it runs out). */
typedef struct {
    uint8_t node_id;
    tether_addr_t addr;  /* its internal channel */
    uint64_t generation; /* adoption of a dead node's id bumps it (fenced by CAS) */
    /* 0: the node's own lease. Else an adoption claim: node `adopted_by`
     * took this dead node's sessions (put only if absent, so one wins). */
    uint8_t adopted_by;
    /* The node is leaving (SIGTERM) and has checkpointed its sessions:
     * adopt them now, without waiting for its channel to fall silent. */
    bool handover;
} tether_store_node_t;

/* A group of devices for group requests (SPEC S4; the proxy's table is
 * lib/proxy/group.h): explicit members or a pattern. members holds
 * nmembers names, each NUL-terminated, back to back (members_len bytes
 * in all, the NULs included). */
typedef struct {
    char name[TETHER_IDENTITY_MAX];
    char pattern[TETHER_IDENTITY_MAX]; /* "" with members */
    const char *members;
    size_t members_len;
    size_t nmembers;
} tether_store_group_t;

typedef struct {
    tether_store_kind_t kind;
    union {
        tether_store_device_t device;
        tether_store_cred_t cred;
        tether_store_observe_t observe;
        tether_store_session_t session;
        tether_store_node_t node;
        tether_store_group_t group;
    } u;
} tether_store_rec_t;

typedef struct {
    int rc; /* 0, TETHER_ENOTFOUND, TETHER_ECONFLICT, TETHER_ENOMEM, TETHER_EIO (store unreachable)
             */
    tether_store_kind_t kind;
    const uint8_t *key;
    size_t key_len;
    uint64_t version;              /* the record's version after the operation, 0: none */
    const tether_store_rec_t *rec; /* get and scan: the record (NULL when none) */
    uint64_t cursor;               /* scan: pass on for the next record, 0: the end */
} tether_store_result_t;

typedef void (*tether_store_cb)(void *user, const tether_store_result_t *res);

/* A change: kind, key and the new version (0: the record is gone). */
typedef void (*tether_store_watch_cb)(void *user, tether_store_kind_t kind, const uint8_t *key,
                                      size_t key_len, uint64_t version);
#define TETHER_STORE_WATCHERS_MAX 4

/* Implementations: state/store_mem.c, and tetherd's Redis store
 * (server/store/redis.c, outside lib/ since it does I/O); their common
 * part is tether/store_backend.h. */
typedef struct tether_store tether_store_t;

/* The record's key (name, identity, resource, CID or node id), pointing
 * into `rec` or `buf`; TETHER_EINVAL for an empty or oversized key. */
TETHER_API int tether_store_rec_key(const tether_store_rec_t *rec, uint8_t buf[1],
                                    const uint8_t **key, size_t *key_len);

/* The record of `kind` and `key`: res->rec, or res->rc TETHER_ENOTFOUND. */
TETHER_API int tether_store_get(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                                size_t key_len, tether_time_t now, tether_store_cb cb, void *user);
/* The record of `kind` and `key` as the store holds it right now, when
 * it can tell without waiting (the in-memory store; another answers
 * TETHER_EAGAIN): into *out (and its version), the variable parts
 * pointing into the store, valid until the store's next put, delete or
 * tick. Lets a caller keep no copy of what the store holds (SPEC S9).
 * 0, TETHER_ENOTFOUND, TETHER_EAGAIN or TETHER_EINVAL. */
TETHER_API int tether_store_peek(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                                 size_t key_len, tether_time_t now, tether_store_rec_t *out,
                                 uint64_t *version);
/* Creates or replaces the record (its key from the record itself) when its
 * version is `expect`; ttl_ms 0: it does not expire. cb may be NULL. */
TETHER_API int tether_store_put(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect,
                                uint32_t ttl_ms, tether_time_t now, tether_store_cb cb, void *user);
/* Deletes the record when its version is `expect`; TETHER_ENOTFOUND when
 * there is none. cb may be NULL. */
TETHER_API int tether_store_del(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                                size_t key_len, uint64_t expect, tether_time_t now,
                                tether_store_cb cb, void *user);
/* One record of `kind` after `cursor` (0: from the start), in an order
 * that is stable while records are added and removed: res->rec and
 * res->cursor for the next call; res->rc TETHER_ENOTFOUND at the end. */
TETHER_API int tether_store_scan(tether_store_t *s, tether_store_kind_t kind, uint64_t cursor,
                                 tether_time_t now, tether_store_cb cb, void *user);
/* Expires records whose ttl ran out (watchers hear version 0). */
TETHER_API void tether_store_tick(tether_store_t *s, tether_time_t now);
/* When tether_store_tick must next run (UINT64_MAX: nothing scheduled). */
TETHER_API tether_time_t tether_store_next_deadline(const tether_store_t *s);
TETHER_API void tether_store_destroy(tether_store_t *s);

/* Calls cb(user, ...) on every change from now on until
 * tether_store_unwatch with the same pair; TETHER_ELIMIT beyond
 * TETHER_STORE_WATCHERS_MAX watchers. */
TETHER_API int tether_store_watch(tether_store_t *s, tether_store_watch_cb cb, void *user);
TETHER_API void tether_store_unwatch(tether_store_t *s, tether_store_watch_cb cb, void *user);

/* The embedded in-memory store (state/store_mem.c): the default of a
 * single node without Redis (SPEC S7). Completes every operation before
 * returning. `max_records` bounds it (TETHER_ELIMIT beyond). */
TETHER_API int tether_store_mem_create(size_t max_records, tether_store_t **out);

#endif
