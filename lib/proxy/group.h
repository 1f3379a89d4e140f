/* tether — group requests through the proxy (internal to lib/proxy;
 * draft-ietf-core-groupcomm-proxy-07, SPEC S4).
 *
 * A group is a name (compared case-insensitively, like a host) with
 * explicit members (device names) and/or a pattern (fnmatch glob over the
 * devices registered on this node). A client names the group where it
 * would name a device (Uri-Host or the host of Proxy-Uri) and sends a
 * Multicast-Timeout option (number conf.opt_multicast_timeout, uint value
 * T' in seconds, draft §2). Then:
 *   - no Multicast-Timeout: 4.00 carrying a Multicast-Timeout of value 0
 *     (an empty option) and a diagnostic payload (draft §3.2 step 3);
 *   - not allowed (ACL "groups" rules, tether_creds_allowed_group): 4.03;
 *     a plain-CoAP client where plain CoAP is not trusted: 4.01 (relay.c);
 *   - else a fan-out: a CON to the client is acknowledged at once (empty
 *     ACK); the request, Multicast-Timeout removed (step 4), goes to every
 *     member device that is registered here, paced: at most
 *     conf.group_pacing_burst members at once, the next batch
 *     conf.group_pacing_interval_ms later (so 1,000 members do not burst);
 *     each device response that arrives within T' of the request goes to
 *     the client on its own, as a NON with the client's token, fresh MID
 *     and a Reply-From option (conf.opt_reply_from) naming the device;
 *     at T' the fan-out ends: member requests still out (queued for a
 *     sleeping device, or unanswered) are cancelled and later responses
 *     dropped. T' = 0: the request is still sent, every response dropped.
 *     tether's own verdicts about a member (timeout, device gone) are not
 *     server responses and are not forwarded.
 *
 * Reply-From value (draft §2, a CBOR sequence of CRIs): one CRI naming the
 * device as the host tether answers for, [-1, "<device>"] (scheme coap,
 * host-name), encoded 0x82 0x20 <text string>. A client reaches that
 * device alone through tether with Uri-Host: <device>.
 *
 * Observe (draft §3.2.2, §3.5.2; RFC 7641): a GET/FETCH with Observe: 0
 * and T' > 0 is a group observation. tether observes every member itself
 * (paced like any fan-out) as one more observer of the device-side
 * observation of that member resource (observe.h), so a direct observer
 * of the same resource and the group share one observation on the
 * device. Each member's notifications go to the client individually with
 * the client's token and a Reply-From naming the member, the final
 * (non-2.xx or Observe-less) response of a member too. At T' the members
 * that have sent no notification are dropped; when none has, the group
 * observation ends like a plain fan-out. Otherwise it lives on past T'
 * while a member's observation does (§3.5.2: the token is kept while
 * observations are active with servers). Since nothing then bounds it
 * but the client, the proxy checks the client (§3.5.2's SHOULD, as RFC
 * 7641 §4.5 has a server do): the first notification forwarded after T'
 * is confirmable, and one at least every 24 hours after that (whichever
 * member it comes from); one the client leaves unacknowledged (or
 * rejects) ends the whole group observation. It ends at every member (each member
 * observer leaves; the last observer of a device resource cancels it on
 * the device, RFC 7641 §3.6) when the client sends the group request
 * again with its token and Observe: 1 (then answered like any group
 * request), rejects a notification with RST, leaves a confirmable one
 * unacknowledged (RFC 7641 §4.5), or its session ends. Member observers
 * are charged to the client's observer bound (bounds.h; a member beyond
 * it is not observed) and are not written to the observe registry (a node taking them over would
 * lose the group's Reply-From). A member whose tunnel is on another node
 * is observed the same way through this node's one aggregate observation
 * of that resource at the device's node (xrelay.h, xobserve.c), shared
 * with this node's direct observers of it; the device node's final
 * answers reach the client, tether's own verdicts (5.02 node gone, 5.04)
 * do not; when that device's session moves to this node the member is
 * dropped from the group observation (not observed again here). A member
 * request that cannot be observed (not cacheable, e.g. block-wise) is
 * relayed plainly; Observe with T' = 0 is a plain request.
 *
 * Queue-mode (sleeping) members: a plain member request waits in the
 * device's queue until the device is heard from; if that is after T' the
 * request is cancelled and the device never sees it. A group observation
 * registers with a queue-mode member at once while its tunnel is up (as a
 * direct observation does); a registration the device does not answer
 * ends that member's observation (tether's own 5.04 is not forwarded), so
 * a member asleep for longer than the exchange lifetime is not observed.
 *
 * Bounds: conf.max_groups groups of at most conf.group_max_members
 * members (a pattern takes the first group_max_members matches);
 * conf.group_max_requests fan-outs at once (5.03 beyond), of which one
 * client (bounds.h) has at most conf.max_group_requests_per_client (4.29
 * with Max-Age T' beyond, checked first); T' is clamped to
 * conf.group_timeout_max_ms. Member requests count against max_pending
 * like any relayed request and against the client's
 * max_pending_per_client; a member that does not fit waits for the next
 * pacing step.
 *
 * Lifetimes: groups are owned by the table until removed or freed. A
 * fan-out is owned by the table from tether_group_request until T' passes
 * (tether_group_tick) or the node is torn down; its member requests are
 * relay requests (relay.h) pointing at it, cancelled before it is freed.
 */
