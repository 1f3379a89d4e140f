/* Per-source rate limit for new handshakes (SPEC S10): a fixed table of
 * token buckets indexed by a keyed hash of the source address. Bounded and
 * allocation-free: sources that share a slot share its bucket, and the key
 * (random per process) keeps remote peers from choosing which slot they hit. */
#ifndef TETHER_RATELIMIT_H
#define TETHER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

#define TETHER_RL_SLOTS 8192 /* power of two; 8 bytes each */
#define TETHER_RL_KEY 32

typedef struct {
    uint32_t milli; /* tokens x 1000 */
    uint32_t last;  /* ms (low 32 bits of `now`) of the last refill */
} tether_rl_slot_t;

typedef struct {
    uint32_t rate;  /* tokens per second; 0 = every call is admitted */
    uint32_t burst; /* bucket size in tokens */
    uint8_t key[TETHER_RL_KEY];
    tether_rl_slot_t slot[TETHER_RL_SLOTS];
} tether_rl_t;

/* Every bucket starts full. `burst` 0 means 2 x rate (at least 1). */
void tether_rl_init(tether_rl_t *rl, uint32_t rate, uint32_t burst,
                    const uint8_t key[TETHER_RL_KEY], tether_time_t now);

/* Takes one token from the bucket of `src` (address bytes) when it has one:
 * true = admitted. */
bool tether_rl_admit(tether_rl_t *rl, const uint8_t *src, size_t len, tether_time_t now);
/* Whether the bucket of `src` has a token now, taking none. */
bool tether_rl_peek(tether_rl_t *rl, const uint8_t *src, size_t len, tether_time_t now);

/* One bucket on its own (the node-wide hello budget): refilled at `rate`
 * per second up to `burst` tokens, then one taken when there is one (true).
 * rate 0: always true. A zeroed slot starts empty; tether_bucket_fill
 * fills it. */
bool tether_bucket_take(tether_rl_slot_t *s, uint32_t rate, uint32_t burst, tether_time_t now);
void tether_bucket_fill(tether_rl_slot_t *s, uint32_t burst, tether_time_t now);

#endif
