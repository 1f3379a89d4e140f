/* tether — per-client bounds of the proxy (internal to lib/proxy; SPEC
 * S10, security issue 11 item 5).
 *
 * One client allowed to reach one device must not be able to take what
 * the node shares among everyone: the node-wide pending table (everyone
 * would get 5.03) or the observer table. So each client is charged for
 * its pending relayed requests (relay.c, conf.max_pending_per_client,
 * answered 4.29 Too Many Requests with Max-Age beyond it, RFC 8516) and
 * its observers (observe.c, conf.max_observers_per_client, 5.03), and
 * its group fan-outs (group.c, conf.max_group_requests_per_client, 4.29
 * with Max-Age), whose member requests and member observers count as its
 * pending requests and observers.
 *
 * Who a client is: its authenticated identity, so that one credential
 * opening many DTLS sessions is still one client; a record that reached
 * us through another node of the cluster arrives on the client's own
 * session (the channel forwards DTLS records, SPEC S5), so it is charged
 * to the original client, never to the relaying node. A plain-CoAP client
 * (no identity, loopback only) is its address. Operator requests
 * (TETHER_LINK_INTERNAL, the admin API) are exempt.
 *
 * The per-device bounds live with the device: device-side observations
 * (observe.c, conf.max_observations_per_device) and NSTART (relay.c,
 * conf.nstart, RFC 7252 §4.7); the per-peer dedup quota lives in the
 * message layer (coap/exchange.h, dedup_per_peer).
 *
 * Lifetimes: a client record exists while something is charged to it; the
 * relayed request or observer charged holds a pointer to it (both are
 * owned by the node, like the table) and releases it before it is freed.
 */
#ifndef TETHER_PROXY_BOUNDS_H
#define TETHER_PROXY_BOUNDS_H

#include "tether/hmap.h"
#include "tether/list.h"
#include "tether/node.h"

/* What a client is charged for. */
enum tether_bound_kind {
    TETHER_BOUND_PENDING,
    TETHER_BOUND_OBSERVERS,
    TETHER_BOUND_GROUPS, /* group fan-outs at once (group.c, max_group_requests_per_client) */
    TETHER_BOUND_KINDS
};

typedef struct tether_bclient {
    tether_hnode_t node; /* in tether_bounds_t.clients, key: digest of key[] */
    tether_lnode_t all;  /* in tether_bounds_t.all, for teardown */
    uint32_t n[TETHER_BOUND_KINDS];
    uint8_t key_len;
    uint8_t key[]; /* 'I' + identity, or 'L' + link key (compared after a digest hit) */
} tether_bclient_t;

typedef struct {
    tether_hmap_t clients;
    tether_list_t all;
    uint64_t seed;
} tether_bounds_t;

/* 0 or TETHER_ENOMEM. */
int tether_bounds_init(tether_bounds_t *b, uint64_t seed);
/* Frees every record (node teardown, after what was charged is gone). */
void tether_bounds_free(tether_bounds_t *b);

/* Charges one `kind` to the client that sent as `peer`, when it has fewer
 * than `limit` of them (0: no limit). 0 and *out the record to release
 * later (NULL: exempt, nothing to release), TETHER_ELIMIT when it is at
 * its limit (nothing charged), TETHER_ENOMEM, or TETHER_EEXIST when
 * another client's key has the same 128-bit keyed digest. */
int tether_bounds_charge(tether_bounds_t *b, const tether_peer_t *peer, enum tether_bound_kind kind,
                         uint32_t limit, tether_bclient_t **out);
/* Charges one more `kind` to the client of record `c`, which something
 * already charged keeps alive (a group fan-out charges its member
 * requests and observers to its client, group.h). NULL: exempt, 0. 0, or
 * TETHER_ELIMIT when it has `limit` of them (0: no limit). */
int tether_bounds_charge_more(tether_bclient_t *c, enum tether_bound_kind kind, uint32_t limit);
/* Takes back one `kind` from `c` (NULL: a no-op); frees it when nothing
 * is charged to it any more. */
void tether_bounds_release(tether_bounds_t *b, tether_bclient_t *c, enum tether_bound_kind kind);

#endif
