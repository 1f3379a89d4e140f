/* Session checkpoints: sealed serialisation of a compact session (see
 * checkpoint.h for the format and what it is bound to). */
#include <netinet/in.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/kdf.h>

#include "dtls/checkpoint.h"

#define SEQ_LIMIT (UINT64_C(1) << 48)
#define R_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define AAD_MAX (1 + 1 + 8 + 8 + 8 + 1 + TETHER_CID_MAX)

static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

int tether_ckpt_key(const uint8_t *ck, size_t len, tether_ckpt_key_t *out)
{
    static const uint8_t salt[] = "tether-checkpoint";
    static const uint8_t info[] = "session-wrap v1";
    if (!ck || !len)
        return TETHER_EINVAL;
    return wc_HKDF(WC_SHA256, ck, (word32)len, salt, sizeof salt - 1, info, sizeof info - 1,
                   out->key, sizeof out->key) == 0
               ? 0
               : TETHER_ECRYPTO;
}

void tether_ckpt_key_wipe(tether_ckpt_key_t *k)
{
    wipe(k, sizeof *k);
}
void tether_ckpt_wipe(tether_ckpt_t *c)
{
    wipe(c, sizeof *c);
}

/* ---- bytes ----------------------------------------------------------------- */

/* A bounded writer/reader: a call past the end marks it failed. */
typedef struct {
    uint8_t *p;
    const uint8_t *r;
    size_t len, off;
    bool bad;
} cur_t;

static void put(cur_t *c, const void *d, size_t n)
{
    if (c->bad || n > c->len - c->off) {
        c->bad = true;
        return;
    }
    memcpy(c->p + c->off, d, n);
    c->off += n;
}

static void put_uint(cur_t *c, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(c, b, (size_t)bytes);
}

static const uint8_t *get(cur_t *c, size_t n)
{
    if (c->bad || n > c->len - c->off) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *p = c->r + c->off;
    c->off += n;
    return p;
}

