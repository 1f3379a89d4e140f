/* Token buckets in a fixed table, keyed by SHA-256(key || source). */
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "dtls/ratelimit.h"

void tether_rl_init(tether_rl_t *rl, uint32_t rate, uint32_t burst,
                    const uint8_t key[TETHER_RL_KEY], tether_time_t now)
{
    rl->rate = rate;
    if (!burst)
        burst = rate > UINT32_MAX / 2 ? UINT32_MAX : (rate ? 2 * rate : 1);
    if (burst > UINT32_MAX / 1000)
        burst = UINT32_MAX / 1000;
    rl->burst = burst;
    memcpy(rl->key, key, TETHER_RL_KEY);
    for (size_t i = 0; i < TETHER_RL_SLOTS; i++) {
        rl->slot[i].milli = burst * 1000u;
        rl->slot[i].last = (uint32_t)now;
    }
}

/* Slot index: the first bytes of a keyed digest of the source. A digest per
 * call is cheap next to the handshake it admits. */
static size_t slot_of(const tether_rl_t *rl, const uint8_t *src, size_t len)
{
    wc_Sha256 sha;
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    if (wc_InitSha256(&sha) != 0)
        return 0;
    wc_Sha256Update(&sha, rl->key, TETHER_RL_KEY);
    wc_Sha256Update(&sha, src, (word32)len);
    wc_Sha256Final(&sha, d);
    wc_Sha256Free(&sha);
    uint32_t v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return v & (TETHER_RL_SLOTS - 1);
}

/* Refills bucket `s` up to `now` (burst <= UINT32_MAX / 1000). */
static void slot_refill(tether_rl_slot_t *s, uint32_t rate, uint32_t burst, tether_time_t now)
{
    uint32_t cap = burst * 1000u;
    uint32_t elapsed = (uint32_t)now - s->last; /* wraps safely for < 49 days */
    uint64_t more = (uint64_t)elapsed * rate;   /* ms x tokens/s = milli-tokens */
    s->milli = more >= cap - s->milli ? cap : s->milli + (uint32_t)more;
    s->last = (uint32_t)now;
}

/* The bucket of `src`, refilled up to `now`. */
static tether_rl_slot_t *refill(tether_rl_t *rl, const uint8_t *src, size_t len, tether_time_t now)
{
    tether_rl_slot_t *s = &rl->slot[slot_of(rl, src, len)];
    slot_refill(s, rl->rate, rl->burst, now);
    return s;
}

static uint32_t burst_cap(uint32_t burst)
{
    return burst > UINT32_MAX / 1000 ? UINT32_MAX / 1000 : (burst ? burst : 1);
}

bool tether_bucket_take(tether_rl_slot_t *s, uint32_t rate, uint32_t burst, tether_time_t now)
{
    if (!rate)
        return true;
    slot_refill(s, rate, burst_cap(burst), now);
    if (s->milli < 1000)
        return false;
    s->milli -= 1000;
    return true;
}

void tether_bucket_fill(tether_rl_slot_t *s, uint32_t burst, tether_time_t now)
{
    s->milli = burst_cap(burst) * 1000u;
    s->last = (uint32_t)now;
}

bool tether_rl_admit(tether_rl_t *rl, const uint8_t *src, size_t len, tether_time_t now)
{
    if (!rl->rate)
        return true;
    tether_rl_slot_t *s = refill(rl, src, len, now);
    if (s->milli < 1000)
        return false;
    s->milli -= 1000;
    return true;
}

bool tether_rl_peek(tether_rl_t *rl, const uint8_t *src, size_t len, tether_time_t now)
{
    return !rl->rate || refill(rl, src, len, now)->milli >= 1000;
}
