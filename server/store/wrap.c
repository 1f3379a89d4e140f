/* Sealing secrets for Redis (see wrap.h). */
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tether/common.h"
#include "wrap.h"

#define FORMAT 0x01
#define NONCE 12
#define TAG 16
#define AAD_MAX 2200 /* format byte + a Redis key name + version */

int tetherd_wrap_init(tetherd_wrap_t *w, const uint8_t *ck, size_t ck_len)
{
    static const char salt[] = "tether redis wrap", info[] = "v1";
    memset(w, 0, sizeof *w);
    if (!ck_len)
        return TETHER_ECRYPTO;
    if (wc_HKDF(WC_SHA256, ck, (word32)ck_len, (const byte *)salt, sizeof salt - 1,
                (const byte *)info, sizeof info - 1, w->key, sizeof w->key) != 0)
        return TETHER_ECRYPTO;
    w->ready = 1;
    return 0;
}

/* The additional data: the format byte, then the caller's. */
static int full_aad(const uint8_t *aad, size_t len, uint8_t out[AAD_MAX], size_t *out_len)
{
    if (len + 1 > AAD_MAX)
        return TETHER_ENOSPC;
    out[0] = FORMAT;
    memcpy(out + 1, aad, len);
    *out_len = len + 1;
    return 0;
}

int tetherd_wrap_seal(const tetherd_wrap_t *w, const uint8_t *aad, size_t aad_len,
                      const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    uint8_t a[AAD_MAX];
    size_t al;
    int rc;
    if (!w->ready)
        return TETHER_ECRYPTO;
    if (cap < pt_len + TETHERD_WRAP_OVERHEAD)
        return TETHER_ENOSPC;
    if ((rc = full_aad(aad, aad_len, a, &al)) < 0)
        return rc;
    out[0] = FORMAT;
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0)
        return TETHER_ECRYPTO;
    rc = wc_RNG_GenerateBlock(&rng, out + 1, NONCE);
    wc_FreeRng(&rng);
    if (rc != 0)
        return TETHER_ECRYPTO;
    Aes aes;
    rc = TETHER_ECRYPTO;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return rc;
    if (wc_AesGcmSetKey(&aes, w->key, sizeof w->key) == 0 &&
        wc_AesGcmEncrypt(&aes, out + 1 + NONCE, pt, (word32)pt_len, out + 1, NONCE,
                         out + 1 + NONCE + pt_len, TAG, a, (word32)al) == 0) {
        *out_len = pt_len + TETHERD_WRAP_OVERHEAD;
        rc = 0;
    }
    wc_AesFree(&aes);
    return rc;
}

int tetherd_wrap_open(const tetherd_wrap_t *w, const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                      size_t *out_len)
{
    uint8_t a[AAD_MAX];
    size_t al;
    int rc;
    if (!w->ready)
        return TETHER_ECRYPTO;
    if (in_len < TETHERD_WRAP_OVERHEAD || in[0] != FORMAT)
        return TETHER_EPROTO;
    size_t n = in_len - TETHERD_WRAP_OVERHEAD;
    if (cap < n)
        return TETHER_ENOSPC;
    if ((rc = full_aad(aad, aad_len, a, &al)) < 0)
        return rc;
    Aes aes;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return TETHER_ECRYPTO;
    rc = TETHER_EPROTO;
    if (wc_AesGcmSetKey(&aes, w->key, sizeof w->key) == 0 &&
        wc_AesGcmDecrypt(&aes, out, in + 1 + NONCE, (word32)n, in + 1, NONCE, in + 1 + NONCE + n,
                         TAG, a, (word32)al) == 0) {
        *out_len = n;
        rc = 0;
    }
    wc_AesFree(&aes);
    if (rc < 0)
        memset(out, 0, n);
    return rc;
}

void tetherd_wrap_clear(tetherd_wrap_t *w)
{
    volatile uint8_t *p = w->key;
    for (size_t i = 0; i < sizeof w->key; i++)
        p[i] = 0;
    w->ready = 0;
}