#ifndef TETHER_PROXY_GROUP_H
#define TETHER_PROXY_GROUP_H

#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/list.h"
#include "tether/node.h"
#include "util/heap.h"
#include "util/hmap.h"

struct relay_req;
struct tether_device;
struct tether_observer;
typedef struct group_fan group_fan_t;

typedef struct tether_group {
    tether_hnode_t by_name;
    tether_lnode_t ln; /* table order (listing) */
    char name[TETHER_IDENTITY_MAX];
    char pattern[TETHER_IDENTITY_MAX]; /* "" none */
    size_t nmembers;
    char **members; /* one allocation (group.c, names_pack) */
} tether_group_t;

typedef struct {
    tether_hmap_t by_name;
    tether_list_t groups;
    size_t ngroups;
    tether_list_t fans; /* group_fan_t, running fan-outs */
    size_t nfans;
    tether_heap_t timers; /* fan-outs' T' deadlines and pacing steps */
    uint64_t seed;
    /* Group-ETag's MAC key (group_cache.c): a tag a client sees must not
     * reveal the hash seeds of the node's tables. */
    uint8_t etag_key[32];
    int *op_rc; /* the store write in progress (group_store.c) */
    /* counters for tether_node_stats */
    uint64_t requests, members_sent, responses, late_dropped, rejected, from_cache;
} tether_groups_t;

int tether_groups_init(tether_groups_t *g, uint64_t seed);
/* Frees every group and fan-out (member requests cancelled first). */
void tether_groups_free(tether_node_t *n);

/* The group called `name` (any case), NULL when none. */
tether_group_t *tether_group_find(const tether_groups_t *g, const char *name);
/* Defines (or redefines) a group. 0; TETHER_EINVAL for an empty or too
 * long name, pattern or member, or neither members nor a pattern;
 * TETHER_ELIMIT beyond max_groups or group_max_members; TETHER_ENOMEM. */
int tether_group_set(tether_node_t *n, const char *name, const char *pattern,
                     const char *const *members, size_t nmembers);
/* The store's GROUP records onto the table (group_store.c): the watcher
 * is registered, 0 or TETHER_ELIMIT; and removed. */
int tether_group_store_init(tether_node_t *n);
void tether_group_store_free(tether_node_t *n);
/* names[n] without the later of names equal regardless of case (as
 * members are matched, tether_registry_find_host), in order: an array
 * of the same pointers (free() it), its length in *out. NULL: no memory.
 * tether_group_set keeps a group's members so, and a pattern's snapshot
 * is taken so, so that no device gets a fan-out's request twice. */
const char **tether_group_unique(const tether_groups_t *g, const char *const *names, size_t n,
                                 size_t *out);
/* What tether_group_set would answer, without defining anything
 * (group_max_members bounds the list as given, duplicates included). */
int tether_group_check(const tether_node_t *n, const char *name, const char *pattern,
                       const char *const *members, size_t nmembers);
/* 0, or TETHER_ENOTFOUND. Running fan-outs keep going. */
int tether_group_remove(tether_node_t *n, const char *name);

/* A client request for group `grp` (relay.c found the group named by the
 * request; the client passed the plain-CoAP check). `up` holds what was
 * taken from a Proxy-Uri (path, query); `skip_uri` says so. Always
 * answers the request one way or another. */
void tether_group_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_group_t *grp, tether_coap_msg_t *up, bool skip_uri,
                          tether_time_t now);
/* Member request `r` of fan-out `f` was answered by its device with
 * `resp` (r is already freed; `device` is its name; `remote`: relayed
 * from another node, xrelay.c, not to be cached here). */
