/* libFuzzer target: session checkpoint import (lib/dtls/checkpoint.c).
 * Input: [mode][bytes]. Mode bit 0 clear: the bytes are a blob, opened
 * under a fixed key and binding (the tag stops nearly all; nothing may
 * crash or read out of bounds). Bit 0 set: the bytes are a body, sealed
 * with the fixed key first, so the body parser behind the tag is reached.
 * Whatever opens must seal again and open to the same state (the encoding
 * is canonical), and must not open under a neighbouring binding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtls/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const tether_ckpt_t *a, const tether_ckpt_t *b)
{
    return memcmp(&a->rec, &b->rec, sizeof a->rec) == 0 && a->auth == b->auth &&
           a->role == b->role && a->key_tag == b->key_tag && a->link_id == b->link_id &&
           strcmp(a->identity, b->identity) == 0 && a->peer.len == b->peer.len &&
           memcmp(&a->peer.ss, &b->peer.ss, a->peer.len) == 0 && a->unvalidated == b->unvalidated;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tether_ckpt_key_t key;
    static WC_RNG rng;
    static bool ready;
    if (!ready) {
        if (tether_ckpt_key((const uint8_t *)"fuzz cluster key", 16, &key) < 0 ||
            wc_InitRng(&rng) != 0)
            abort();
        ready = true;
    }
    if (size < 1)
        return 0;
    static const uint8_t cid[8] = {5, 1, 2, 3, 4, 5, 6, 7};
    tether_ckpt_bind_t b = {.cid = cid,
                            .cid_len = sizeof cid,
                            .owner = 5,
                            .generation = 2,
                            .version = 9,
                            .seq_ceiling = 4096};
    static uint8_t blob[TETHER_CKPT_MAX + 2048];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        if (len > TETHER_CKPT_BODY_MAX)
            return 0;
        size_t n;
        if (tether_ckpt_seal_body(&key, &rng, &b, in, len, blob, sizeof blob, &n) != 0)
            abort();
        in = blob;
        len = n;
    }
    tether_ckpt_t c, back;
    if (tether_ckpt_open(&key, &b, in, len, &c) != 0) {
        static const tether_ckpt_t zero;
        if (memcmp(&c, &zero, sizeof c) != 0)
            abort(); /* a refused checkpoint leaves nothing behind */
        return 0;
    }
    uint8_t again[TETHER_CKPT_MAX];
    size_t n;
    if (tether_ckpt_seal(&key, &rng, &b, &c, again, sizeof again, &n) != 0 || n != len ||
        tether_ckpt_open(&key, &b, again, n, &back) != 0 || !same(&c, &back))
        abort();
    b.version++;
    if (tether_ckpt_open(&key, &b, again, n, &back) != TETHER_ECRYPTO)
        abort();
    return 0;
}
