/* Transmit-sequence ceiling (SPEC S5: no AEAD nonce is ever reused).
 *
 * A compact DTLS 1.2 session's nonce is salt || epoch || sequence number
 * (record.c), so a sequence number sent twice under one key is a nonce
 * reuse: under AES-GCM that leaks the authentication key, under CCM the
 * XOR of two plaintexts. When another node may take a session over, it
 * cannot know how far the dead owner got; so the owner never sends a
 * record numbered at or beyond a ceiling the state store acknowledged,
 * and an adopter starts at the stored ceiling plus a margin.
 *
 * State machine (per session, sans-I/O, `now` passed in):
 *   - The owner may send sequence numbers below `acked`.
 *   - Ahead of need (when fewer than block/2 numbers are left below the
 *     acknowledged or requested ceiling) tether_txceil_want names a new
 *     ceiling, next + block; the caller writes it to the store (with the
 *     checkpoint, checkpoint.h), reports tether_txceil_started, then
 *     tether_txceil_acked when the store confirmed it or
 *     tether_txceil_failed (retried after retry_ms). One raise is in flight
 *     at a time; a raise that returns out of order is never lowered.
 *   - A record that would cross the ceiling is held (a bounded FIFO of
 *     plaintexts, hold_max records) and sent, in order, once a raise is
 *     acknowledged (tether_txceil_pop). Beyond hold_max: TETHER_ELIMIT (the
 *     layer above retransmits like after any loss).
 *   - The store completes either before the call that started the raise
 *     returns (state/store_mem.c) or later (a networked store): both are
 *     fine, as acked may run inside tether_txceil_started's caller.
 *
 * Margin: with an asynchronously replicated store (Redis with replicas), a
 * primary may acknowledge a raise and fail over before a replica got it;
 * the adopter then reads an older ceiling. Sends below the lost ceiling
 * may have happened, so the adopter starts at stored + margin, where the
 * margin must exceed what an owner can reserve during a failover's
 * replication lag: raises are one block each and at most one is in flight,
 * so margin >= block * (raises per second * lag in seconds + 1). The
 * default, 2^24 numbers, covers 16384 lost raises of the default block and
 * still leaves 2^24 adoptions of one session before the 2^48 sequence
 * space (RFC 6347 §4.1) runs out.
 *
 * Lifetime: init, then destroy frees held records. */
#ifndef TETHER_DTLS_TXCEIL_H
#define TETHER_DTLS_TXCEIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"
#include "tether/list.h"

#define TETHER_TXCEIL_SEQ_LIMIT (UINT64_C(1) << 48) /* one past the last DTLS 1.2 sequence */
#define TETHER_TXCEIL_MARGIN (UINT64_C(1) << 24)    /* default margin, see above */

typedef struct {
    uint32_t block;    /* sequence numbers one raise reserves (default 1024) */
    uint32_t hold_max; /* records held while waiting for a raise (default 16) */
    uint32_t retry_ms; /* after a failed raise (default 500) */
    uint64_t margin;   /* adopter's start beyond the stored ceiling (default 2^24) */
} tether_txceil_conf_t;

void tether_txceil_conf_defaults(tether_txceil_conf_t *c);

typedef struct {
    tether_txceil_conf_t conf;
    uint64_t acked;   /* sequence numbers below it may be sent */
    uint64_t pending; /* ceiling of the raise in flight (0: none) */
    tether_time_t retry_at;
    tether_list_t held; /* plaintexts waiting for a raise, oldest first */
    uint32_t nheld;
} tether_txceil_t;

/* A session whose next sequence number is `next`, with nothing reserved
 * yet: it may send once a first raise is acknowledged. (An owner starting
 * fresh takes next = the session's tx_seq; an adopter takes
 * tether_txceil_adopt_start.) */
void tether_txceil_init(tether_txceil_t *t, const tether_txceil_conf_t *conf, uint64_t next);
void tether_txceil_destroy(tether_txceil_t *t);

/* Where an adopter's sequence numbers start: stored ceiling + margin, or
 * TETHER_TXCEIL_SEQ_LIMIT when that leaves no room (the session cannot be
 * continued without reusing a nonce: a new handshake is needed). */
uint64_t tether_txceil_adopt_start(uint64_t stored_ceiling, uint64_t margin);

/* Before sealing the record numbered `seq`: 0 (send it), TETHER_EAGAIN
 * (not covered, or records are held before it: hold it) or TETHER_ELIMIT
 * (the sequence space is exhausted). */
int tether_txceil_check(const tether_txceil_t *t, uint64_t seq);

/* Whether a raise should start now for a session whose next sequence
 * number is `next`; *ceiling is the one to ask the store for. */
bool tether_txceil_want(const tether_txceil_t *t, uint64_t next, tether_time_t now,
                        uint64_t *ceiling);
/* The raise to `ceiling` was handed to the store. */
void tether_txceil_started(tether_txceil_t *t, uint64_t ceiling);
/* The store acknowledged `ceiling` (it is durable there). */
void tether_txceil_acked(tether_txceil_t *t, uint64_t ceiling);
/* The raise failed (store unreachable, compare-and-set lost). */
void tether_txceil_failed(tether_txceil_t *t, tether_time_t now);
/* When a failed raise may be retried (UINT64_MAX: nothing waits). */
tether_time_t tether_txceil_next_deadline(const tether_txceil_t *t);

/* Holds a record of content `type` (copied). 0, TETHER_ELIMIT (hold_max
 * reached) or TETHER_ENOMEM. */
int tether_txceil_hold(tether_txceil_t *t, uint8_t type, const uint8_t *data, size_t len);
size_t tether_txceil_held(const tether_txceil_t *t);
/* The oldest held record, if the record numbered `seq` may now go out
 * (check passes for it ignoring the held ones): copies it to out (cap
 * bytes) and drops it from the queue. 0, TETHER_ENOTFOUND (nothing held
 * or still not covered), TETHER_ENOSPC (out too small; it stays). */
int tether_txceil_pop(tether_txceil_t *t, uint64_t seq, uint8_t *type, uint8_t *out, size_t cap,
                      size_t *len);

#endif
