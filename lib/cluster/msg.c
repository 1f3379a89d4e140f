/* The cluster's internal channel messages (see tether/cluster.h). */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "tether/cluster.h"
#include "util/be64.h"

#define VERSION 2
#define OFF_FAMILY 23

/* HMAC-SHA256 (RFC 2104 §2) with the key's two padded blocks hashed once:
 * every message then costs its own blocks and the outer hash only, not
 * the two key blocks a fresh HMAC setup hashes again. */
struct tether_cluster_key {
    wc_Sha256 inner; /* after H(K ^ ipad) */
    wc_Sha256 outer; /* after H(K ^ opad) */
};

static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

/* Fills k from key (a key over one block is hashed first, §2). */
static int key_init(tether_cluster_key_t *k, const uint8_t *key, size_t key_len)
{
    uint8_t kb[WC_SHA256_BLOCK_SIZE] = {0}, pad[WC_SHA256_BLOCK_SIZE];
    int rc = TETHER_ECRYPTO;
    if (key_len > sizeof kb) {
        if (wc_Sha256Hash(key, (word32)key_len, kb) != 0)
            return rc;
    } else if (key_len) {
        memcpy(kb, key, key_len);
    }
    if (wc_InitSha256(&k->inner) != 0)
        goto out;
    if (wc_InitSha256(&k->outer) != 0) {
        wc_Sha256Free(&k->inner);
        goto out;
    }
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = kb[i] ^ 0x36;
    if (wc_Sha256Update(&k->inner, pad, sizeof pad) == 0) {
        for (size_t i = 0; i < sizeof pad; i++)
            pad[i] = kb[i] ^ 0x5c;
        if (wc_Sha256Update(&k->outer, pad, sizeof pad) == 0)
            rc = 0;
    }
    if (rc < 0) {
        wc_Sha256Free(&k->inner);
        wc_Sha256Free(&k->outer);
    }
out:
    wipe(kb, sizeof kb);
    wipe(pad, sizeof pad);
    return rc;
}

static void key_wipe(tether_cluster_key_t *k)
{
    wc_Sha256Free(&k->inner);
    wc_Sha256Free(&k->outer);
    wipe(k, sizeof *k);
}

int tether_cluster_key_new(const uint8_t *key, size_t key_len, tether_cluster_key_t **out)
{
    tether_cluster_key_t *k = calloc(1, sizeof *k);
    if (!k)
        return TETHER_ENOMEM;
    if (key_init(k, key, key_len) < 0) {
        free(k);
        return TETHER_ECRYPTO;
    }
    *out = k;
    return 0;
}

void tether_cluster_key_free(tether_cluster_key_t *k)
{
    if (!k)
        return;
    key_wipe(k);
    free(k);
}

/* First TETHER_CLUSTER_MAC bytes of HMAC-SHA256(key, data). */
static int mac(const tether_cluster_key_t *k, const uint8_t *data, size_t len,
               uint8_t out[TETHER_CLUSTER_MAC])
{
    wc_Sha256 h;
    uint8_t full[WC_SHA256_DIGEST_SIZE];
    int rc = TETHER_ECRYPTO;
    if (wc_Sha256Copy((wc_Sha256 *)&k->inner, &h) != 0)
        return rc;
    bool ok = wc_Sha256Update(&h, data, (word32)len) == 0 && wc_Sha256Final(&h, full) == 0;
    wc_Sha256Free(&h);
    if (ok && wc_Sha256Copy((wc_Sha256 *)&k->outer, &h) == 0) {
        if (wc_Sha256Update(&h, full, sizeof full) == 0 && wc_Sha256Final(&h, full) == 0) {
            memcpy(out, full, TETHER_CLUSTER_MAC);
            rc = 0;
        }
        wc_Sha256Free(&h);
    }
    return rc;
}

int tether_cluster_encode(const tether_cluster_msg_t *m, const uint8_t *key, size_t key_len,
                          uint8_t *out, size_t cap)
{
    tether_cluster_key_t k;
    if (key_init(&k, key, key_len) < 0)
        return TETHER_ECRYPTO;
    int rc = tether_cluster_encode_k(m, &k, out, cap);
    key_wipe(&k);
    return rc;
}

