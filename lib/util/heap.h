/* Intrusive binary min-heap of timers: O(log n) arm/disarm, O(1) next
 * deadline. Callers embed tether_timer_t; the heap never owns them. */
#ifndef TETHER_HEAP_H
#define TETHER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

#define TETHER_TIMER_IDLE UINT32_MAX
/* Armed timers one heap holds at most (an index fits 32 bits). */
#define TETHER_HEAP_MAX ((size_t)UINT32_MAX - 1)

/* 16 bytes: every registered device and relayed request embeds one (SPEC
 * S9 budgets an idle tunnel at 600 bytes), hence the 32-bit index. */
typedef struct {
    tether_time_t at;
    uint32_t idx; /* position in the heap, TETHER_TIMER_IDLE when not armed */
    uint8_t tag;  /* for the owner: which of its timers this is */
} tether_timer_t;

typedef struct {
    tether_timer_t **v;
    size_t n, cap;
} tether_heap_t;

static inline void tether_timer_init(tether_timer_t *t)
{
    t->idx = TETHER_TIMER_IDLE;
}
static inline bool tether_timer_armed(const tether_timer_t *t)
{
    return t->idx != TETHER_TIMER_IDLE;
}

void tether_heap_free(tether_heap_t *h);
/* Arms (or re-arms) t at `at`. TETHER_ENOMEM when the heap cannot grow. */
int tether_heap_arm(tether_heap_t *h, tether_timer_t *t, tether_time_t at);
/* Makes room for `n` armed timers: while no more than that are armed,
 * tether_heap_arm cannot fail. 0 or TETHER_ENOMEM. */
int tether_heap_reserve(tether_heap_t *h, size_t n);
/* Disarms t; a no-op when it is not armed. */
void tether_heap_disarm(tether_heap_t *h, tether_timer_t *t);
/* The earliest timer, or NULL. */
static inline tether_timer_t *tether_heap_top(const tether_heap_t *h)
{
    return h->n ? h->v[0] : NULL;
}
/* Disarms and returns the earliest timer due at `now`, or NULL. */
tether_timer_t *tether_heap_pop_due(tether_heap_t *h, tether_time_t now);

#endif
