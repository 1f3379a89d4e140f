/* Session tickets in tether's format (see ticket.h): epoch keys, the
 * wolfSSL ticket encryption callback, and the claims a resumed handshake
 * takes its identity from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "dtls/dtls_int.h"
#include "dtls/ticket.h"
#include "dtls/wolfrec.h"
#include "util/be64.h"

#if WOLFSSL_TICKET_EXTRA_PADDING_SZ < TETHER_TICKET_TRAILER_MAX
#error "no room for the ticket trailer: WOLFSSL_TICKET_EXTRA_PADDING_SZ (deploy/wolfssl.sh)"
#endif

#define TRAILER_FIXED 12 /* n, auth, role, key tag, version */
#define TRAILER_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

static const uint8_t magic[4] = {'T', 'Q', 't', '1'};
static const uint8_t salt[] = "tether-ticket-v1";

static int derive(const tether_ticket_keys_t *k, const uint8_t *info, size_t info_len, uint8_t *out,
                  size_t out_len)
{
    return wc_HKDF(WC_SHA256, k->ikm, (word32)k->ikm_len, salt, sizeof salt - 1, info,
                   (word32)info_len, out, (word32)out_len)
               ? TETHER_ECRYPTO
               : 0;
}

/* The AES-256-GCM key of `epoch` into `aes`. */
static int epoch_key(const tether_ticket_keys_t *k, uint64_t epoch, Aes *aes)
{
    uint8_t info[11] = "key", key[32];
    tether_be64_put(info + 3, epoch);
    int rc = derive(k, info, sizeof info, key, sizeof key);
    if (!rc && wc_AesGcmSetKey(aes, key, sizeof key) != 0)
        rc = TETHER_ECRYPTO;
    wc_ForceZero(key, sizeof key);
    return rc;
}

static tether_time_t rotation(const tether_dtls_srv_t *srv)
{
    return srv->conf.ticket_rotation_ms ? srv->conf.ticket_rotation_ms : 1;
}

tether_time_t dtls_ticket_rotate(tether_dtls_srv_t *srv, tether_time_t clock)
{
    tether_ticket_keys_t *k = &srv->tkt;
    uint64_t e = clock / rotation(srv);
    if (e != k->epoch) {
        /* Both keys again: a jump of more than one epoch (the first wall
         * clock) must not keep an old key as the previous one. */
        k->ready = epoch_key(k, e, &k->aes[0]) == 0 &&
                   epoch_key(k, e ? e - 1 : UINT64_MAX, &k->aes[1]) == 0;
        k->epoch = e;
    }
    return (e + 1) * rotation(srv);
}

/* The key tag of X.509 tickets: SHA-256 of the client CA file's bytes
 * (ticket.h), read here as wolfSSL read it for verifying. */
static int ca_tag(const char *path, uint64_t *tag)
{
    *tag = 0;
    if (!path || !*path)
        return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return TETHER_ECONFIG;
    wc_Sha256 h;
    uint8_t buf[4096], md[WC_SHA256_DIGEST_SIZE];
    int rc = wc_InitSha256(&h) ? TETHER_ECRYPTO : 0;
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, fp)) > 0)
        rc = wc_Sha256Update(&h, buf, (word32)n) ? TETHER_ECRYPTO : 0;
    if (!rc && ferror(fp))
        rc = TETHER_ECONFIG;
    if (!rc)
        rc = wc_Sha256Final(&h, md) ? TETHER_ECRYPTO : 0;
    wc_Sha256Free(&h);
    fclose(fp);
    if (!rc)
        *tag = tether_be64_get(md);
    return rc;
}