void tether_group_answer(tether_node_t *n, group_fan_t *f, const char *device, bool remote,
                         const tether_coap_msg_t *resp, tether_time_t now);
/* Member request `r` joins fan-out `f` (relay.c, tether_relay_group). */
void tether_group_attach(group_fan_t *f, struct relay_req *r);
/* The fan-out's member requests relayed to other nodes (xrelay.c links
 * them here). */
tether_list_t *tether_group_xsubs(group_fan_t *f);
/* The client record fan-out `f` is charged to (bounds.h), which its
 * member requests are charged to as pending requests; NULL: exempt. */
struct tether_bclient *tether_group_client(group_fan_t *f);
/* Member request `r` is being freed: it leaves its fan-out. */
void tether_group_detach(struct relay_req *r);
/* Group observations (see above). Member observer `ob` is being removed
 * (observe.c): it leaves its fan-out, which ends when T' has passed and it
 * was the last. */
void tether_group_obs_left(tether_node_t *n, struct tether_observer *ob);
/* Whether the next notification of group observation `f` is to be
 * confirmable (see above: past T', the first one, then one at least
 * every `interval`), and that one went (observe.c). */
bool tether_group_obs_check_due(const group_fan_t *f, tether_time_t interval, tether_time_t now);
void tether_group_obs_checked(group_fan_t *f, tether_time_t now);
/* The remote members of group observation `f` (xobserve.c's observers,
 * tether_xrelay_group_observe), and: one of them was taken off that list
 * (it left), which ends `f` like tether_group_obs_left. */
tether_list_t *tether_group_xobs(group_fan_t *f);
/* The client of fan-out `f`: its link and the token of its request. */
void tether_group_client_of(const group_fan_t *f, tether_link_t *link, const uint8_t **tok,
                            uint8_t *tkl);
void tether_group_xobs_left(tether_node_t *n, group_fan_t *f);
/* Ends group observation `f` at every member and frees it. */
void tether_group_obs_cancel(tether_node_t *n, group_fan_t *f, tether_time_t now);
/* draft-ietf-core-groupcomm-proxy-07 §3.1.3, §3.2.3: an Early Stop
 * Request (a GET for the proxy itself, no Uri-Host nor Proxy-*, with the
 * token of a running fan-out of this client and Multicast-Timeout 0)
 * ends that fan-out or group observation at once, as T' or a
 * deregistration would; a CON is acknowledged (empty ACK). True when it
 * was one; false: the request is the node's own (node.c). */
bool tether_group_early_stop(tether_node_t *n, const tether_peer_t *peer,
                             const tether_coap_msg_t *req, tether_time_t now);
/* A client session ended: its fan-outs end (observations cancelled). */
void tether_group_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now);

/* The cache's part (group_cache.c): a member's response `resp` to the
 * forwarded request up[up_len] is stored under `device`'s key (not when
 * `remote`, see there). A group request whose members all have a fresh
 * entry is answered from them alone, paced like a fan-out:
 * tether_group_cache_check says 0 (fan out), 1 (answered: the client's
 * Group-ETag is current, 2.03), or 2 (serve it from the cache, Group-ETag
 * tag); then tether_group_cache_send sends one member's entry to the
 * client, false when it is no longer fresh (the member is asked). */
#define TETHER_GROUP_ETAG_LEN 8
void tether_group_cache_store(tether_node_t *n, const uint8_t *up, size_t up_len,
                              const char *device, bool remote, const tether_coap_msg_t *resp,
                              tether_time_t now);
int tether_group_cache_check(tether_node_t *n, const tether_link_t *link,
                             const tether_coap_msg_t *req, const tether_coap_msg_t *up,
                             char *const *members, size_t nmembers,
                             uint8_t tag[TETHER_GROUP_ETAG_LEN], tether_time_t now);
bool tether_group_cache_send(tether_node_t *n, const tether_link_t *client, const uint8_t *tok,
                             size_t tkl, const tether_coap_msg_t *up, const char *member,
                             const uint8_t tag[TETHER_GROUP_ETAG_LEN], tether_time_t now);

/* The Reply-From value naming `device` into out; its length. */
#define TETHER_REPLY_FROM_MAX (3 + TETHER_IDENTITY_MAX)
size_t tether_group_reply_from(const char *device, uint8_t out[TETHER_REPLY_FROM_MAX]);

/* T' deadlines and pacing steps due at `now`. */
void tether_group_tick(tether_node_t *n, tether_time_t now);
tether_time_t tether_group_next_deadline(const tether_node_t *n);

#endif
