#include "proxy/acl_memo.h"

#include <string.h>

#include "util/hash.h"

void tether_acl_memo_init(tether_acl_memo_t *m, uint64_t seed)
{
    m->seed = seed;
    tether_acl_memo_clear(m);
}

void tether_acl_memo_clear(tether_acl_memo_t *m)
{
    for (size_t i = 0; i < TETHER_ACL_MEMO_SETS; i++)
        m->slot[i][0].known = m->slot[i][1].known = 0;
}

/* Copies s into dst[TETHER_IDENTITY_MAX]; false when it does not fit (such
 * a pair is never memoised, so a truncated copy cannot match another). */
static bool copy_name(char *dst, const char *s, size_t len)
{
    if (len >= TETHER_IDENTITY_MAX)
        return false;
    memcpy(dst, s, len + 1);
    return true;
}

bool tether_acl_memo_allowed(tether_acl_memo_t *m, const tether_creds_t *c, const char *identity,
                             const char *target, uint8_t method)
{
    if (method == 0 || method > 7)
        return tether_creds_allowed(c, identity, target, method);
    size_t il = strlen(identity), tl = strlen(target);
    uint64_t h = tether_hash64(tether_hash64(m->seed, identity, il), target, tl);
    size_t set = h & (TETHER_ACL_MEMO_SETS - 1);
    uint8_t bit = (uint8_t)(1u << method);
    tether_acl_slot_t *s = NULL;
    for (int w = 0; w < 2 && !s; w++) {
        tether_acl_slot_t *c2 = &m->slot[set][w];
        if (c2->known && strcmp(c2->identity, identity) == 0 && strcmp(c2->target, target) == 0) {
            s = c2;
            m->mru[set] = (uint8_t)w;
        }
    }
    bool same = s != NULL;
    if (same && (s->known & bit))
        return (s->allowed & bit) != 0;
    bool ok = tether_creds_allowed(c, identity, target, method);
    if (!same) {
        m->mru[set] ^= 1; /* replace the way not used last */
        s = &m->slot[set][m->mru[set]];
        s->known = 0;
        s->allowed = 0;
        if (!copy_name(s->identity, identity, il) || !copy_name(s->target, target, tl))
            return ok;
    }
    s->known |= bit;
    if (ok)
        s->allowed |= bit;
    return ok;
}
