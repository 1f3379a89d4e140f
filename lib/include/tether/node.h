/* tether — one node's protocol state, without I/O.
 *
 * The server feeds CoAP messages (plain datagrams or decrypted DTLS
 * records) with the peer that sent them and `now`; the node answers local
 * resources and the resource directory, relays client requests down device
 * tunnels (role reversal) or answers them from its response cache, queues
 * requests for sleeping devices, shares one device-side observation
 * among the clients observing a resource (RFC 7641), and puts every
 * datagram to send in its outbox. tether_node_tick() runs timers;
 * tether_node_next_deadline() says when it must next be called. Device
 * directory entries are written through a state store (tether/store.h).
 */
#ifndef TETHER_NODE_H
#define TETHER_NODE_H

#include "tether/addr.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/store.h"

typedef struct {
    uint64_t rx_datagrams;
    uint64_t rx_rejected; /* malformed or bad critical option */
    uint64_t duplicates;  /* retransmissions answered from the dedup cache */
    uint64_t requests_local;
    uint64_t requests_relayed;    /* client requests accepted for a device */
    uint64_t relay_ok;            /* answered with the device's response */
    uint64_t relay_timeouts;      /* answered 5.04 */
    uint64_t relay_gone;          /* answered 5.02 */
    uint64_t relay_denied;        /* 4.01 / 4.03 */
    uint64_t relay_unknown;       /* 4.04: no such device */
    uint64_t relay_mid_exhausted; /* 5.03 + Max-Age: the device's MID budget was spent */
    uint64_t queued;              /* requests held for a sleeping device */
    uint64_t queue_pending;
    uint64_t devices_registered;
    uint64_t registrations;
    uint64_t retransmissions;
    uint64_t cache_hits;          /* answered from a fresh cache entry */
    uint64_t cache_misses;        /* cacheable requests relayed (stale entries included) */
    uint64_t cache_revalidated;   /* stale entries refreshed by the device's 2.03 */
    uint64_t cache_invalidations; /* entries made stale by unsafe requests or 2.01/2.02/2.04 */
    uint64_t cache_evictions;     /* entries dropped to stay within cache_bytes */
    uint64_t cache_entries;
    uint64_t cache_bytes;
    uint64_t observe_device_observations; /* live device-side observations */
    uint64_t observe_observers;           /* clients observing through this node */
    uint64_t observe_notifications_sent;  /* notifications sent to observers */
    uint64_t observe_rejected;            /* registrations refused (5.03) at a bound */
    uint64_t observe_stale;               /* device notifications older than the last (dropped) */
    /* block-wise (RFC 7959) */
    uint64_t block_transfers;        /* Block2 representations reassembled from devices */
    uint64_t block_blocks_fetched;   /* blocks tether asked devices for */
    uint64_t block_restarts;         /* transfers restarted because the ETag changed */
    uint64_t block_failed;           /* transfers abandoned (device error, bounds, timeout) */
    uint64_t block_served;           /* Block2 blocks served to clients by tether */
    uint64_t block_transfers_active; /* transfers running or representations kept */
    uint64_t uploads_completed;      /* Block1 uploads the device answered finally */
    uint64_t uploads_rejected;       /* 4.08 / 4.13 / 5.03 answered by tether */
    uint64_t uploads_abandoned;      /* uploads the client stopped continuing */
    uint64_t upload_blocks;          /* Block1 blocks relayed to devices */
    uint64_t uploads_active;
    /* across nodes (lib/proxy/xrelay.h) */
    uint64_t xrelay_sent;            /* messages for other nodes */
    uint64_t xrelay_received;        /* messages from other nodes */
    uint64_t xrelay_served;          /* requests other nodes relayed here */
    uint64_t xrelay_duplicates;      /* of those, retransmissions */
    uint64_t xrelay_retransmissions; /* our requests sent again */
    uint64_t xrelay_node_down;       /* requests answered 5.02: the device's node is not alive */
    uint64_t xrelay_rehomed;  /* observations moved to the node that adopted their device's node */
    uint64_t observe_adopted; /* observers of a dead node registered again here (failover) */
    /* Per-client and per-device bounds (proxy/bounds.h): each counts the
     * times it bit. */
    uint64_t bound_pending;      /* 4.29: a client at max_pending_per_client */
    uint64_t bound_observers;    /* 5.03: a client at max_observers_per_client */
    uint64_t bound_observations; /* 5.03: a device at max_observations_per_device */
    uint64_t bound_groups;       /* 4.29: a client at max_group_requests_per_client */
    uint64_t bound_nstart;       /* 5.03: a device's NSTART hold full (nstart_queue_max) */
    uint64_t nstart_held;        /* requests that waited for an NSTART slot */
    uint64_t bound_dedup;        /* a peer's oldest dedup entry dropped at dedup_per_peer */
    /* group requests (draft-ietf-core-groupcomm-proxy) */
    uint64_t groups_defined;
    uint64_t group_requests;           /* fan-outs started */
    uint64_t group_requests_active;    /* fan-outs whose T' has not passed */
    uint64_t group_members_sent;       /* member requests sent or queued */
    uint64_t group_responses;          /* member responses forwarded within T' */
    uint64_t group_members_unanswered; /* member requests still out at T' (cancelled) */
    uint64_t group_rejected;           /* 4.00 (no Multicast-Timeout), 4.03, 5.03 */
    uint64_t group_from_cache;         /* answered from the cache alone (Group-ETag) */
} tether_node_stats_t;

