/* tetherd — the decisions of failover (SPEC S5) that need no I/O, so they
 * are unit-tested alone (test/unit/test_adopt.c); server/failover.c does
 * the store writes and DTLS calls around them.
 *
 * Election. A node is dead when its lease expired and its internal
 * channel is silent (it died), or when its lease was replaced by a
 * handover marker (it is leaving on SIGTERM, its sessions checkpointed).
 * Every survivor that sees it then tries to put a claim in the dead
 * node's NODE record: adopted_by = self, generation = the dead node's
 * last generation + 1, a compare-and-set in Redis: only if absent
 * (expect 0) after an expiry, only over the marker's version after a
 * handover (a fresh lease is always version 1, the marker 2, so a claim
 * never lands on a node that came back). Exactly one put succeeds; the
 * others get TETHER_ECONFLICT and leave the sessions to the winner. No
 * claim is tried while Redis is unreachable.
 *
 * Fencing. Each adopted session's first write is itself a compare-and-set
 * on its SESSION record's version, under the adopter's own node id and
 * generation: whoever loses that (a second adopter after a claim expired,
 * or the old owner coming back and raising its ceiling) gets
 * TETHER_ECONFLICT and releases its copy without sending on it. A node
 * that sees a claim on its own id releases every checkpointed session.
 * The nonce argument (txceil.h): the adopter starts at the stored ceiling
 * plus TETHER_TXCEIL_MARGIN (2^24) and the old owner never sent at or
 * beyond the ceiling Redis acknowledged, so the two never share a
 * sequence number even when both send for a while.
 *
 * Routing. A record whose CID no session here holds goes to the node its
 * SESSION record names as holder, if that node holds a live lease; else
 * it is routed by the CID's node byte as before adoption. */
#ifndef TETHERD_STORE_ADOPT_H
#define TETHERD_STORE_ADOPT_H

#include <stdbool.h>
#include <stdint.h>

#include "lease.h"
#include "tether/store.h"

/* Whether `self` should try to claim node `id` now that `m` says it is
 * not alive: another node, seen alive before (a generation), not claimed
 * yet, and Redis up. */
bool tetherd_adopt_should_claim(uint8_t self, uint8_t id, const tetherd_member_t *m, bool redis_up);

/* Whether a claim on node `id` must wait: its lease expired (no
 * handover marker) while its internal channel still hears it (SPEC S5: a
 * node is dead when its lease expired and its channel is silent; a node
 * cut off from Redis alone keeps its sessions). */
bool tetherd_adopt_wait(const tetherd_member_t *m, bool channel_alive);

/* The version the claim expects: the handover marker's, else 0 (absent:
 * the lease expired). */
uint64_t tetherd_adopt_expect(const tetherd_member_t *m);

/* The claim record `self` puts (with tetherd_adopt_expect) on dead node
 * `id` whose last generation was `gen`; `addr` is self's internal
 * address. */
void tetherd_adopt_claim(uint8_t self, uint8_t id, uint64_t gen, const tether_addr_t *addr,
                         tether_store_rec_t *out);

/* Whether the claim on our own id in `m` fences us, generation `ours`:
 * another node took the sessions of this very process (its claim's
 * generation is above ours). A claim on an earlier process of our id
 * (generation below ours: we are its restart) does not. */
bool tetherd_adopt_fenced(uint8_t self, uint64_t ours, uint8_t id, const tetherd_member_t *m);

/* Where a record of a CID not held here goes: the holder its SESSION
 * record names when that is self or a node alive, else 0 (route by the
 * CID's node byte). */
uint8_t tetherd_adopt_route(uint8_t self, uint8_t holder, bool holder_alive);

#endif
