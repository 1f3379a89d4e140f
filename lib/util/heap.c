/* Binary min-heap of timers keyed by deadline. */
#include <stdlib.h>

#include "util/heap.h"
#include "util/vec.h"

static void place(tether_heap_t *h, size_t i, tether_timer_t *t)
{
    h->v[i] = t;
    t->idx = (uint32_t)i; /* i < TETHER_HEAP_MAX (tether_heap_reserve) */
}

static void sift_up(tether_heap_t *h, size_t i)
{
    tether_timer_t *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p]->at <= t->at)
            break;
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, t);
}

static void sift_down(tether_heap_t *h, size_t i)
{
    tether_timer_t *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->at < h->v[c]->at)
            c++;
        if (t->at <= h->v[c]->at)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

void tether_heap_free(tether_heap_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->idx = TETHER_TIMER_IDLE;
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

void tether_heap_disarm(tether_heap_t *h, tether_timer_t *t)
{
    if (t->idx == TETHER_TIMER_IDLE)
        return;
    size_t i = t->idx;
    t->idx = TETHER_TIMER_IDLE;
    tether_timer_t *last = h->v[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    if (i > 0 && h->v[(i - 1) / 2]->at > last->at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

int tether_heap_reserve(tether_heap_t *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    if (n > TETHER_HEAP_MAX)
        return TETHER_ENOMEM;
    tether_timer_t **v = tether_vec_grow(h->v, &h->cap, n, sizeof *v, 64, TETHER_HEAP_MAX);
    if (!v)
        return TETHER_ENOMEM;
    h->v = v;
    return 0;
}

int tether_heap_arm(tether_heap_t *h, tether_timer_t *t, tether_time_t at)
{
    tether_heap_disarm(h, t);
    int rc = tether_heap_reserve(h, h->n + 1);
    if (rc < 0)
        return rc;
    t->at = at;
    place(h, h->n++, t);
    sift_up(h, h->n - 1);
    return 0;
}

tether_timer_t *tether_heap_pop_due(tether_heap_t *h, tether_time_t now)
{
    tether_timer_t *t = tether_heap_top(h);
    if (!t || t->at > now)
        return NULL;
    tether_heap_disarm(h, t);
    return t;
}
