/* tetherd — the cluster's shared state (SPEC S5, S6, S7) as the process
 * sees it: the Redis store (store/redis.h) with this node's lease
 * (store/lease.h), credentials from Redis laid over the credentials file,
 * and the cluster-wide device directory and node list for the admin API.
 * Only with redis_url; without it tetherd runs as before (the embedded
 * store, static cluster.nodes).
 *
 * Credentials. The active set is the file's entries with the store's CRED
 * records over them: an identity (or derived prefix) in both takes the
 * store's entry; the rest of the file stays; DELETE of a store entry lets
 * a file entry of that identity show again. Whenever either side changes
 * (a CRED change from any node, heard through the store's watcher, or
 * SIGHUP) the set is rebuilt and handed to the process, which applies it
 * as SIGHUP does (sessions whose identity went or changed role close).
 *
 * Lifetimes: the file set passed in stays the caller's and must live until
 * the next tetherd_shared_file_creds or close; every active set handed to
 * apply_creds becomes the caller's. */
#ifndef TETHERD_SHARED_H
#define TETHERD_SHARED_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "tether/creds.h"
#include "tether/node.h"
#include "store/lease.h"
#include "store/redis.h"
#include "tether/store.h"

typedef struct {
    /* A new active credential set (taken over by the caller). */
    void (*apply_creds)(void *user, tether_creds_t *active);
    /* Node `id` holds a live lease at internal address `addr`. */
    void (*node_live)(void *user, uint8_t id, const tether_addr_t *addr);
    /* The credential write numbered `id` completed (tetherd_admin_cred_done). */
    void (*cred_done)(void *user, uint64_t id, int rc, uint64_t version);
    /* Something changed from the loop: run the output pump. */
    void (*pump)(void *user);
    /* Any lease change (store/lease.h), for failover. May be NULL. */
    void (*member)(void *user, uint8_t id, const tetherd_member_t *m);
} tetherd_shared_ops_t;

typedef struct tetherd_shared tetherd_shared_t;

/* Opens the store on cfg->redis_url, starts this node's lease (advertising
 * cluster.advertise, else cluster.listen) and the credential overlay over
 * `file`. Returns 0, or a TETHER_E* code with a message in err. */
int tetherd_shared_open(uv_loop_t *loop, const tetherd_config_t *cfg, const tether_creds_t *file,
                        const tetherd_shared_ops_t *ops, void *user, tetherd_shared_t **out,
                        char *err, size_t errcap);
tether_store_t *tetherd_shared_store(tetherd_shared_t *s);
/* The parts, for failover (server/failover.h). */
tetherd_redis_t *tetherd_shared_redis(tetherd_shared_t *s);
tetherd_lease_t *tetherd_shared_lease(tetherd_shared_t *s);
/* The credentials file was reloaded: rebuild the active set over it. */
void tetherd_shared_file_creds(tetherd_shared_t *s, const tether_creds_t *file);
/* PUT (entry non-NULL) or DELETE /credentials/{identity}: 0 and an answer
 * later through ops->cred_done, or a TETHER_E* code now. */
int tetherd_shared_cred(tetherd_shared_t *s, const tether_creds_entry_t *entry,
                        const char *identity, uint64_t id);

/* The admin's view of every device of the cluster: this node's own from
 * `node` (richer: NAT timing, queue), the others' from the replica of the
 * directory. Same contract as the admin device hooks (admin.h). */
int tetherd_shared_device(tetherd_shared_t *s, const tether_node_t *node, const char *name,
                          tether_device_info_t *info);
int tetherd_shared_device_next(tetherd_shared_t *s, const tether_node_t *node,
                               const char *cursor, tether_device_info_t *info);

/* redis.* paths and cluster.nodes_alive (from leases) into `stats`. */
int tetherd_shared_stats(const tetherd_shared_t *s, json_t *stats);
/* "up" or "down". */
const char *tetherd_shared_redis_state(const tetherd_shared_t *s);
/* GET /cluster: every node with a lease or in cluster.nodes, and its
 * state. `s` may be NULL (static membership), `channel` too. */
json_t *tetherd_shared_cluster_json(const tetherd_shared_t *s, const tetherd_config_t *cfg,
                                    const tether_channel_t *channel);
/* Stops the lease and the store (memory goes once the loop ran). */
void tetherd_shared_close(tetherd_shared_t *s);

#endif
