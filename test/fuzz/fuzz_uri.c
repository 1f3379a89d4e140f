/* libFuzzer target for lib/coap/uri.c (RFC 7252 §6.4, §6.5): URI ->
 * options -> path and query, and the Uri-* options of any parsed message
 * -> path and query. A URI that decomposes must compose to a path whose
 * own decomposition (behind the same scheme and host) gives the same
 * Uri-Path and Uri-Query options; any mismatch or overrun traps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/coap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_opts(const tether_coap_msg_t *a, const tether_coap_msg_t *b, uint16_t num)
{
    const tether_coap_opt_t *x = tether_coap_msg_find_opt(a, num);
    const tether_coap_opt_t *y = tether_coap_msg_find_opt(b, num);
    while (x && y) {
        if (x->len != y->len || (x->len && memcmp(x->val, y->val, x->len) != 0))
            return false;
        x = tether_coap_msg_next_opt(a, x);
        y = tether_coap_msg_next_opt(b, y);
    }
    return !x && !y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t scratch[4096], scratch2[4096];
    static char path[8192], uri2[8400];
    if (size == 0)
        return 0;
    if (data[0] & 1) { /* a CoAP message: its options composed into a path */
        tether_coap_msg_t m;
        tether_coap_perr_t perr;
        size_t n;
        if (tether_coap_parse(&m, data + 1, size - 1, &perr) == 0)
            (void)tether_coap_opts_to_path(&m, path, sizeof path, &n);
        return 0;
    }
    tether_coap_msg_t a, b;
    bool secure;
    tether_coap_msg_init(&a, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    if (tether_coap_uri_to_opts((const char *)data + 1, size - 1, &a, scratch, sizeof scratch,
                                &secure) != 0)
        return 0;
    size_t plen;
    if (tether_coap_opts_to_path(&a, path, sizeof path, &plen) != 0)
        return 0;
    if (strlen(path) != plen || path[0] != '/')
        abort();
    size_t n = (size_t)snprintf(uri2, sizeof uri2, "coap://h%s", path);
    if (n >= sizeof uri2)
        return 0;
    tether_coap_msg_init(&b, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    if (tether_coap_uri_to_opts(uri2, n, &b, scratch2, sizeof scratch2, &secure) != 0)
        abort(); /* what we composed must decompose */
    if (!same_opts(&a, &b, TETHER_COAP_OPT_URI_PATH) || !same_opts(&a, &b, TETHER_COAP_OPT_URI_QUERY))
        abort();
    return 0;
}
