/* tetherd — cluster membership from node leases in the store (SPEC S5).
 *
 * Each node puts its lease, a NODE record (node id, internal channel
 * address, generation), with a ttl of ttl_ms and renews it every
 * renew_ms; a node whose lease ran out is gone. The live set is what the
 * store reports (the Redis store reads every lease with one MGET per
 * second, see redis.h): a watcher on NODE records keeps the table below
 * and tells the process of each node that comes or goes, so the internal
 * channel learns the addresses of nodes it was never configured with.
 *
 * The generation is this process's start time (wall-clock ms): another
 * process taking the same node id shows as a new generation. Adoption of
 * a dead node's id (server/failover.h) puts a claim in its NODE record
 * (adopted_by set, generation + 1, only if absent): a claim is no lease
 * (the node stays dead) but on_change hears it, with the claim's
 * generation and adopter, when it first shows. */
#ifndef TETHERD_STORE_LEASE_H
#define TETHERD_STORE_LEASE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tether/store.h"

typedef struct {
    bool alive;
    tether_addr_t addr;
    uint64_t generation;
    uint64_t since_ms;  /* loop time it was first seen alive */
    uint8_t adopted_by; /* not alive, and node adopted_by claimed its sessions */
    bool handover;      /* not alive: it is leaving and handed its sessions over */
    uint64_t version;   /* of its NODE record (a claim over a handover names it) */
} tetherd_member_t;

typedef void (*tetherd_member_fn)(void *user, uint8_t id, const tetherd_member_t *m);

typedef struct tetherd_lease tetherd_lease_t;

/* Starts renewing our lease in `store` (borrowed; must outlive the lease)
 * and watching everyone's. `on_change` (may be NULL) hears each node that
 * becomes alive or dead. 0, TETHER_ELIMIT (no watcher slot) or
 * TETHER_ENOMEM. */
int tetherd_lease_start(uv_loop_t *loop, tether_store_t *store, uint8_t self,
                        const tether_addr_t *advertise, uint64_t generation, uint32_t renew_ms,
                        uint32_t ttl_ms, tetherd_member_fn on_change, void *user,
                        tetherd_lease_t **out);
/* Node `id`'s entry (never NULL; alive false when unknown). */
const tetherd_member_t *tetherd_lease_member(const tetherd_lease_t *l, uint8_t id);
/* Nodes holding a live lease. */
uint32_t tetherd_lease_alive(const tetherd_lease_t *l);
uint64_t tetherd_lease_renewals_failed(const tetherd_lease_t *l);
/* A handover (SIGTERM): stops renewing and replaces our lease with a
 * handover marker (handover set, ttl_ms; a compare-and-set on the lease's
 * version), so peers see us gone at their next lease poll and adopt at
 * once; if that fails the lease is deleted. */
void tetherd_lease_release(tetherd_lease_t *l);
uint64_t tetherd_lease_generation(const tetherd_lease_t *l);
/* Stops renewing and watching (the lease then runs out in Redis); memory
 * goes once the loop ran. NULL is fine. */
void tetherd_lease_close(tetherd_lease_t *l);

#endif