int dtls_ticket_setup(tether_dtls_srv_t *srv, const char *ca_file, tether_time_t clock)
{
    tether_ticket_keys_t *k = &srv->tkt;
    int rc = ca_tag(ca_file, &k->ca_tag);
    if (rc < 0)
        return rc;
    /* Sessions are never looked up by id: a session-ID resumption would
     * name nobody (tickets carry the identity), so it gets a full one. */
    wolfSSL_CTX_set_session_cache_mode(srv->ctx, WOLFSSL_SESS_CACHE_OFF);
    /* The context "has" the ticket extension, so a full handshake after a
     * refused ticket sends a new one (wolfSSL adds it to the handshake
     * only when the client asked with an empty one). */
    if (wolfSSL_CTX_UseSessionTicket(srv->ctx) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketEncCb(srv->ctx, dtls_ticket_cb) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketEncCtx(srv->ctx, srv) != WOLFSSL_SUCCESS)
        return TETHER_ECRYPTO;
    if (srv->conf.cluster_key_len) {
        memcpy(k->ikm, srv->cluster_key, srv->conf.cluster_key_len);
        k->ikm_len = srv->conf.cluster_key_len;
    } else {
        k->ikm_len = 32; /* this process only (conf/README.md) */
        if (wc_RNG_GenerateBlock(&srv->rng, k->ikm, (word32)k->ikm_len) != 0)
            return TETHER_ECRYPTO;
    }
    static const uint8_t name[] = "name";
    if (derive(k, name, sizeof name - 1, k->check, sizeof k->check) < 0 ||
        wc_AesInit(&k->aes[0], NULL, INVALID_DEVID) != 0)
        return TETHER_ECRYPTO;
    if (wc_AesInit(&k->aes[1], NULL, INVALID_DEVID) != 0) {
        wc_AesFree(&k->aes[0]);
        return TETHER_ECRYPTO;
    }
    k->epoch = UINT64_MAX;
    dtls_ticket_rotate(srv, clock);
    if (!k->ready) {
        dtls_ticket_wipe(srv);
        return TETHER_ECRYPTO;
    }
    /* wolfSSL's own age check (DTLS 1.3) and the lifetime it announces: a
     * ticket opens for at least one rotation and at most two. */
    uint32_t life = (uint32_t)(rotation(srv) / 1000);
    wolfSSL_CTX_set_timeout(srv->ctx, life ? life : 1);
    wolfSSL_CTX_set_TicketHint(srv->ctx, (int)(life ? life : 1));
    return 0;
}

void dtls_ticket_wipe(tether_dtls_srv_t *srv)
{
    tether_ticket_keys_t *k = &srv->tkt;
    wc_AesFree(&k->aes[0]);
    wc_AesFree(&k->aes[1]);
    wc_ForceZero(k, sizeof *k);
}

/* ---- claims ------------------------------------------------------------ */

const tether_ticket_claim_t *dtls_ticket_find(const tether_ticket_seen_t *seen,
                                              const uint8_t bind[TETHER_TICKET_BIND_LEN])
{
    for (size_t i = 0; seen && i < seen->n; i++) {
        uint8_t d = 0; /* constant time: a digest of a secret */
        for (size_t j = 0; j < TETHER_TICKET_BIND_LEN; j++)
            d |= seen->c[i].bind[j] ^ bind[j];
        if (!d)
            return &seen->c[i];
    }
    return NULL;
}

bool dtls_ticket_claim_current(const tether_dtls_srv_t *srv, const tether_ticket_claim_t *c)
{
    const tether_creds_t *creds = srv->creds;
    tether_role_t role;
    uint64_t tag;
    if (c->auth == AUTH_X509)
        return tether_creds_x509(creds, c->identity, &role) == 0 && role == c->role &&
               c->key_tag == srv->tkt.ca_tag;
    return c->auth == AUTH_PSK && tether_creds_role(creds, c->identity, &role) == 0 &&
           role == c->role && tether_creds_key_tag(creds, c->identity, &tag) == 0 &&
           tag == c->key_tag;
}

void dtls_ticket_seen_free(tether_ticket_seen_t **seen)
{
    if (*seen) {
        wc_ForceZero(*seen, sizeof **seen);
        free(*seen);
        *seen = NULL;
    }
}