static uint64_t get_uint(cur_t *c, int bytes)
{
    const uint8_t *p = get(c, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; p && i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static void get_into(cur_t *c, void *d, size_t n)
{
    const uint8_t *p = get(c, n);
    if (p)
        memcpy(d, p, n);
}

static bool bind_ok(const tether_ckpt_bind_t *b)
{
    return b->cid && b->cid_len && b->cid_len <= TETHER_CID_MAX && b->seq_ceiling <= SEQ_LIMIT;
}

static size_t make_aad(const tether_ckpt_bind_t *b, uint8_t *a)
{
    cur_t c = {.p = a, .len = AAD_MAX};
    put_uint(&c, TETHER_CKPT_FORMAT, 1);
    put_uint(&c, b->owner, 1);
    put_uint(&c, b->generation, 8);
    put_uint(&c, b->version, 8);
    put_uint(&c, b->seq_ceiling, 8);
    put_uint(&c, b->cid_len, 1);
    put(&c, b->cid, b->cid_len);
    return c.off;
}

static size_t write_body(const tether_ckpt_t *s, uint8_t *out, size_t cap, bool *bad)
{
    const tether_rec_t *r = &s->rec;
    cur_t c = {.p = out, .len = cap};
    put_uint(&c, r->alg, 1);
    put_uint(&c, r->epoch, 2);
    put_uint(&c, r->tx_seq, 6);
    put_uint(&c, r->rx_next, 6);
    put_uint(&c, r->rx_window, 8);
    put(&c, r->tx_key, 16);
    put(&c, r->rx_key, 16);
    put(&c, r->tx_salt, 4);
    put(&c, r->rx_salt, 4);
    put_uint(&c, r->tx_cid_len, 1);
    put(&c, r->tx_cid, r->tx_cid_len);
    put_uint(&c, s->auth, 1);
    put_uint(&c, (uint64_t)s->role, 1);
    put_uint(&c, s->key_tag, 8);
    put_uint(&c, s->link_id, 8);
    size_t il = strnlen(s->identity, sizeof s->identity);
    put_uint(&c, il, 1);
    put(&c, s->identity, il);
    if (s->peer.ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&s->peer.ss;
        put_uint(&c, 4, 1);
        put_uint(&c, ntohs(a->sin_port), 2);
        put(&c, &a->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s->peer.ss;
        put_uint(&c, 6, 1);
        put_uint(&c, ntohs(a->sin6_port), 2);
        put(&c, &a->sin6_addr, 16);
    }
    put_uint(&c, s->unvalidated ? 1 : 0, 1);
    *bad = c.bad;
    return c.off;
}

/* Parses and checks a body; false for anything a seal would not write. */
static bool read_body(const uint8_t *in, size_t len, tether_ckpt_t *s)
{
    tether_rec_t *r = &s->rec;
    cur_t c = {.r = in, .len = len};
    r->alg = (uint8_t)get_uint(&c, 1);
    r->epoch = (uint16_t)get_uint(&c, 2);
    r->tx_seq = get_uint(&c, 6);
    r->rx_next = get_uint(&c, 6);
    r->rx_window = get_uint(&c, 8);
    get_into(&c, r->tx_key, 16);
    get_into(&c, r->rx_key, 16);
    get_into(&c, r->tx_salt, 4);
    get_into(&c, r->rx_salt, 4);
    size_t tl = (size_t)get_uint(&c, 1);
    if (tl > TETHER_CID_MAX)
        return false;
    r->tx_cid_len = (uint8_t)tl;
    get_into(&c, r->tx_cid, tl);
    s->auth = (uint8_t)get_uint(&c, 1);
    uint64_t role = get_uint(&c, 1);
    s->key_tag = get_uint(&c, 8);
    s->link_id = get_uint(&c, 8);
    size_t il = (size_t)get_uint(&c, 1);
    if (il == 0 || il >= sizeof s->identity)
        return false;
    get_into(&c, s->identity, il);
    if (memchr(s->identity, 0, il))
        return false;
    uint64_t fam = get_uint(&c, 1), port = get_uint(&c, 2);
    memset(&s->peer, 0, sizeof s->peer);
    if (fam == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&s->peer.ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        get_into(&c, &a->sin_addr, 4);
        s->peer.len = sizeof *a;
    } else if (fam == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->peer.ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        get_into(&c, &a->sin6_addr, 16);
        s->peer.len = sizeof *a;
    } else {
        return false;
    }
    uint64_t flags = get_uint(&c, 1);
    if (c.bad || c.off != len || flags > 1)
        return false;
    s->unvalidated = flags & 1;
    if (r->alg != TETHER_REC_AES128_CCM8 && r->alg != TETHER_REC_AES128_GCM)
        return false;
    if (r->epoch == 0 || (s->auth != TETHER_CKPT_AUTH_PSK && s->auth != TETHER_CKPT_AUTH_X509))
        return false;
    if (role != TETHER_ROLE_DEVICE && role != TETHER_ROLE_CLIENT)
        return false;
    if (s->auth == TETHER_CKPT_AUTH_X509 && s->key_tag)
        return false;
    s->role = (tether_role_t)role;
    /* A window bit for a sequence number below 0 cannot have been set. */
    if (r->rx_next < 64 && r->rx_window >> r->rx_next)
        return false;
    return true;
}

/* ---- sealing --------------------------------------------------------------- */

/* The one-time key of a seal: HMAC-SHA256(wrap key, "seal" | R16). */
static int subkey(const tether_ckpt_key_t *k, const uint8_t *rnd, uint8_t out[32])
{
    Hmac h;
    int rc = TETHER_ECRYPTO;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return rc;
    if (wc_HmacSetKey(&h, WC_SHA256, k->key, sizeof k->key) == 0 &&
        wc_HmacUpdate(&h, (const byte *)"seal", 4) == 0 && wc_HmacUpdate(&h, rnd, R_LEN) == 0 &&
        wc_HmacFinal(&h, out) == 0)
        rc = 0;
    wc_HmacFree(&h);
    return rc;
}

static int gcm(bool seal, const uint8_t key[32], const uint8_t *nonce, const uint8_t *aad,
               size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    Aes aes;
    int rc = TETHER_ECRYPTO;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return rc;
    if (wc_AesGcmSetKey(&aes, key, 32) == 0) {
        int r = seal ? wc_AesGcmEncrypt(&aes, out, in, (word32)len, nonce, NONCE_LEN, tag, TAG_LEN,
                                        aad, (word32)aad_len)
                     : wc_AesGcmDecrypt(&aes, out, in, (word32)len, nonce, NONCE_LEN, tag, TAG_LEN,
                                        aad, (word32)aad_len);
        rc = r == 0 ? 0 : TETHER_ECRYPTO;
    }
    wc_AesFree(&aes);
    wipe(&aes, sizeof aes);
    return rc;
}

int tether_ckpt_seal_body(const tether_ckpt_key_t *k, WC_RNG *rng, const tether_ckpt_bind_t *b,
                          const uint8_t *body, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!bind_ok(b) || n > TETHER_CKPT_BODY_MAX)
        return TETHER_EINVAL;
    if (cap < TETHER_CKPT_OVERHEAD + n)
        return TETHER_ENOSPC;
    uint8_t aad[AAD_MAX], key[32];
    size_t al = make_aad(b, aad);
    out[0] = TETHER_CKPT_FORMAT;
    int rc = TETHER_ECRYPTO;
    if (wc_RNG_GenerateBlock(rng, out + 1, R_LEN + NONCE_LEN) == 0 && subkey(k, out + 1, key) == 0)
        rc = gcm(true, key, out + 1 + R_LEN, aad, al, body, n, out + 1 + R_LEN + NONCE_LEN,
                 out + 1 + R_LEN + NONCE_LEN + n);
    wipe(key, sizeof key);
    if (rc == 0)
        *out_len = TETHER_CKPT_OVERHEAD + n;
    return rc;
}

int tether_ckpt_seal(const tether_ckpt_key_t *k, WC_RNG *rng, const tether_ckpt_bind_t *b,
                     const tether_ckpt_t *c, uint8_t *out, size_t cap, size_t *out_len)
{
    const tether_rec_t *r = &c->rec;
    if (r->epoch == 0 || r->tx_cid_len > TETHER_CID_MAX || r->tx_seq >= SEQ_LIMIT ||
        r->rx_next >= SEQ_LIMIT ||
        (r->alg != TETHER_REC_AES128_CCM8 && r->alg != TETHER_REC_AES128_GCM) ||
        (c->auth != TETHER_CKPT_AUTH_PSK && c->auth != TETHER_CKPT_AUTH_X509) ||
        (c->role != TETHER_ROLE_DEVICE && c->role != TETHER_ROLE_CLIENT) ||
        (c->auth == TETHER_CKPT_AUTH_X509 && c->key_tag) || !c->identity[0] ||
        strnlen(c->identity, sizeof c->identity) == sizeof c->identity ||
        (c->peer.ss.ss_family != AF_INET && c->peer.ss.ss_family != AF_INET6))
        return TETHER_EINVAL;
    uint8_t body[TETHER_CKPT_BODY_MAX];
    bool bad;
    size_t n = write_body(c, body, sizeof body, &bad);
    int rc = bad ? TETHER_EINVAL : tether_ckpt_seal_body(k, rng, b, body, n, out, cap, out_len);
    wipe(body, sizeof body);
    return rc;
}

int tether_ckpt_open(const tether_ckpt_key_t *k, const tether_ckpt_bind_t *b, const uint8_t *in,
                     size_t len, tether_ckpt_t *c)
{
    memset(c, 0, sizeof *c);
    if (!bind_ok(b))
        return TETHER_EINVAL;
    if (len < TETHER_CKPT_OVERHEAD || len > TETHER_CKPT_MAX || in[0] != TETHER_CKPT_FORMAT)
        return TETHER_EPROTO;
    size_t n = len - TETHER_CKPT_OVERHEAD;
    uint8_t aad[AAD_MAX], key[32], body[TETHER_CKPT_BODY_MAX];
    size_t al = make_aad(b, aad);
    int rc = subkey(k, in + 1, key);
    if (rc == 0)
        rc = gcm(false, key, in + 1 + R_LEN, aad, al, in + 1 + R_LEN + NONCE_LEN, n, body,
                 (uint8_t *)(uintptr_t)(in + 1 + R_LEN + NONCE_LEN + n));
    wipe(key, sizeof key);
    if (rc == 0 && !read_body(body, n, c))
        rc = TETHER_EPROTO;
    wipe(body, sizeof body);
    if (rc < 0)
        tether_ckpt_wipe(c);
    return rc;
}
