/* tether — the node's state as its modules see it (internal to lib/proxy).
 *
 * node.c dispatches each message; reply.c answers requests; relay.c
 * relays client requests to device tunnels (queue mode included) with
 * relay_cache.c as the response cache's part and blockwise.c for
 * block-wise transfers (RFC 7959) and group.c for group requests
 * (draft-ietf-core-groupcomm-proxy); observe.c does the Observe
 * messaging over the registry of obsreg.c; rd.c is the resource directory
 * over the device registry of registry.c, writing its entries through the
 * state store. All of them share this struct; each owns the fields its
 * comment names.
 */
#ifndef TETHER_PROXY_NODE_INT_H
#define TETHER_PROXY_NODE_INT_H

#include "coap/exchange.h"
#include "proxy/blockwise.h"
#include "proxy/bounds.h"
#include "proxy/cache.h"
#include "proxy/group.h"
#include "proxy/obsreg.h"
#include "proxy/registry.h"
#include "tether/coap_ep.h"
#include "tether/local.h"
#include "tether/node.h"
#include "tether/store.h"
#include "proxy/acl_memo.h"
#include "util/heap.h"
#include "util/hmap.h"

/* Upstream tokens (relayed requests and observations share the space). */
#define TETHER_UTOK_LEN 4

struct tether_node {
    tether_node_conf_t conf;
    tether_coap_optreg_t optreg;
    tether_coap_ep_t ep;
    tether_local_t local;
    const tether_creds_t *creds;
    tether_acl_memo_t acl; /* decisions of creds (acl_memo.h) */
    tether_cx_t *cx;
    tether_registry_t reg;      /* devices (rd.c) */
    tether_store_t *store;      /* directory entries go here (rd.c) */
    tether_store_t *own_store;  /* the in-memory store made when conf.store is NULL */
    tether_cache_t *cache;      /* NULL: caching disabled (relay_cache.c) */
    tether_obs_table_t obs;     /* observations (observe.c) */
    tether_hmap_t by_token;     /* relayed requests by upstream token (relay.c) */
    tether_heap_t timers;       /* relayed requests' deadlines and ACK delays (relay.c) */
    tether_bw_t bw;             /* block-wise transfers and uploads (blockwise.c) */
    struct tether_xrelay *xr;   /* requests and observations across nodes (xrelay*.c) */
    size_t xobservers;          /* clients observing remote resources (xobserve.c) */
    void *xlookup;              /* the directory lookup in progress (xrelay.c) */
    tether_time_t rd_now;       /* `now` of the latest directory delete (rd.c) */
    tether_node_alive_fn alive; /* whether another node is alive (the channel) */
    void *alive_user;
    tether_bounds_t bounds; /* what each client is charged (relay.c, observe.c) */
    tether_groups_t groups; /* groups and group requests (group.c) */
    uint32_t next_token;
    /* tether_node_observer_adopt: the token the dead node registered the
     * observation with, for obs_new to take while it runs (len 0: none). */
    uint8_t adopt_utok[TETHER_UTOK_LEN];
    uint8_t adopt_utok_len;
    size_t npending; /* relayed requests in flight or queued */
    tether_node_stats_t stats;
};

/* The next upstream token into tok[TETHER_UTOK_LEN]. */
void tether_node_next_token(tether_node_t *n, uint8_t tok[TETHER_UTOK_LEN]);
/* Copies the cache's counters into the node's stats. */
void tether_node_cache_sync(tether_node_t *n);

#endif
