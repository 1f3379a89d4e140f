/* libFuzzer target: internal channel messages (lib/cluster/msg.c). Any
 * input must decode or be refused without reading out of bounds; one that
 * decodes must re-encode to the same bytes (the MAC binds them). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[] = "fuzz";
    tether_cluster_msg_t m;
    tether_cluster_cid_node(data, size);
    if (size < 9)
        return 0;
    /* The clock comes from the input so the skew check is explored too. */
    tether_time_t now = 0;
    for (int i = 0; i < 8; i++)
        now = now << 8 | data[i];
    if (tether_cluster_decode(data + 8, size - 8, key, sizeof key - 1, size > 13 ? data[13] : 0,
                              now, &m) != 0)
        return 0;
    static uint8_t out[70000];
    int n = tether_cluster_encode(&m, key, sizeof key - 1, out, sizeof out);
    if (n != (int)(size - 8) || memcmp(out, data + 8, size - 8) != 0)
        abort();
    return 0;
}
