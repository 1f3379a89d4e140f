/* A memo of access-control decisions (SPEC S4): tether_creds_allowed costs
 * a SHA-256 of the identity (the credentials index is keyed by its digest)
 * and a glob match per rule, and a relayed request asks it every time. The
 * answer depends only on the credentials set, the identity, the device
 * name and the method, so it is kept in a small direct-mapped table and
 * recomputed only when its set (two ways) holds other pairs. A collision (even one
 * aimed by a client choosing device names) costs only the recomputation:
 * every hit compares both strings in full. Forgotten whenever the node's
 * credentials change (tether_node_set_creds). */
#ifndef TETHER_PROXY_ACL_MEMO_H
#define TETHER_PROXY_ACL_MEMO_H

#include <stdbool.h>
#include <stdint.h>

#include "tether/creds.h"

#define TETHER_ACL_MEMO_SETS 128 /* power of two; two ways each */

typedef struct {
    uint8_t known;   /* bit m: the decision for method m is below */
    uint8_t allowed; /* bit m: method m is allowed */
    char identity[TETHER_IDENTITY_MAX];
    char target[TETHER_IDENTITY_MAX];
} tether_acl_slot_t;

typedef struct {
    uint64_t seed;
    tether_acl_slot_t slot[TETHER_ACL_MEMO_SETS][2];
    uint8_t mru[TETHER_ACL_MEMO_SETS]; /* the way used last, kept on a miss */
} tether_acl_memo_t;

void tether_acl_memo_init(tether_acl_memo_t *m, uint64_t seed);
/* Forgets every decision (the credentials were replaced). */
void tether_acl_memo_clear(tether_acl_memo_t *m);
/* tether_creds_allowed(c, identity, target, method), from the memo when
 * it holds the pair; c must be the set the memo was filled from. */
bool tether_acl_memo_allowed(tether_acl_memo_t *m, const tether_creds_t *c, const char *identity,
                             const char *target, uint8_t method);

#endif
