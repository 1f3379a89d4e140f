/* Checkpoint high-water marks (SPEC S5): per CID, the highest store
 * version and transmit-sequence ceiling of a checkpoint this node has
 * seen (written itself, adopted, or read from the store), so an adopter
 * refuses one that is older.
 *
 * Why. A checkpoint's additional data binds its version and ceiling
 * (checkpoint.h), so a blob cannot be moved to another version; but a
 * writer to the store who also rewrites the version counter can put back
 * a whole older (version, blob, ceiling) triple. An adopter of that
 * starts at the old ceiling plus the margin (txceil.h), which may be
 * below what the session has sent since: nonces reused. A node that saw
 * the newer record refuses the older one (TETHER_ECONFLICT in
 * tether_dtls_adopt); only a node that never saw it can be fooled, and
 * the margin is then the defence left.
 *
 * Bound: at most `max` CIDs; the one noted least recently goes first
 * (an evicted CID only loses this check). Lifetime: owned by the DTLS
 * server (init in create, free in destroy). Pure: no I/O, no clock. */
#ifndef TETHER_DTLS_CKSEEN_H
#define TETHER_DTLS_CKSEEN_H

#include <stdbool.h>
#include <stdint.h>

#include "tether/hmap.h"
#include "tether/list.h"

#define TETHER_CKSEEN_CID_MAX 20

typedef struct {
    tether_hnode_t node;
    tether_lnode_t ln; /* least recently noted first */
    uint8_t cid_len;
    uint8_t cid[TETHER_CKSEEN_CID_MAX];
    uint64_t version, ceiling;
} tether_ckseen_ent_t;

typedef struct {
    tether_hmap_t map;
    tether_list_t order;
    size_t n, max;
} tether_ckseen_t;

/* 0 or TETHER_ENOMEM; max > 0. */
int tether_ckseen_init(tether_ckseen_t *t, size_t max, uint64_t seed);
void tether_ckseen_free(tether_ckseen_t *t);
/* A checkpoint of cid[len] at (version, ceiling) was seen: each mark
 * rises to it (never falls). Out of memory or a CID too long: not noted. */
void tether_ckseen_note(tether_ckseen_t *t, const uint8_t *cid, size_t len, uint64_t version,
                        uint64_t ceiling);
/* Whether (version, ceiling) is below a mark seen for cid[len]: a
 * lower version, or a lower ceiling. */
bool tether_ckseen_stale(const tether_ckseen_t *t, const uint8_t *cid, size_t len, uint64_t version,
                         uint64_t ceiling);

#endif
