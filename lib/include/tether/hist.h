/* tether — latency histogram (tetherd's service time, tether-bench's
 * latencies), HDR style: log-linear buckets over a fixed range, so
 * recording is a few instructions and never allocates, any two histograms
 * merge exactly, and percentiles carry a bounded relative error.
 *
 * Values are unsigned integers (tether records microseconds). Values below
 * 2^(TETHER_HIST_SUB_BITS+1) have a bucket each; above that every power of
 * two is split into 2^TETHER_HIST_SUB_BITS buckets, so a bucket is at most
 * 1/128 of its lower bound wide (< 0.8% relative error). Values from
 * 2^(TETHER_HIST_MAX_EXP+1) up (about 67 s in microseconds) land in the last
 * bucket and are counted in `overflow`; min, max, sum stay exact. */
#ifndef TETHER_HIST_H
#define TETHER_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

#define TETHER_HIST_SUB_BITS 7
#define TETHER_HIST_MAX_EXP 25
#define TETHER_HIST_LINEAR (1u << (TETHER_HIST_SUB_BITS + 1))
#define TETHER_HIST_NBUCKETS                                                                       \
    (TETHER_HIST_LINEAR +                                                                          \
     (TETHER_HIST_MAX_EXP - TETHER_HIST_SUB_BITS) * (1u << TETHER_HIST_SUB_BITS))

typedef struct {
    uint64_t count;
    uint64_t sum;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t overflow; /* values beyond the last bucket's range */
    uint64_t buckets[TETHER_HIST_NBUCKETS];
} tether_hist_t;

/* One non-empty bucket: every value v with lo <= v <= hi was counted in it. */
typedef struct {
    uint64_t lo, hi;
    uint64_t count;
    uint64_t cumulative; /* count of this bucket and every one below it */
} tether_hist_bucket_t;

/* Empties `h`. */
TETHER_API void tether_hist_init(tether_hist_t *h);
/* Counts one value. */
TETHER_API void tether_hist_record(tether_hist_t *h, uint64_t v);
/* Adds every count of `src` into `dst`. */
TETHER_API void tether_hist_merge(tether_hist_t *dst, const tether_hist_t *src);

/* Bucket index of a value, and the range [lo, hi] of values a bucket holds
 * (the last bucket's hi is UINT64_MAX). */
TETHER_API size_t tether_hist_index(uint64_t v);
TETHER_API uint64_t tether_hist_bucket_lo(size_t i);
TETHER_API uint64_t tether_hist_bucket_hi(size_t i);

/* The value at percentile p (0..100]: the highest value of the bucket that
 * holds the p-th percentile, clamped to [min, max]. 0 when empty. */
TETHER_API uint64_t tether_hist_percentile(const tether_hist_t *h, double p);
/* Mean of the recorded values (0 when empty). */
TETHER_API double tether_hist_mean(const tether_hist_t *h);
/* How many recorded values are <= v; exact when v is a bucket's hi (the
 * boundaries Prometheus `le` buckets should use), otherwise counts whole
 * buckets up to the one holding v. */
TETHER_API uint64_t tether_hist_count_le(const tether_hist_t *h, uint64_t v);

/* Iteration over the non-empty buckets in ascending order. */
typedef struct {
    size_t pos;
    uint64_t cumulative;
} tether_hist_iter_t;

/* Start with a zeroed iterator; false when there are no more buckets. */
TETHER_API bool tether_hist_next(const tether_hist_t *h, tether_hist_iter_t *it,
                                 tether_hist_bucket_t *out);

#endif
