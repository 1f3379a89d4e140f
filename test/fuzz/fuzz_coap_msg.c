/* libFuzzer target: the CoAP codec and endpoint layer. Any input must
 * either be rejected or re-encode to exactly the same bytes (the wire
 * encoding is canonical), and the endpoint layer must never produce a reply
 * larger than a bare header plus token. */
#include <stdint.h>
#include <string.h>

#include "tether/coap_ep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[70000];
    tether_coap_msg_t m;
    tether_coap_perr_t e;
    size_t n;
    if (tether_coap_parse(&m, data, size, &e) == 0) {
        if (tether_coap_encode(&m, out, sizeof out, &n) != 0 || n != size ||
            memcmp(out, data, size) != 0)
            __builtin_trap();
    }
    tether_coap_optreg_t reg;
    tether_coap_optreg_init(&reg, 2, 248);
    tether_coap_ep_t ep;
    tether_coap_ep_init(&ep, &reg, 1);
    uint8_t reply[64];
    size_t rlen;
    tether_coap_ep_input(&ep, data, size, &m, reply, sizeof reply, &rlen);
    if (rlen > TETHER_COAP_HDR_SIZE + TETHER_COAP_MAX_TOKEN)
        __builtin_trap();
    return 0;
}