int tether_cluster_decode(const uint8_t *in, size_t len, const uint8_t *key, size_t key_len,
                          uint8_t self, tether_time_t now, tether_cluster_msg_t *m)
{
    tether_cluster_key_t k;
    if (key_init(&k, key, key_len) < 0)
        return TETHER_ECRYPTO;
    int rc = tether_cluster_decode_k(in, len, &k, self, now, m);
    key_wipe(&k);
    return rc;
}

int tether_cluster_encode_k(const tether_cluster_msg_t *m, const tether_cluster_key_t *k,
                            uint8_t *out, size_t cap)
{
    if (m->type < TETHER_CLUSTER_FORWARD || m->type > TETHER_CLUSTER_TYPE_LAST)
        return TETHER_EINVAL;
    size_t total = TETHER_CLUSTER_OVERHEAD + m->payload_len;
    if (total > cap)
        return TETHER_ENOSPC;
    memset(out, 0, TETHER_CLUSTER_HDR);
    out[0] = 'T';
    out[1] = 'Q';
    out[2] = VERSION;
    out[3] = m->type;
    out[4] = m->from_node;
    out[5] = m->to_node;
    out[6] = m->iface;
    tether_be64_put(out + 7, m->counter);
    tether_be64_put(out + 15, m->sent_at);
    const struct sockaddr *sa = (const struct sockaddr *)&m->client.ss;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out[OFF_FAMILY] = 4;
        memcpy(out + OFF_FAMILY + 1, &s4->sin_port, 2);
        memcpy(out + OFF_FAMILY + 3, &s4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        out[OFF_FAMILY] = 6;
        memcpy(out + OFF_FAMILY + 1, &s6->sin6_port, 2);
        memcpy(out + OFF_FAMILY + 3, &s6->sin6_addr, 16);
    } else {
        return TETHER_EINVAL;
    }
    if (m->payload_len) /* a heartbeat has none (and no pointer) */
        memmove(out + TETHER_CLUSTER_HDR, m->payload, m->payload_len);
    size_t body = TETHER_CLUSTER_HDR + m->payload_len;
    if (mac(k, out, body, out + body) < 0)
        return TETHER_ECRYPTO;
    return (int)total;
}

int tether_cluster_decode_k(const uint8_t *in, size_t len, const tether_cluster_key_t *k,
                            uint8_t self, tether_time_t now, tether_cluster_msg_t *m)
{
    if (len < TETHER_CLUSTER_OVERHEAD || in[0] != 'T' || in[1] != 'Q' || in[2] != VERSION ||
        in[3] < TETHER_CLUSTER_FORWARD || in[3] > TETHER_CLUSTER_TYPE_LAST ||
        (in[OFF_FAMILY] != 4 && in[OFF_FAMILY] != 6))
        return TETHER_EPROTO;
    size_t body = len - TETHER_CLUSTER_MAC;
    uint8_t want[TETHER_CLUSTER_MAC];
    if (mac(k, in, body, want) < 0)
        return TETHER_ECRYPTO;
    uint8_t diff = 0; /* constant time: the MAC is the only secret-dependent check */
    for (size_t i = 0; i < TETHER_CLUSTER_MAC; i++)
        diff |= (uint8_t)(want[i] ^ in[body + i]);
    if (diff)
        return TETHER_ECRYPTO;
    tether_time_t at = tether_be64_get(in + 15);
    if ((at > now ? at - now : now - at) > TETHER_CLUSTER_MAX_SKEW_MS)
        return TETHER_ETIMEDOUT;
    if (in[5] != self)
        return TETHER_ENOTFOUND;
    memset(m, 0, sizeof *m);
    m->type = in[3];
    m->from_node = in[4];
    m->to_node = in[5];
    m->iface = in[6];
    m->counter = tether_be64_get(in + 7);
    m->sent_at = at;
    if (in[OFF_FAMILY] == 4) {
        /* One encoding per message: the 12 bytes after an IPv4 address are
         * zero (encode writes them so; found by fuzz_cluster). */
        static const uint8_t zero[12];
        if (memcmp(in + OFF_FAMILY + 7, zero, sizeof zero) != 0)
            return TETHER_EPROTO;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&m->client.ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_port, in + OFF_FAMILY + 1, 2);
        memcpy(&s4->sin_addr, in + OFF_FAMILY + 3, 4);
        m->client.len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&m->client.ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_port, in + OFF_FAMILY + 1, 2);
        memcpy(&s6->sin6_addr, in + OFF_FAMILY + 3, 16);
        m->client.len = sizeof *s6;
    }
    m->payload = in + TETHER_CLUSTER_HDR;
    m->payload_len = body - TETHER_CLUSTER_HDR;
    return 0;
}