typedef struct {
    uint8_t node_id;
    const char *version;
    uint16_t opt_multicast_timeout;
    uint16_t opt_reply_from;
    uint16_t opt_group_etag;     /* Group-ETag (draft-ietf-core-groupcomm-proxy §5.3) */
    uint64_t seed;               /* randomises MIDs, tokens and back-off */
    uint32_t request_timeout_ms; /* device silent this long -> 5.04 */
    uint32_t ack_delay_ms;       /* wait this long for a piggybackable answer */
    uint32_t queue_max;          /* queued requests per device */
    uint32_t queue_ttl_ms;       /* a queued request gets 5.04 after this */
    uint32_t queue_awake_ms;     /* a queue-mode device listens this long after it spoke */
    uint32_t max_devices;
    uint32_t max_pending;                /* relayed requests in flight or queued, node-wide */
    bool plain_trusted;                  /* plain-CoAP clients may use the proxy (loopback) */
    uint64_t cache_bytes;                /* response cache budget, 0 disables caching */
    uint32_t max_observers;              /* client observers, node-wide (5.03 beyond) */
    uint32_t max_observers_per_resource; /* observers of one device observation */
    uint32_t block_max_bytes;            /* largest representation reassembled (Block2) */
    uint32_t block_size;                 /* block size asked of devices and default to clients */
    uint32_t block_max_transfers;        /* Block2 transfers plus Block1 uploads, node-wide */
    uint32_t block_timeout_ms;           /* a whole Block2 transfer takes at most this */
    uint32_t block_idle_ms;              /* an upload or kept representation not continued */
    uint32_t upload_max_bytes;           /* a Block1 upload beyond this gets 4.13 */
    uint32_t uploads_per_device;         /* Block1 uploads to one device at once */
    uint32_t xrelay_max;       /* requests relayed to other nodes at once (+ aggregates) */
    uint32_t xslots_max;       /* requests from other nodes held at once */
    uint32_t xrelay_retry_ms;  /* first retransmission of a request to another node */
    uint32_t xrelay_margin_ms; /* the hop's share of a remote request's deadline */
    /* Per-client and per-device bounds (proxy/bounds.h; 0 = no bound). A
     * client is its identity (its address for plain CoAP); operator
     * requests are exempt. */
    uint32_t max_pending_per_client;        /* relayed requests pending (4.29 beyond) */
    uint32_t max_observers_per_client;      /* observers (5.03 beyond) */
    uint32_t max_group_requests_per_client; /* group fan-outs at once (4.29 beyond) */
    uint32_t max_observations_per_device;   /* device-side observations (5.03 beyond) */
    uint32_t nstart;                        /* CONs outstanding to one device (RFC 7252 §4.7) */
    uint32_t nstart_queue_max;              /* requests waiting for an NSTART slot per device */
    uint32_t dedup_max;         /* received MIDs remembered for dedup, node-wide (RFC 7252 §4.5) */
    uint32_t dedup_per_peer;    /* of those, what one peer may hold */
    uint32_t max_groups;        /* groups defined at most */
    uint32_t group_max_members; /* members of one group (pattern matches included) */
    uint32_t group_max_requests;       /* group fan-outs at once (5.03 beyond) */
    uint32_t group_pacing_burst;       /* members sent the request at once */
    uint32_t group_pacing_interval_ms; /* between two such batches */
    uint32_t group_timeout_max_ms;     /* a client's Multicast-Timeout is clamped to this */
    /* Where the directory entries go (borrowed; must outlive the node).
     * NULL: the node makes and owns an in-memory store (SPEC S7). */
    tether_store_t *store;
} tether_node_conf_t;

