/* libFuzzer target: internal channel messages (lib/cluster/msg.c). Any
 * input must decode or be refused without reading out of bounds; one that
 * decodes must re-encode to the same bytes (the MAC binds them).
 *
 * Input: [mode][clock: 8 bytes, big endian][message]. The MAC is checked
 * before anything past the fixed header is parsed, so a mutated message
 * almost never gets further; with mode bit 0 set this target appends the
 * MAC itself (HMAC-SHA256 under the fuzz key, first 16 bytes, as the wire
 * format says), so every mutation of the body reaches the decoder proper:
 * timestamp skew, node check, address family and payload bounds. With bit
 * 0 clear the message goes in as given (the MAC check itself is fuzzed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG 65536

static const uint8_t key[] = "fuzz";

/* body || MAC(body) into out; false when HMAC fails. */
static bool with_mac(const uint8_t *body, size_t len, uint8_t *out)
{
    Hmac h;
    uint8_t full[WC_SHA256_DIGEST_SIZE];
    bool ok = wc_HmacInit(&h, NULL, INVALID_DEVID) == 0 &&
              wc_HmacSetKey(&h, WC_SHA256, key, sizeof key - 1) == 0 &&
              wc_HmacUpdate(&h, body, (word32)len) == 0 && wc_HmacFinal(&h, full) == 0;
    wc_HmacFree(&h);
    memcpy(out, body, len);
    memcpy(out + len, full, TETHER_CLUSTER_MAC);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t msg[MAX_MSG + TETHER_CLUSTER_MAC], out[MAX_MSG + TETHER_CLUSTER_MAC];
    tether_cluster_msg_t m;
    tether_cluster_cid_node(data, size);
    if (size < 10 || size - 9 > MAX_MSG)
        return 0;
    bool mac_here = data[0] & 1;
    /* The clock comes from the input so the skew check is explored too. */
    tether_time_t now = 0;
    for (int i = 1; i < 9; i++)
        now = now << 8 | data[i];
    size_t len = size - 9;
    if (mac_here) {
        if (!with_mac(data + 9, len, msg))
            return 0;
        len += TETHER_CLUSTER_MAC;
    } else {
        memcpy(msg, data + 9, len);
    }
    if (tether_cluster_decode(msg, len, key, sizeof key - 1, len > 5 ? msg[5] : 0, now, &m) != 0)
        return 0;
    int n = tether_cluster_encode(&m, key, sizeof key - 1, out, sizeof out);
    if (n != (int)len || memcmp(out, msg, len) != 0)
        abort();
    return 0;
}
