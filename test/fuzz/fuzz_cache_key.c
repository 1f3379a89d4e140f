/* libFuzzer target: a cache key read back into a request
 * (lib/proxy/cache.c tether_cache_key_request). The keys come from the
 * state store's observe registry (SPEC S5: an adopter registers a dead
 * node's observers again from them), so any bytes may arrive. Nothing may
 * crash or read out of bounds; whatever decodes must encode to the very
 * same key (the layout is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > TETHER_CACHE_KEY_MAX)
        return 0;
    tether_coap_msg_t m;
    if (tether_cache_key_request(data, size, &m) < 0)
        return 0;
    const tether_coap_opt_t *h = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_URI_HOST);
    if (!h || !h->len)
        abort();
    char target[256];
    memcpy(target, h->val, h->len);
    target[h->len] = 0;
    if (strlen(target) != h->len)
        return 0; /* a NUL in the name: a key never holds one, a C string cannot */
    tether_coap_msg_del_opt(&m, TETHER_COAP_OPT_URI_HOST);
    tether_cache_key_t k;
    if (tether_cache_key(&k, target, &m) < 0 || k.len != size || memcmp(k.buf, data, size) != 0)
        abort();
    return 0;
}
