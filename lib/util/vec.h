/* Growable arrays: one way to make room in the `v`/`n`/`cap` arrays that
 * outboxes, event queues and timer heaps keep. */
#ifndef TETHER_UTIL_VEC_H
#define TETHER_UTIL_VEC_H

#include <stddef.h>

/* The array `v` of *cap elements of `elem` bytes, grown (doubling from
 * `first`) to hold at least `need` and at most `max` elements: the array
 * to use from now on, *cap updated. NULL when `need` exceeds `max` or
 * memory ran out: `v` and *cap stay as they were (the caller drops what it
 * wanted to add, or fails with TETHER_ENOMEM). `v` itself when it already
 * holds `need` (so NULL for need 0 on an array never allocated: a caller
 * that may ask for no room tests that first, as tether_heap_reserve). */
void *tether_vec_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first, size_t max);

#endif
