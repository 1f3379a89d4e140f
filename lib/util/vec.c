/* Growable arrays (vec.h). */
#include <stdint.h>
#include <stdlib.h>

#include "util/vec.h"

void *tether_vec_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first, size_t max)
{
    if (need <= *cap)
        return v;
    if (need > max || elem == 0 || need > SIZE_MAX / elem)
        return NULL;
    size_t c = *cap ? *cap : (first ? first : 1);
    while (c < need)
        c = c > max / 2 ? max : c * 2;
    if (c > max)
        c = max;
    if (c > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(v, c * elem);
    if (!p)
        return NULL;
    *cap = c;
    return p;
}