/* Type, interface, family, port, address at its length, payload length. */
int tether_cluster_frame_put(const tether_cluster_msg_t *f, uint8_t *out, size_t cap)
{
    if (f->type == TETHER_CLUSTER_HEARTBEAT || f->type == TETHER_CLUSTER_BUNDLE ||
        f->type < TETHER_CLUSTER_FORWARD || f->type > TETHER_CLUSTER_TYPE_LAST ||
        f->payload_len > 0xffff)
        return TETHER_EINVAL;
    const struct sockaddr *sa = (const struct sockaddr *)&f->client.ss;
    size_t alen = sa->sa_family == AF_INET ? 4 : sa->sa_family == AF_INET6 ? 16 : 0;
    if (!alen)
        return TETHER_EINVAL;
    size_t n = 7 + alen + f->payload_len;
    if (n > cap)
        return TETHER_ENOSPC;
    out[0] = f->type;
    out[1] = f->iface;
    if (alen == 4) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out[2] = 4;
        memcpy(out + 3, &s4->sin_port, 2);
        memcpy(out + 5, &s4->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        out[2] = 6;
        memcpy(out + 3, &s6->sin6_port, 2);
        memcpy(out + 5, &s6->sin6_addr, 16);
    }
    out[5 + alen] = (uint8_t)(f->payload_len >> 8);
    out[6 + alen] = (uint8_t)f->payload_len;
    if (f->payload_len)
        memmove(out + 7 + alen, f->payload, f->payload_len);
    return (int)n;
}

int tether_cluster_frame_next(const uint8_t *buf, size_t len, size_t *pos, tether_cluster_msg_t *f)
{
    size_t at = *pos;
    if (at >= len)
        return 0;
    const uint8_t *p = buf + at;
    size_t left = len - at;
    if (left < 3 || p[0] == TETHER_CLUSTER_HEARTBEAT || p[0] == TETHER_CLUSTER_BUNDLE ||
        p[0] < TETHER_CLUSTER_FORWARD || p[0] > TETHER_CLUSTER_TYPE_LAST ||
        (p[2] != 4 && p[2] != 6))
        return TETHER_EPROTO;
    size_t alen = p[2] == 4 ? 4 : 16;
    if (left < 7 + alen)
        return TETHER_EPROTO;
    size_t plen = (size_t)p[5 + alen] << 8 | p[6 + alen];
    if (left - 7 - alen < plen)
        return TETHER_EPROTO;
    memset(&f->client, 0, sizeof f->client);
    f->type = p[0];
    f->iface = p[1];
    if (alen == 4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&f->client.ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_port, p + 3, 2);
        memcpy(&s4->sin_addr, p + 5, 4);
        f->client.len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&f->client.ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_port, p + 3, 2);
        memcpy(&s6->sin6_addr, p + 5, 16);
        f->client.len = sizeof *s6;
    }
    f->payload = p + 7 + alen;
    f->payload_len = plen;
    *pos = at + 7 + alen + plen;
    return 1;
}

int tether_cluster_cid_node(const uint8_t *d, size_t len)
{
    if (len >= 13 && d[0] == 25) /* DTLS 1.2 tls12_cid: CID after the sequence number */
        return d[11];
    if (len >= 2 && (d[0] & 0xe0) == 0x20 && (d[0] & 0x10)) /* DTLS 1.3 unified header, C bit */
        return d[1];
    return -1;
}
