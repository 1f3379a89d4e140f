/* Growable output buffers of the admin endpoint (answers, rendered bodies). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "tether/common.h"

int tetherd_abuf_reserve(tetherd_abuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return TETHER_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tetherd_abuf_put(tetherd_abuf_t *b, const void *data, size_t n)
{
    if (tetherd_abuf_reserve(b, n) < 0)
        return TETHER_ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int tetherd_abuf_printf(tetherd_abuf_t *b, const char *fmt, ...)
{
    for (int pass = 0; pass < 2; pass++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return TETHER_EINVAL;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        if (tetherd_abuf_reserve(b, (size_t)n) < 0)
            return TETHER_ENOMEM;
    }
    return TETHER_ENOMEM;
}

void tetherd_abuf_free(tetherd_abuf_t *b)
{
    free(b->p);
    *b = (tetherd_abuf_t){0};
}
