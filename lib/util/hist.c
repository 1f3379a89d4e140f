/* Log-linear latency histogram (see hist.h for the bucket layout). */
#include <string.h>

#include "tether/hist.h"

#define SUB (1u << TETHER_HIST_SUB_BITS)

void tether_hist_init(tether_hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

size_t tether_hist_index(uint64_t v)
{
    if (v < TETHER_HIST_LINEAR)
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS + 1 */
    if (e > TETHER_HIST_MAX_EXP)
        return TETHER_HIST_NBUCKETS - 1;
    unsigned shift = e - TETHER_HIST_SUB_BITS;
    size_t sub = (size_t)(v >> shift) & (SUB - 1);
    return TETHER_HIST_LINEAR + (size_t)(e - TETHER_HIST_SUB_BITS - 1) * SUB + sub;
}

uint64_t tether_hist_bucket_lo(size_t i)
{
    if (i < TETHER_HIST_LINEAR)
        return i;
    size_t k = i - TETHER_HIST_LINEAR;
    unsigned e = (unsigned)(k / SUB) + TETHER_HIST_SUB_BITS + 1;
    uint64_t sub = k % SUB;
    return (SUB + sub) << (e - TETHER_HIST_SUB_BITS);
}

uint64_t tether_hist_bucket_hi(size_t i)
{
    if (i + 1 >= TETHER_HIST_NBUCKETS)
        return UINT64_MAX;
    return tether_hist_bucket_lo(i + 1) - 1;
}

void tether_hist_record(tether_hist_t *h, uint64_t v)
{
    size_t i = tether_hist_index(v);
    h->buckets[i]++;
    if (v >> (TETHER_HIST_MAX_EXP + 1))
        h->overflow++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void tether_hist_merge(tether_hist_t *dst, const tether_hist_t *src)
{
    for (size_t i = 0; i < TETHER_HIST_NBUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    dst->overflow += src->overflow;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t tether_hist_percentile(const tether_hist_t *h, double p)
{
    if (!h->count)
        return 0;
    if (p > 100.0)
        p = 100.0;
    /* Rank of the wanted value, 1-based: ceil(p/100 * count), at least 1. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < TETHER_HIST_NBUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = tether_hist_bucket_hi(i);
            if (v > h->max)
                v = h->max;
            return v < h->min ? h->min : v;
        }
    }
    return h->max;
}

double tether_hist_mean(const tether_hist_t *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

uint64_t tether_hist_count_le(const tether_hist_t *h, uint64_t v)
{
    size_t last = tether_hist_index(v);
    uint64_t n = 0;
    for (size_t i = 0; i <= last; i++)
        n += h->buckets[i];
    return n;
}

bool tether_hist_next(const tether_hist_t *h, tether_hist_iter_t *it, tether_hist_bucket_t *out)
{
    for (size_t i = it->pos; i < TETHER_HIST_NBUCKETS; i++) {
        if (!h->buckets[i])
            continue;
        it->cumulative += h->buckets[i];
        it->pos = i + 1;
        out->lo = tether_hist_bucket_lo(i);
        out->hi = tether_hist_bucket_hi(i);
        out->count = h->buckets[i];
        out->cumulative = it->cumulative;
        return true;
    }
    it->pos = TETHER_HIST_NBUCKETS;
    return false;
}