/* Remembers an opened ticket's claim for the handshake (ticket.h: several
 * may open while one hello is read; the oldest gives way). */
static void remember(io_t *io, const tether_ticket_claim_t *c)
{
    if (dtls_ticket_find(io->tickets, c->bind))
        return;
    if (!io->tickets && !(io->tickets = calloc(1, sizeof *io->tickets)))
        return; /* not resumable then: a full handshake follows */
    tether_ticket_seen_t *s = io->tickets;
    s->c[s->next] = *c;
    s->next = (uint8_t)((s->next + 1) % TETHER_TICKET_SEEN_MAX);
    if (s->n < TETHER_TICKET_SEEN_MAX)
        s->n++;
}

/* Who the ticket being built is for (tether_wolf_ticket_peer): the PSK
 * identity or the certificate this handshake authenticated, or, for a
 * resumption, the claim of the ticket it resumes. */
static int issue_claim(tether_dtls_srv_t *srv, WOLFSSL *ssl, io_t *io, tether_ticket_claim_t *c)
{
    memset(c, 0, sizeof *c);
    switch (tether_wolf_ticket_peer(ssl, c->identity, sizeof c->identity, c->bind)) {
    case TETHER_WOLF_AUTH_PSK:
        c->auth = AUTH_PSK;
        return tether_creds_role(srv->creds, c->identity, &c->role) == 0 &&
                       tether_creds_key_tag(srv->creds, c->identity, &c->key_tag) == 0
                   ? 0
                   : TETHER_ENOTFOUND;
    case TETHER_WOLF_AUTH_CERT:
        /* cert_verify_cb accepted this CN during this handshake. */
        if (io->auth != AUTH_X509 || !io->identity[0])
            return TETHER_EPROTO;
        memcpy(c->identity, io->identity, sizeof c->identity);
        c->auth = AUTH_X509;
        c->key_tag = srv->tkt.ca_tag;
        return tether_creds_x509(srv->creds, c->identity, &c->role) == 0 ? 0 : TETHER_ENOTFOUND;
    case TETHER_WOLF_AUTH_RESUMED: {
        const tether_ticket_claim_t *old = dtls_ticket_find(io->tickets, c->bind);
        if (!old)
            return TETHER_EPROTO;
        *c = *old;
        return 0;
    }
    default: return TETHER_EPROTO;
    }
}

static void aad_of(uint8_t aad[34], const uint8_t *name, const uint8_t *iv, int len)
{
    memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    aad[32] = (uint8_t)(len >> 8);
    aad[33] = (uint8_t)len;
}

static int ticket_encrypt(tether_dtls_srv_t *srv, WOLFSSL *ssl, io_t *io, uint8_t *name,
                          uint8_t *iv, uint8_t *mac, uint8_t *buf, int len, int *out_len)
{
    tether_ticket_claim_t c;
    if (!srv->tkt.ready)
        return WOLFSSL_TICKET_RET_FATAL;
    /* A peer this handshake did not authenticate (its session is refused
     * when the handshake completes) gets a void ticket, which names nobody
     * and never opens: failing here would change how the handshake ends. */
    if (issue_claim(srv, ssl, io, &c) < 0)
        memset(&c, 0, sizeof c);
    size_t n = strnlen(c.identity, sizeof c.identity);
    if (n >= sizeof c.identity || len < 0 || (size_t)len + n + TRAILER_FIXED > (size_t)*out_len)
        return WOLFSSL_TICKET_RET_FATAL;
    uint8_t *t = buf + len;
    memcpy(t, c.identity, n);
    t += n;
    *t++ = (uint8_t)n;
    *t++ = c.auth;
    *t++ = (uint8_t)c.role;
    tether_be64_put(t, c.key_tag);
    t += 8;
    *t++ = TRAILER_VERSION;
    int total = (int)(t - buf);

    memcpy(name, magic, 4);
    tether_be64_put(name + 4, srv->tkt.epoch);
    memcpy(name + 12, srv->tkt.check, 4);
    if (wc_RNG_GenerateBlock(&srv->rng, iv, WOLFSSL_TICKET_IV_SZ) != 0)
        return WOLFSSL_TICKET_RET_FATAL;
    uint8_t aad[34];
    aad_of(aad, name, iv, total);
    memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (wc_AesGcmEncrypt(&srv->tkt.aes[0], buf, buf, (word32)total, iv, NONCE_LEN, mac, TAG_LEN,
                         aad, sizeof aad) != 0)
        return WOLFSSL_TICKET_RET_FATAL;
    *out_len = total;
    wc_ForceZero(&c, sizeof c);
    return WOLFSSL_TICKET_RET_OK;
}