typedef struct tether_node tether_node_t;

/* Who sent a message: the link it came on and, over DTLS, the
 * authenticated identity and its role (identity NULL for plain CoAP). */
typedef struct {
    tether_link_t link;
    const char *identity;
    tether_role_t role;
} tether_peer_t;

TETHER_API void tether_node_conf_defaults(tether_node_conf_t *conf);
TETHER_API int tether_node_create(const tether_node_conf_t *conf, const tether_creds_t *creds,
                                  tether_node_t **out);
TETHER_API void tether_node_destroy(tether_node_t *node);
/* Credentials and ACLs used from now on (SIGHUP); `creds` is borrowed. */
TETHER_API void tether_node_set_creds(tether_node_t *node, const tether_creds_t *creds);

/* One CoAP message in. Replies and relayed messages go to the outbox. */
TETHER_API void tether_node_input(tether_node_t *node, const tether_peer_t *peer,
                                  const uint8_t *buf, size_t len, tether_time_t now);
/* A DTLS session ended: requests in flight on it fail or are queued, and
 * the observers on it are removed. */
TETHER_API void tether_node_link_down(tether_node_t *node, const tether_link_t *link,
                                      tether_time_t now);
TETHER_API void tether_node_tick(tether_node_t *node, tether_time_t now);
/* When tether_node_tick must next run (UINT64_MAX: nothing scheduled). */
TETHER_API tether_time_t tether_node_next_deadline(const tether_node_t *node);

TETHER_API size_t tether_node_out_count(const tether_node_t *node);
TETHER_API const tether_out_t *tether_node_out_get(const tether_node_t *node, size_t i);
TETHER_API void tether_node_out_clear(tether_node_t *node);

TETHER_API const tether_node_stats_t *tether_node_stats(const tether_node_t *node);
/* Relayed requests not answered yet (in flight or queued), operator
 * requests included: a draining server waits for this to reach 0. */
TETHER_API size_t tether_node_pending(const tether_node_t *node);

/* ---- across nodes (lib/proxy/xrelay.h: contract and payloads) ---- */
#define TETHER_XMSG_MAX (TETHER_MSG_MAX + 8)
/* A message for another node's xrelay, sent by the host over the cluster
 * channel as `type` (TETHER_CLUSTER_XREQ, XRSP or XEND). */
typedef struct {
    uint8_t to;
    uint8_t type;
    uint16_t len;
    uint8_t data[TETHER_XMSG_MAX];
} tether_xmsg_t;
/* Whether node `id` is alive (the cluster channel's view). */
typedef bool (*tether_node_alive_fn)(void *user, uint8_t id, tether_time_t now);
/* Without it every other node counts as down (requests for their devices: 5.02). */
TETHER_API void tether_node_set_cluster(tether_node_t *node, tether_node_alive_fn alive,
                                        void *user);
/* A message other node `from` sent (its payload as the channel delivered it). */
TETHER_API void tether_node_xinput(tether_node_t *node, uint8_t from, uint8_t type,
                                   const uint8_t *data, size_t len, tether_time_t now);
/* An outbox entry on a TETHER_LINK_CLUSTER link: the host hands it here
 * instead of sending it; then, once the outbox is cleared,
 * tether_node_xsettle (acknowledges and closes slots: feeds the node). */
TETHER_API void tether_node_xlink_out(tether_node_t *node, const tether_out_t *o);
TETHER_API void tether_node_xsettle(tether_node_t *node, tether_time_t now);
/* Messages for other nodes, oldest first; the host sends and clears them. */
TETHER_API size_t tether_node_xout_count(const tether_node_t *node);
TETHER_API const tether_xmsg_t *tether_node_xout_get(const tether_node_t *node, size_t i);
TETHER_API void tether_node_xout_clear(tether_node_t *node);
/* The node's state store (directory, observe registry), for the admin views. */
TETHER_API tether_store_t *tether_node_store(const tether_node_t *node);

/* A registered device as seen by operators (admin API). */
typedef struct {
    const char *name;
    const char *regid;
    uint8_t node_id; /* the node holding its tunnel */
    bool online;     /* its tunnel is up */
    bool queue_mode;
    uint32_t lifetime_s;
    tether_time_t registered_at, last_seen, expires;
    tether_addr_t addr;
    uint32_t nat_binding_min_ms; /* the NAT kept the binding at least this long */
    uint32_t nat_binding_max_ms; /* and lost it within this long (0: not seen) */
    uint32_t keepalive_ms;       /* recommended keep-alive interval */
    uint32_t queued;
    const char *links;
} tether_device_info_t;

