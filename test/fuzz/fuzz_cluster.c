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
 * 0 clear the message goes in as given (the MAC check itself is fuzzed).
 *
 * Seeds: `FUZZ_CLUSTER_RECORD=DIR build/fuzz/fuzz_cluster` writes
 * DIR/forward-v4, reply-v6 (with their MAC) and forward-v4-macless,
 * reply-v6-macless, heartbeat-macless, bundle-macless (mode 1) with tether_cluster_encode,
 * so the seeds follow the wire format (test/fuzz/corpus/fuzz_cluster). */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

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
    if (m.type == TETHER_CLUSTER_BUNDLE) {
        /* Its frames: each one parsed must re-encode to its own bytes. */
        static uint8_t fr[MAX_MSG];
        size_t pos = 0, at = 0;
        tether_cluster_msg_t f;
        while (tether_cluster_frame_next(m.payload, m.payload_len, &pos, &f) == 1) {
            int fl = tether_cluster_frame_put(&f, fr, sizeof fr);
            if (fl != (int)(pos - at) || memcmp(fr, m.payload + at, (size_t)fl) != 0)
                abort();
            at = pos;
        }
    }
    return 0;
}

/* ---- seed recorder (FUZZ_CLUSTER_RECORD=DIR) ------------------------------------------ */

/* Writes [mode][clock = sent_at][message], without its MAC when mac_here. */
static int seed(const char *dir, const char *name, const tether_cluster_msg_t *m, bool mac_here)
{
    static uint8_t buf[1 + 8 + 2048];
    int n = tether_cluster_encode(m, key, sizeof key - 1, buf + 9, sizeof buf - 9);
    if (n < 0)
        return n;
    buf[0] = mac_here;
    for (int i = 0; i < 8; i++)
        buf[1 + i] = (uint8_t)(m->sent_at >> (56 - 8 * i));
    size_t len = 9 + (size_t)n - (mac_here ? TETHER_CLUSTER_MAC : 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, mac_here ? "-macless" : "");
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len)
        return -1;
    return fclose(f) == 0 ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("FUZZ_CLUSTER_RECORD");
    if (!dir)
        return 0;
    /* A DTLS 1.2 CID record (type 25) as the payload. */
    static const uint8_t rec[] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0,    9,    2,
                                  1,  2,    3,    4, 5, 6, 7, 0, 3, 0xaa, 0xbb, 0xcc};
    tether_cluster_msg_t fwd = {.type = TETHER_CLUSTER_FORWARD,
                                .from_node = 1,
                                .to_node = 2,
                                .iface = 0,
                                .counter = 7,
                                .sent_at = 1000000,
                                .payload = rec,
                                .payload_len = sizeof rec};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&fwd.client.ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(5684);
    s4->sin_addr.s_addr = htonl(0x0a000001);
    fwd.client.len = sizeof *s4;
    tether_cluster_msg_t rep = fwd;
    rep.type = TETHER_CLUSTER_REPLY;
    rep.from_node = 2, rep.to_node = 1, rep.iface = 1, rep.counter = 9;
    memset(&rep.client, 0, sizeof rep.client);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&rep.client.ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(40000);
    s6->sin6_addr.s6_addr[15] = 1;
    rep.client.len = sizeof *s6;
    tether_cluster_msg_t hb = fwd;
    hb.type = TETHER_CLUSTER_HEARTBEAT;
    hb.payload = NULL, hb.payload_len = 0;
    /* A bundle of both as frames. */
    static uint8_t frames[256];
    int f1 = tether_cluster_frame_put(&fwd, frames, sizeof frames);
    int f2 = f1 > 0 ? tether_cluster_frame_put(&rep, frames + f1, sizeof frames - (size_t)f1) : -1;
    if (f2 < 0)
        exit(1);
    tether_cluster_msg_t bun = fwd;
    bun.type = TETHER_CLUSTER_BUNDLE;
    memset(&bun.client, 0, sizeof bun.client);
    bun.client.ss.ss_family = AF_INET;
    bun.payload = frames, bun.payload_len = (size_t)(f1 + f2);
    int rc = seed(dir, "bundle", &bun, true) | seed(dir, "forward-v4", &fwd, false) |
             seed(dir, "forward-v4", &fwd, true) | seed(dir, "reply-v6", &rep, false) |
             seed(dir, "reply-v6", &rep, true) | seed(dir, "heartbeat", &hb, true);
    exit(rc ? 1 : 0);
}
