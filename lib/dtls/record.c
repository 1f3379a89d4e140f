/* Compact DTLS 1.2 AEAD record layer (see record.h). */
#include <string.h>

#include "dtls/record.h"

#define SEQ_MAX ((UINT64_C(1) << 48) - 1)
#define VERSION_MAJOR 0xfe
#define VERSION_MINOR 0xfd /* DTLS 1.2 */

static size_t tag_len(const tether_rec_t *r)
{
    return r->alg == TETHER_REC_AES128_GCM ? 16 : 8;
}

static void put48(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 6; i++)
        p[i] = (uint8_t)(v >> (40 - 8 * i));
}

static uint64_t get48(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | p[i];
    return v;
}

/* Additional data. Plain records (RFC 5246 §6.2.3.3): seq_num(epoch, seq)
 * || type || version || length. CID records (RFC 9146 §5): 8 x 0xff ||
 * tls12_cid || cid_length || tls12_cid || version || epoch || seq || cid ||
 * length of the inner plaintext. Returns its length. */
static size_t make_aad(uint8_t *a, uint8_t type, uint16_t epoch, uint64_t seq, const uint8_t *cid,
                       size_t cid_len, size_t plen)
{
    size_t n = 0;
    if (cid_len) {
        memset(a, 0xff, 8);
        n = 8;
        a[n++] = TETHER_REC_CT_CID;
        a[n++] = (uint8_t)cid_len;
        a[n++] = TETHER_REC_CT_CID;
        a[n++] = VERSION_MAJOR;
        a[n++] = VERSION_MINOR;
        a[n++] = (uint8_t)(epoch >> 8);
        a[n++] = (uint8_t)epoch;
        put48(a + n, seq);
        n += 6;
        memcpy(a + n, cid, cid_len);
        n += cid_len;
    } else {
        a[n++] = (uint8_t)(epoch >> 8);
        a[n++] = (uint8_t)epoch;
        put48(a + n, seq);
        n += 6;
        a[n++] = type;
        a[n++] = VERSION_MAJOR;
        a[n++] = VERSION_MINOR;
    }
    a[n++] = (uint8_t)(plen >> 8);
    a[n++] = (uint8_t)plen;
    return n;
}

/* AES key schedules are not kept per session (they would cost more than the
 * rest of the session): the caller's scratch context is keyed per record.
 * Sealing writes the tag to `tag`; opening checks it there. */
static int aead(const tether_rec_t *r, Aes *aes, bool seal, const uint8_t *key, const uint8_t *salt,
                const uint8_t *explicit_nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    uint8_t nonce[12];
    memcpy(nonce, salt, 4);
    memcpy(nonce + 4, explicit_nonce, TETHER_REC_EXPLICIT);
    bool gcm = r->alg == TETHER_REC_AES128_GCM;
    word32 tl = (word32)tag_len(r), n = (word32)len, al = (word32)aad_len;
    if ((gcm ? wc_AesGcmSetKey(aes, key, 16) : wc_AesCcmSetKey(aes, key, 16)) != 0)
        return TETHER_ECRYPTO;
    int rc = seal ? (gcm ? wc_AesGcmEncrypt : wc_AesCcmEncrypt)(aes, out, in, n, nonce, 12, tag, tl,
                                                                aad, al)
                  : (gcm ? wc_AesGcmDecrypt : wc_AesCcmDecrypt)(aes, out, in, n, nonce, 12, tag, tl,
                                                                aad, al);
    return rc == 0 ? 0 : TETHER_ECRYPTO;
}

size_t tether_rec_overhead(const tether_rec_t *r)
{
    return TETHER_REC_HDR + r->tx_cid_len + (r->tx_cid_len ? 1 : 0) + TETHER_REC_EXPLICIT +
           tag_len(r);
}

bool tether_rec_window_fresh(const tether_rec_t *r, uint64_t seq)
{
    if (seq >= r->rx_next)
        return true;
    uint64_t k = r->rx_next - 1 - seq;
    return k < 64 && !(r->rx_window >> k & 1);
}

void tether_rec_window_mark(tether_rec_t *r, uint64_t seq)
{
    if (seq >= r->rx_next) {
        uint64_t shift = seq + 1 - r->rx_next;
        r->rx_window = shift >= 64 ? 0 : r->rx_window << shift;
        r->rx_window |= 1;
        r->rx_next = seq + 1;
    } else {
        r->rx_window |= UINT64_C(1) << (r->rx_next - 1 - seq);
    }
}

