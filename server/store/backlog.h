/* tetherd — the Redis write backlog: one entry per dirty record (SPEC S5,
 * S10). Every write of the Redis store lands here first and is sent from
 * here, so a write made while Redis is away and one made while it is up
 * take the same path: writes to one key coalesce into its entry (the
 * latest value wins, one Redis write replays them all), the entry stays
 * until Redis acknowledged a write that carries its latest value, and
 * the number of entries is bounded (a write to a new key beyond the bound
 * is refused, never dropped after it was accepted).
 *
 * Version-checked replay: an entry remembers the record version this node
 * last saw in Redis (`base`); the write it sends expects that version, so
 * another node's write in between is detected (the store then decides,
 * see redis.c), not overwritten.
 *
 * Pure: no I/O, no clock. Lifetime: entries are owned by the backlog; a
 * pointer from next/find stays valid until acked or the backlog is freed. */
#ifndef TETHERD_STORE_BACKLOG_H
#define TETHERD_STORE_BACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/hmap.h"
#include "tether/list.h"

typedef struct {
    tether_hnode_t hn;    /* key: digest of rkey */
    tether_lnode_t order; /* oldest first: the replay order */
    uint64_t gen;         /* +1 per coalesced write */
    uint64_t sent_gen;    /* gen of the write in flight */
    uint64_t base;        /* version last seen in Redis (0: absent there) */
    bool del;             /* the latest write deletes the record */
    bool inflight;
    uint32_t ttl_ms;
    char *value; /* JSON of the latest put (NULL for a delete) */
    size_t rkey_len;
    char rkey[]; /* NUL-terminated */
} tetherd_dirty_t;

typedef struct {
    tether_hmap_t map;
    tether_list_t order;
    size_t count, max;
    uint64_t coalesced; /* writes folded into an existing entry */
} tetherd_backlog_t;

/* 0 or TETHER_ENOMEM. `max` entries at most. */
int tetherd_backlog_init(tetherd_backlog_t *b, size_t max);
void tetherd_backlog_free(tetherd_backlog_t *b);

/* Records a write of `rkey`: a put of `value` (taken over: freed by the
 * backlog, also on failure) or a delete (value NULL). A new entry starts
 * from `base` (what this node knows of the version in Redis); an existing
 * one keeps its base. 0, TETHER_ELIMIT (full, rkey not dirty yet) or
 * TETHER_ENOMEM. */
int tetherd_backlog_mark(tetherd_backlog_t *b, const char *rkey, uint64_t base, char *value,
                         uint32_t ttl_ms);
tetherd_dirty_t *tetherd_backlog_find(const tetherd_backlog_t *b, const char *rkey);
/* The oldest entry without a write in flight, NULL when none. */
tetherd_dirty_t *tetherd_backlog_next(const tetherd_backlog_t *b);
/* Its write was sent: in flight until acked or failed; moves to the back. */
void tetherd_backlog_sent(tetherd_backlog_t *b, tetherd_dirty_t *e);
/* Redis applied the write in flight and the record is at `version` (0:
 * deleted). The entry goes unless a newer write came meanwhile (then it
 * stays, expecting `version`). Returns true when it went. */
bool tetherd_backlog_acked(tetherd_backlog_t *b, tetherd_dirty_t *e, uint64_t version);
/* The write in flight was lost (disconnect, timeout): retry later. */
void tetherd_backlog_failed(tetherd_backlog_t *b, tetherd_dirty_t *e);
/* Every write in flight is lost. */
void tetherd_backlog_fail_all(tetherd_backlog_t *b);
/* Drops e without writing it (superseded by another node's write). */
void tetherd_backlog_drop(tetherd_backlog_t *b, tetherd_dirty_t *e);

#endif