/* Looks up a registered device; TETHER_ENOTFOUND otherwise. */
TETHER_API int tether_node_device(const tether_node_t *node, const char *name,
                                  tether_device_info_t *info);
/* Paged listing in registration order: the device after the one whose
 * regid is `cursor` (NULL: the first); TETHER_ENOTFOUND at the end. A
 * cursor whose device is gone still resumes at the right place. */
TETHER_API int tether_node_device_next(const tether_node_t *node, const char *cursor,
                                       tether_device_info_t *info);
/* Groups (draft-ietf-core-groupcomm-proxy; lib/proxy/group.h has the
 * request semantics). A group names either explicit members or a pattern
 * (fnmatch glob over this node's devices). */
typedef struct {
    const char *name;
    const char *pattern; /* NULL for a member list */
    size_t nmembers;
    const char *const *member; /* member[0..nmembers) */
} tether_group_info_t;

/* Defines or replaces group `name` (case-insensitive): `pattern` (may be
 * NULL) or members[0..nmembers), exactly one of them. 0; TETHER_EINVAL (a
 * bad name, pattern or member, both or neither); TETHER_ELIMIT beyond
 * max_groups or group_max_members; TETHER_ENOMEM. Fan-outs already
 * running keep their members. */
TETHER_API int tether_node_group_set(tether_node_t *node, const char *name, const char *pattern,
                                     const char *const *members, size_t nmembers);
/* 0 or TETHER_ENOTFOUND. */
TETHER_API int tether_node_group_remove(tether_node_t *node, const char *name);
/* The same through the state store (lib/proxy/group_store.c), so every
 * node sharing it (Redis) has the group; the node applies it when the
 * store tells it, at once for its own write. Results as
 * tether_node_group_set, or the store's (TETHER_ELIMIT: the store is
 * full; TETHER_EIO). */
TETHER_API int tether_node_group_put(tether_node_t *node, const char *name, const char *pattern,
                                     const char *const *members, size_t nmembers,
                                     tether_time_t now);
/* Deletes the stored group; a group the store does not have (a
 * groups_file group) is removed from this node only. 0 or
 * TETHER_ENOTFOUND. */
TETHER_API int tether_node_group_del(tether_node_t *node, const char *name, tether_time_t now);
/* The group called `name`; its strings are valid until the group changes.
 * 0 or TETHER_ENOTFOUND. */
TETHER_API int tether_node_group(const tether_node_t *node, const char *name,
                                 tether_group_info_t *info);
/* In definition order: the group after `after` (NULL: the first);
 * TETHER_ENOTFOUND at the end (or when `after` is gone). */
TETHER_API int tether_node_group_next(const tether_node_t *node, const char *after,
                                      tether_group_info_t *info);

/* Failover (SPEC S5). This node adopted the DTLS sessions of a dead node;
 * these continue what that node held for them, before the peers speak.
 *
 * Device `rec` (the directory entry the dead node wrote for it) continues
 * here on `link`, its adopted session: registered here at once, under
 * the same registration id where it is free (the device's next update
 * names it), lifetime from now, links kept, and the directory entry names
 * this node; requests for it and observations of it work before it sends
 * anything. 0 (also when it is registered here already: the link moves);
 * TETHER_EINVAL (rec names no device); TETHER_ELIMIT (directory full);
 * TETHER_ENOMEM. */
TETHER_API int tether_node_device_adopt(tether_node_t *node, const tether_store_device_t *rec,
                                        const tether_link_t *link, tether_time_t now);
/* The client on `peer` (an adopted session) observed the resource whose
 * cache key is key[key_len] (an observe registry record's key without its
 * node byte) with token tok[tkl] on the dead node: it observes it here
 * now, as if it had registered again (a NON GET/FETCH with Observe: 0 and
 * its token, under its ACL), so it gets the next notification with its
 * own token. The device-side observation is the local one when the
 * device is here (registered with `utok` when this node creates it, so
 * the device's notifications for the dead node's registration go on
 * matching), else this node's aggregate at the device's node. 0;
 * TETHER_EPROTO (not a cache key); TETHER_EINVAL. */
TETHER_API int tether_node_observer_adopt(tether_node_t *node, const tether_peer_t *peer,
                                          const uint8_t *key, size_t key_len, const uint8_t *tok,
                                          size_t tkl, const uint8_t *utok, size_t utok_len,
                                          tether_time_t now);

/* Removes a registration (operator action): its pending requests get 5.02. */
TETHER_API int tether_node_device_remove(tether_node_t *node, const char *name, tether_time_t now);

#endif
