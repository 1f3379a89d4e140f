/* tetherd — failover of DTLS sessions between nodes (SPEC S5), the I/O
 * half around lib/dtls's checkpoints, transmit ceilings and adoption
 * (tether/dtls.h "Failover"). On with cluster.failover (needs redis_url
 * and cluster.listen).
 *
 * Checkpoints. Every compact DTLS 1.2 session with a CID runs under a
 * transmit ceiling. Each EV_CEILING (the first one right after the
 * handshake, then one per block of 1024 records, ahead of need) writes
 * the session's checkpoint as its TETHER_STORE_SESSION record
 *   tether:sess:{HEX of the CID}   (the CID is the hash tag)
 * {holder node, holder generation, ceiling, sealed blob}, a compare-and-
 * set on the version this node wrote last, sealed for the version it
 * creates (checkpoint.h binds key, owner, generation, version, ceiling:
 * a replayed older checkpoint does not open). Only when Redis answered
 * does the session get its ceiling (tether_dtls_ceiling_acked); records
 * past it wait. Each write also carries the receive window of that
 * moment. Receive-side checkpoints are coalesced: every refresh_ms
 * (cluster.checkpoint_interval_ms) a session whose window moved since
 * its last write is written again at its acknowledged ceiling, and the
 * handover writes every session once more. The replay exposure this
 * leaves: records the dead node accepted in its last refresh_ms (plus a
 * write's round trip) are new again to the adopter, which may process
 * each of them once more; CoAP deduplication does not hide that, since the
 * dead node's Message-ID cache is lost (checkpoint.h), so it is bounded in
 * time, not zero: a retransmitted CON is answered twice at most, and a
 * non-idempotent request replayed by an attacker inside that window is
 * executed again. A
 * session's record is deleted (compare-and-set) when it ends here, but
 * not when it was released to another node.
 *
 * Adoption (store/adopt.h for the election and fencing rules). When a
 * node's lease goes (expired, and its channel silent for 3 s; or replaced
 * by a handover marker), each survivor waits adopt_delay_ms (so its
 * replica has the dead node's last writes from the change log) and
 * claims it;
 * the winner adopts every SESSION record naming the dead node as holder
 * (tether_dtls_adopt: it sends from the stored ceiling + 2^24), rewrites
 * the directory entries naming it (device -> this node), logs one line
 * and counts cluster.adoptions. Each adopted session's first ceiling
 * write names this node as holder: from then on every node forwards that
 * CID's records here (tether_pipeline_cid_owner_fn), whichever node byte
 * it carries.
 *
 * Handover (SIGTERM). Ceilings stop rising; every session's checkpoint is
 * written once more (fresh receive window, at its acknowledged ceiling);
 * then the lease is replaced by a handover marker, so the peers adopt at
 * their next lease poll (1 s) rather than after the 3 s expiry and
 * without waiting for our channel to fall silent; the node keeps serving until a
 * peer's write shows each session adopted (then releases it) or the drain
 * deadline, and exits. Sessions not checkpointed (DTLS 1.3, plain CoAP)
 * are not handed over: their peers handshake again.
 *
 * Lifetime: created before the pipeline, attached to it once it exists,
 * closed before the store. Store callbacks find their session by the key
 * (the CID), never by a pointer. */
#ifndef TETHERD_FAILOVER_H
#define TETHERD_FAILOVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/lease.h"
#include "store/redis.h"
#include "tether/pipeline.h"

typedef struct {
    uint8_t self;
    tether_addr_t advertise; /* our internal channel address, put in claims */
    uint8_t iface;           /* the DTLS listener adopted sessions are bound to */
    uint32_t adopt_delay_ms; /* after a lease went, before the claim */
    uint32_t claim_ttl_ms;
    uint32_t refresh_ms; /* receive-window refresh period, 0: off */
    /* Output to send after a store completion changed DTLS state. */
    void (*pump)(void *user);
    void *user;
} tetherd_failover_conf_t;

typedef struct tetherd_failover tetherd_failover_t;

/* 0 or TETHER_ENOMEM. `redis` and `lease` are borrowed and outlive it. */
int tetherd_failover_create(uv_loop_t *loop, const tetherd_failover_conf_t *conf,
                            tetherd_redis_t *redis, tetherd_lease_t *lease,
                            tetherd_failover_t **out);
void tetherd_failover_attach(tetherd_failover_t *f, tether_pipeline_t *pipe);

/* The pipeline's hooks (tether/pipeline.h); user is the failover. */
void tetherd_failover_dtls_event(void *user, const tether_dtls_event_t *ev);
uint8_t tetherd_failover_cid_owner(void *user, const uint8_t *cid, size_t len);
/* Work the hooks queued (ceiling writes): the host calls it from its
 * output pump, outside any pipeline call. True when it called into DTLS
 * (the host settles the pipeline again). */
bool tetherd_failover_run(tetherd_failover_t *f);

/* A lease change (store/lease.h on_change). */
void tetherd_failover_member(tetherd_failover_t *f, uint8_t id, const tetherd_member_t *m);

/* SIGTERM: starts the handover (see above). */
void tetherd_failover_handover(tetherd_failover_t *f);
/* While handing over: true once every handed-over session shows adopted
 * by another node (the drain may end). */
bool tetherd_failover_handed_over(tetherd_failover_t *f);

/* sessions.checkpointed, sessions.adopted, cluster.adoptions,
 * cluster.handed_over into `stats`. */
int tetherd_failover_stats(const tetherd_failover_t *f, json_t *stats);
/* Memory goes once the loop ran; NULL is fine. */
void tetherd_failover_close(tetherd_failover_t *f);

#endif