static int ticket_decrypt(tether_dtls_srv_t *srv, io_t *io, const uint8_t *name, const uint8_t *iv,
                          const uint8_t *mac, uint8_t *buf, int len, int *out_len)
{
    static const uint8_t zero[WOLFSSL_TICKET_MAC_SZ - TAG_LEN];
    tether_ticket_keys_t *k = &srv->tkt;
    tether_ticket_claim_t c;
    memset(&c, 0, sizeof c);
    if (!k->ready || len < TRAILER_FIXED || memcmp(name, magic, 4) != 0 ||
        memcmp(name + 12, k->check, 4) != 0 || memcmp(mac + TAG_LEN, zero, sizeof zero) != 0)
        goto refuse; /* not ours: another cluster's, or altered */
    uint64_t e = tether_be64_get(name + 4);
    Aes *aes = e == k->epoch ? &k->aes[0] : k->epoch && e == k->epoch - 1 ? &k->aes[1] : NULL;
    if (!aes)
        goto refuse; /* its key has rotated out */
    uint8_t aad[34];
    aad_of(aad, name, iv, len);
    if (wc_AesGcmDecrypt(aes, buf, buf, (word32)len, iv, NONCE_LEN, mac, TAG_LEN, aad,
                         sizeof aad) != 0)
        goto refuse;
    const uint8_t *t = buf + len - TRAILER_FIXED;
    size_t n = t[0];
    if (t[11] != TRAILER_VERSION || n == 0 || n >= sizeof c.identity ||
        (size_t)len < TRAILER_FIXED + n)
        goto refuse;
    memcpy(c.identity, t - n, n);
    c.auth = t[1];
    c.role = (tether_role_t)t[2];
    c.key_tag = tether_be64_get(t + 3);
    int it_len = len - (int)(TRAILER_FIXED + n);
    if (memchr(c.identity, 0, n) || !dtls_ticket_claim_current(srv, &c) ||
        tether_wolf_ticket_bind(buf, (size_t)it_len, c.bind) < 0)
        goto refuse;
    remember(io, &c);
    wc_ForceZero(&c, sizeof c);
    *out_len = it_len;
    return aes == &k->aes[0] ? WOLFSSL_TICKET_RET_OK : WOLFSSL_TICKET_RET_CREATE;
refuse:
    /* wolfSSL wipes only tickets it uses: this plaintext holds a secret. */
    if (len > 0)
        wc_ForceZero(buf, (word32)len);
    wc_ForceZero(&c, sizeof c);
    srv->stats.tickets_refused++;
    return WOLFSSL_TICKET_RET_REJECT;
}

int dtls_ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                   unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                   int enc, unsigned char *buf, int len, int *out_len, void *ctx)
{
    tether_dtls_srv_t *srv = ctx;
    io_t *io = wolfSSL_GetIOReadCtx(ssl);
    if (!srv || !io || io->srv != srv)
        return WOLFSSL_TICKET_RET_FATAL;
    return enc ? ticket_encrypt(srv, ssl, io, name, iv, mac, buf, len, out_len)
               : ticket_decrypt(srv, io, name, iv, mac, buf, len, out_len);
}
