/* libFuzzer target: the compact DTLS 1.2 record layer (lib/dtls/record.c).
 * Input: [flags][bytes]. flags bit 0: GCM instead of CCM-8, bit 1: we
 * issued a CID, bit 2: the peer asked for one. The bytes are walked as a
 * datagram of records through tether_rec_open (nothing may crash or read
 * out of bounds, and a refused record must leave the state unchanged),
 * then sealed as content and opened again by a mirror state, which must
 * give the same bytes back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtls/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init(tether_rec_t *r, uint8_t flags, bool mirror)
{
    static const uint8_t ka[16] = "0123456789abcdef", kb[16] = "fedcba9876543210";
    memset(r, 0, sizeof *r);
    r->alg = flags & 1 ? TETHER_REC_AES128_GCM : TETHER_REC_AES128_CCM8;
    r->epoch = 1;
    memcpy(r->tx_key, mirror ? kb : ka, 16);
    memcpy(r->rx_key, mirror ? ka : kb, 16);
    memcpy(r->tx_salt, mirror ? "SALT" : "salt", 4);
    memcpy(r->rx_salt, mirror ? "salt" : "SALT", 4);
    if (flags & (mirror ? 2 : 4)) {
        r->tx_cid_len = 8;
        memcpy(r->tx_cid, "\x05\x11\x22\x33\x44\x55\x66\x77", 8);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static Aes aes;
    static bool aes_ready;
    if (!aes_ready) {
        wc_AesInit(&aes, NULL, INVALID_DEVID);
        aes_ready = true;
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *rx_cid = (const uint8_t *)"\x05\x11\x22\x33\x44\x55\x66\x77";
    size_t rx_cid_len = flags & 2 ? 8 : 0;
    tether_rec_t r, m;
    init(&r, flags, false);
    init(&m, flags, true);
    static uint8_t out[TETHER_DTLS_MAX_DGRAM], rec[TETHER_DTLS_MAX_DGRAM + 64];
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    while (left) {
        size_t used = 0;
        tether_rec_in_t in;
        tether_rec_t saved = r;
        int rc = tether_rec_open(&r, &aes, rx_cid, rx_cid_len, p, left, &used, out, sizeof out,
                                 &in);
        if (used == 0 || used > left)
            abort();
        if (rc < 0 && memcmp(&saved, &r, sizeof r) != 0)
            abort();
        if (rc == TETHER_EPROTO)
            break;
        p += used;
        left -= used;
    }
    /* Round trip: the mirror seals what we would send it, we open it. */
    size_t n = size - 1 > 1200 ? 1200 : size - 1;
    int len = tether_rec_seal(&m, &aes, TETHER_REC_CT_APP, data + 1, n, rec, sizeof rec);
    if (len < 0)
        abort();
    r.rx_next = r.rx_window = 0;
    size_t used;
    tether_rec_in_t in;
    if (tether_rec_open(&r, &aes, rx_cid, rx_cid_len, rec, (size_t)len, &used, out, sizeof out,
                        &in) != 0 ||
        used != (size_t)len || in.len != n || in.type != TETHER_REC_CT_APP ||
        memcmp(out, data + 1, n) != 0)
        abort();
    return 0;
}