int tether_rec_open(tether_rec_t *r, Aes *aes, const uint8_t *rx_cid, size_t rx_cid_len,
                    const uint8_t *buf, size_t len, size_t *used, uint8_t *out, size_t cap,
                    tether_rec_in_t *in)
{
    *used = len;
    if (len < TETHER_REC_HDR)
        return TETHER_EPROTO;
    uint8_t type = buf[0];
    size_t cl = type == TETHER_REC_CT_CID ? rx_cid_len : 0;
    size_t hdr = TETHER_REC_HDR + cl;
    if (len < hdr)
        return TETHER_EPROTO;
    size_t body = (size_t)buf[hdr - 2] << 8 | buf[hdr - 1];
    if (hdr + body > len)
        return TETHER_EPROTO;
    *used = hdr + body;
    uint16_t epoch = (uint16_t)(buf[3] << 8 | buf[4]);
    uint64_t seq = get48(buf + 5);
    if (buf[1] != VERSION_MAJOR || buf[2] != VERSION_MINOR || epoch != r->epoch)
        return TETHER_ENOTFOUND;
    /* With a CID issued, the peer must use tls12_cid records (RFC 9146 §3). */
    if ((rx_cid_len != 0) != (type == TETHER_REC_CT_CID))
        return TETHER_ENOTFOUND;
    if (cl && memcmp(buf + 11, rx_cid, cl) != 0)
        return TETHER_ENOTFOUND;
    size_t tl = tag_len(r);
    if (body < TETHER_REC_EXPLICIT + tl)
        return TETHER_ECRYPTO;
    size_t clen = body - TETHER_REC_EXPLICIT - tl;
    if (clen > cap)
        return TETHER_ENOSPC;
    if (!tether_rec_window_fresh(r, seq))
        return TETHER_EEXIST;
    uint8_t aad[48];
    size_t alen = make_aad(aad, type, epoch, seq, rx_cid, cl, clen);
    const uint8_t *p = buf + hdr;
    if (aead(r, aes, false, r->rx_key, r->rx_salt, p, aad, alen, p + TETHER_REC_EXPLICIT, clen, out,
             (uint8_t *)(uintptr_t)(p + TETHER_REC_EXPLICIT + clen)) < 0)
        return TETHER_ECRYPTO;
    size_t plen = clen;
    if (cl) { /* DTLSInnerPlaintext: content || real type || zero padding */
        while (plen && out[plen - 1] == 0)
            plen--;
        if (!plen)
            return TETHER_EPROTO;
        type = out[--plen];
    }
    tether_rec_window_mark(r, seq);
    in->type = type;
    in->len = plen;
    in->number = (uint64_t)epoch << 48 | seq;
    return 0;
}

int tether_rec_seal(tether_rec_t *r, Aes *aes, uint8_t type, const uint8_t *data, size_t len,
                    uint8_t *out, size_t cap)
{
    size_t cl = r->tx_cid_len;
    size_t hdr = TETHER_REC_HDR + cl;
    size_t plen = len + (cl ? 1 : 0);
    size_t total = hdr + TETHER_REC_EXPLICIT + plen + tag_len(r);
    if (total > cap || total - hdr > 0xffff)
        return TETHER_ENOSPC;
    if (r->tx_seq > SEQ_MAX)
        return TETHER_ELIMIT; /* never wrap: a nonce must not repeat */
    uint64_t seq = r->tx_seq;
    out[0] = cl ? TETHER_REC_CT_CID : type;
    out[1] = VERSION_MAJOR;
    out[2] = VERSION_MINOR;
    out[3] = (uint8_t)(r->epoch >> 8);
    out[4] = (uint8_t)r->epoch;
    put48(out + 5, seq);
    memcpy(out + 11, r->tx_cid, cl);
    size_t body = total - hdr;
    out[hdr - 2] = (uint8_t)(body >> 8);
    out[hdr - 1] = (uint8_t)body;
    /* Explicit nonce = epoch || seq: unique per key without a random draw. */
    uint8_t *p = out + hdr;
    memcpy(p, out + 3, TETHER_REC_EXPLICIT);
    uint8_t *ct = p + TETHER_REC_EXPLICIT;
    memmove(ct, data, len); /* data may already sit in place */
    if (cl)
        ct[len] = type;
    uint8_t aad[48];
    size_t alen = make_aad(aad, out[0], r->epoch, seq, r->tx_cid, cl, plen);
    if (aead(r, aes, true, r->tx_key, r->tx_salt, p, aad, alen, ct, plen, ct, ct + plen) < 0)
        return TETHER_ECRYPTO;
    r->tx_seq = seq + 1;
    return (int)total;
}

void tether_rec_wipe(tether_rec_t *r)
{
    volatile uint8_t *p = (volatile uint8_t *)r;
    for (size_t i = 0; i < sizeof *r; i++)
        p[i] = 0;
}
