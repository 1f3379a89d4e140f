/* DTLS handshakes (internal to lib/dtls; state in dtls_int.h).
 *
 * Contract: the wolfSSL callbacks of every WOLFSSL object (datagram I/O
 * through io_t, PSK lookup, client-certificate check), the context setup
 * (suites of SPEC S2, X.509), and the state machine of a handshaking
 * session from promotion (listener.c) until it is established and
 * authenticated (identity and role from what the handshake negotiated,
 * SPEC S2) or given up with a reason (event HANDSHAKE_FAILED). A peer
 * that starts over from an established session's address replaces it
 * only once the new handshake completes (RFC 6347 §4.2.8).
 */
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>

#include "dtls/dtls_int.h"
#include "dtls/wolfrec.h"

/* The session whose handshake wolfSSL_accept() is driving: wolfSSL's
 * certificate-manager verify callback gets no per-connection context. */
static _Thread_local io_t *verifying;

/* ---- wolfSSL callbacks ---------------------------------------------------- */

/* Hands wolfSSL the current datagram once, then WANT_READ. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    io_t *io = ctx;
    if (!io->in)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = io->in_len < (size_t)sz ? io->in_len : (size_t)sz;
    memcpy(buf, io->in, n);
    io->in = NULL;
    return (int)n;
}

/* Queues one datagram for io->dst; a full queue drops (UDP semantics). */
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    io_t *io = ctx;
    tether_dtls_srv_t *srv = io->srv;
    if (!io->dst || srv->ntx == TETHER_DTLS_TXQ || sz > TETHER_DTLS_MAX_DGRAM) {
        srv->stats.tx_dropped++;
        return sz;
    }
    if (io->tx_limited) {
        if ((uint32_t)sz > io->tx_budget) {
            srv->stats.tx_unvalidated_dropped++;
            return sz;
        }
        io->tx_budget -= (uint32_t)sz;
    }
    tether_dgram_t *d = &srv->tx[srv->ntx++];
    d->to = *io->dst;
    d->sess = io->sess; /* 0 for a listener: a cookie exchange belongs to no session */
    d->iface = io->iface;
    d->len = (uint16_t)sz;
    memcpy(d->data, buf, (size_t)sz);
    return sz;
}

/* PSK lookup: only hands wolfSSL the key. It runs for every identity a
 * ClientHello offers, also in the stateless listener where no binder is
 * checked and for identities that are then not chosen, so it must not
 * record who the peer is: hs_step takes the identity from what the
 * completed handshake negotiated (tether_wolf_peer_auth). */
static unsigned int psk_server_cb(WOLFSSL *ssl, const char *identity, unsigned char *key,
                                  unsigned int max_len)
{
    io_t *io = wolfSSL_GetIOReadCtx(ssl);
    size_t klen;
    tether_role_t role;
    if (!io || !identity || strlen(identity) >= sizeof io->identity)
        return 0;
    /* wolfSSL asks once per (suite, identity) pair, in the stateless pass
     * and again in the stateful one; hello.c refuses whole hellos with more
     * identities, this bounds the first fragment of a fragmented one. */
    if (io->psk_lookups >= PSK_LOOKUPS_MAX) /* saturates: never wraps to allow more */
        return 0;
    io->psk_lookups++;
    if (tether_creds_psk(io->srv->creds, identity, key, max_len, &klen, &role) < 0)
        return 0;
    return (unsigned int)klen;
}

/* TLS 1.3 PSK lookup. wolfSSL accepts a PSK for one suite only, the one
 * named here (the legacy callback implies TLS13-AES128-GCM-SHA256), so the
 * suite comes from what the ClientHello offered (ch_psk13_suite). */
static unsigned int psk_server_tls13_cb(WOLFSSL *ssl, const char *identity, unsigned char *key,
                                        unsigned int max_len, const char **suite)
{
    io_t *io = wolfSSL_GetIOReadCtx(ssl);
    *suite = io && io->psk13_suite ? io->psk13_suite : "TLS13-AES128-GCM-SHA256";
    return psk_server_cb(ssl, identity, key, max_len);
}

/* Forgets everything one handshake learnt about its peer (SPEC S2:
 * authentication belongs to one handshake). */
void dtls_io_auth_reset(io_t *io)
{
    memset(io->identity, 0, sizeof io->identity);
    io->role = 0;
    io->auth = AUTH_NONE;
    io->x509_rejected = false;
    io->psk_lookups = 0;
    io->key_tag = 0;
    dtls_ticket_seen_free(&io->tickets);
}

/* Certificate check, called by wolfSSL for every certificate of the peer's
 * chain after its own verification (`ok` = chain, signature and dates are
 * good). The leaf (depth 0) names the peer: its subject CN must be listed
 * in the credentials' "x509" entries, which also give its role. Returns 1
 * to accept, 0 to refuse the handshake. */
static int cert_verify_cb(int ok, WOLFSSL_X509_STORE_CTX *st)
{
    io_t *io = verifying;
    tether_role_t role;
    if (!io)
        return 0;
    if (!ok)
        goto refuse;
    if (st->error_depth != 0)
        return 1; /* an intermediate that verified */
    const char *cn = st->domain;
    if (io->auth != AUTH_NONE || !cn || !*cn || strlen(cn) >= sizeof io->identity ||
        tether_creds_x509(io->srv->creds, cn, &role) < 0)
        goto refuse;
    strcpy(io->identity, cn);
    io->role = role;
    io->auth = AUTH_X509;
    return 1;
refuse:
    io->x509_rejected = true;
    return 0;
}

/* A failed handshake from the address of an established session gives the
 * address back (the hello may have been a replay: the cookie only proves
 * the sender sees that address's traffic). */
void dtls_hs_fail(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why)
{
    srv->stats.handshakes_failed++;
    if (s->hs->io.x509_rejected) {
        srv->stats.x509_rejected++;
        if (why == TETHER_DTLS_WHY_PROTOCOL)
            why = TETHER_DTLS_WHY_CERTIFICATE;
    }
    dtls_event_push(srv, TETHER_DTLS_EV_HANDSHAKE_FAILED, why, s);
    dtls_sess_close(srv, s, why);
    tether_dtls_sess_t *old =
        s->hs->displaced ? tether_dtls_sess_find(srv, s->hs->displaced) : NULL;
    if (old && tether_addr_equal(&old->peer, &s->peer)) {
        uint8_t key[TETHER_HKEY_MAX];
        size_t kl = tether_addr_key(&old->peer, key);
        if (!tether_hmap_find(&srv->by_addr, key, kl))
            tether_hmap_insert(&srv->by_addr, &old->by_addr, key, kl);
    }
}

static void hs_schedule(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_time_t now)
{
    int t = wolfSSL_dtls_get_current_timeout(s->ssl);
    s->hs->hs_deadline = now + (tether_time_t)(t > 0 ? t : 1) * 1000;
    dtls_deadline(srv, s->hs->hs_deadline);
}

/* Sets the session's identity and role from what its completed handshake
 * negotiated: the PSK identity wolfSSL used (looked up again, so a
 * credential removed meanwhile is refused), the client certificate
 * whose CertificateVerify wolfSSL checked and whose CN cert_verify_cb
 * accepted during this session's own handshake, or the claim of the
 * ticket it resumed (ticket.h: bound to the secret the peer proved,
 * checked against the credentials again). Anything else, such as an
 * ECDHE handshake without a client certificate (a server with cert_file
 * but no ca_file never asks for one), has no identity. Returns 0 (a full
 * handshake), 1 (a resumed one) or TETHER_EPROTO. */
static int hs_authenticate(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    char id[TETHER_IDENTITY_MAX];
    uint8_t bind[TETHER_WOLF_BIND_LEN];
    enum tether_wolf_auth how = tether_wolf_peer_auth(s->ssl, id, sizeof id, bind);
    wolfSSL_FreeArrays(s->ssl); /* key material nobody needs any more */
    if (how == TETHER_WOLF_AUTH_RESUMED) {
        const tether_ticket_claim_t *c = dtls_ticket_find(s->hs->io.tickets, bind);
        tether_ticket_claim_t claim;
        bool ok = c && dtls_ticket_claim_current(srv, c);
        if (ok)
            claim = *c;
        dtls_io_auth_reset(&s->hs->io);
        if (!ok)
            return TETHER_EPROTO;
        memcpy(s->hs->io.identity, claim.identity, sizeof s->hs->io.identity);
        s->hs->io.role = claim.role;
        s->hs->io.auth = claim.auth;
        s->hs->io.key_tag = claim.key_tag;
        wc_ForceZero(&claim, sizeof claim);
        return 1;
    }
    if (how == TETHER_WOLF_AUTH_PSK) {
        tether_role_t role;
        uint64_t tag;
        /* Whether the identity is still listed, and as what: its key was
         * derived for this handshake already (psk_server_cb), and a derived
         * fleet's costs an HMAC each time. */
        int rc = tether_creds_role(srv->creds, id, &role);
        dtls_io_auth_reset(&s->hs->io);
        if (rc < 0 || tether_creds_key_tag(srv->creds, id, &tag) < 0)
            return TETHER_EPROTO;
        memcpy(s->hs->io.identity, id, sizeof id);
        s->hs->io.role = role;
        s->hs->io.auth = AUTH_PSK;
        s->hs->io.key_tag = tag;
        return 0;
    }
    tether_role_t role;
    if (how == TETHER_WOLF_AUTH_CERT && s->hs->io.auth == AUTH_X509 && s->hs->io.identity[0] &&
        tether_creds_x509(srv->creds, s->hs->io.identity, &role) == 0) {
        dtls_ticket_seen_free(&s->hs->io.tickets);
        s->hs->io.role = role; /* as listed now (a reload may have come in between) */
        return 0;
    }
    dtls_io_auth_reset(&s->hs->io);
    return TETHER_EPROTO;
}

/* Drives the handshake one step with the datagram in s->hs->io. */
void dtls_hs_step(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_time_t now)
{
    uint32_t progress = tether_wolf_hs_progress(s->ssl);
    verifying = &s->hs->io;
    int ret = wolfSSL_accept(s->ssl);
    verifying = NULL;
    if (ret == WOLFSSL_SUCCESS) {
        int how = hs_authenticate(srv, s); /* 1: resumed */
        if (how < 0) {                     /* e.g. ECDHE without a client certificate */
            srv->stats.handshakes_unauthenticated++;
            dtls_hs_fail(srv, s, TETHER_DTLS_WHY_UNAUTHENTICATED);
            return;
        }
        /* What outlives the handshake (hs goes at dtls_compact). */
        s->role = (uint8_t)s->hs->io.role;
        s->auth = s->hs->io.auth;
        s->key_tag = s->hs->io.key_tag;
        if (dtls_ident_add(srv, s, s->hs->io.identity) < 0) {
            srv->stats.handshakes_unauthenticated++;
            dtls_hs_fail(srv, s, TETHER_DTLS_WHY_UNAUTHENTICATED);
            return;
        }
        if (s->auth == AUTH_X509 && !how)
            srv->stats.handshakes_x509++;
        tether_list_del(&srv->handshaking, &s->ln);
        dtls_source_del(srv, s);
        srv->stats.handshakes_inflight--;
        s->state = S_ESTABLISHED;
        s->last_rx = now;
        dtls_deadline(srv, now + srv->conf.idle_timeout_ms);
        tether_list_push(&srv->established, &s->ln);
        srv->stats.sessions_active++;
        if (how)
            srv->stats.handshakes_resumed++;
        else
            srv->stats.handshakes_full++;
        /* The peer started over from that address: its old session is
         * abandoned (RFC 6347 §4.2.8). */
        tether_dtls_sess_t *old =
            s->hs->displaced ? tether_dtls_sess_find(srv, s->hs->displaced) : NULL;
        if (old)
            dtls_sess_close(srv, old, TETHER_DTLS_WHY_REPLACED);
        dtls_settle_push(srv, s->id, now + srv->conf.handshake_timeout_ms);
        dtls_deadline(srv, now + srv->conf.handshake_timeout_ms);
        /* Our CID is only useful when negotiated; keep the map honest. */
        if (s->cid_len && wolfSSL_dtls_cid_is_enabled(s->ssl) != WOLFSSL_SUCCESS) {
            tether_hmap_remove(&srv->by_cid, &s->by_cid);
            s->cid_len = 0;
        }
        return;
    }
    int err = wolfSSL_get_error(s->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        /* Only a flight that moved the handshake on shows a live peer: a
         * source that resends an old flight, or anything else, to its
         * stalled handshakes must not keep them (the security review: ~1,250
         * sources held the table that way). The list stays ordered by
         * progress, so its head is the most stalled (make_room). */
        if (tether_wolf_hs_progress(s->ssl) != progress) {
            s->last_rx = now;
            tether_list_del(&srv->handshaking, &s->ln);
            tether_list_push(&srv->handshaking, &s->ln);
        }
        hs_schedule(srv, s, now);
        return;
    }
    dtls_hs_fail(srv, s, TETHER_DTLS_WHY_PROTOCOL);
}

/* Suites of SPEC S2 plus the DTLS 1.3 ones. */
static const char *const cipher_list = "TLS13-AES128-GCM-SHA256:TLS13-AES128-CCM-8-SHA256:"
                                       "PSK-AES128-CCM-8:PSK-AES128-GCM-SHA256:"
                                       "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256";

static bool set(const char *path)
{
    return path && *path;
}

/* Loads our certificate/key and the client CA. A peer certificate is then
 * requested and verified on certificate suites; PSK suites go on without
 * one (WOLFSSL_VERIFY_FAIL_EXCEPT_PSK), and a certificate suite completed
 * without a client certificate is refused in hs_step (no identity). */
static int setup_x509(WOLFSSL_CTX *ctx, const tether_dtls_conf_t *conf)
{
    if (set(conf->cert_file) != set(conf->key_file))
        return TETHER_ECONFIG;
    if (set(conf->cert_file) &&
        (wolfSSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != WOLFSSL_SUCCESS ||
         wolfSSL_CTX_use_PrivateKey_file(ctx, conf->key_file, WOLFSSL_FILETYPE_PEM) !=
             WOLFSSL_SUCCESS ||
         wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS))
        return TETHER_ECONFIG;
    if (!set(conf->ca_file)) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
        return 0;
    }
    if (wolfSSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL) != WOLFSSL_SUCCESS)
        return TETHER_ECONFIG;
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_EXCEPT_PSK, NULL);
    /* The certificate manager's callback runs for every certificate, good or
     * bad; the SSL-level one only on errors unless wolfSSL is built with
     * WOLFSSL_ALWAYS_VERIFY_CB. */
    wolfSSL_CertManagerSetVerify(wolfSSL_CTX_GetCertManager(ctx), cert_verify_cb);
    return 0;
}

/* Handshake timers due at `now`: the overall handshake timeout, the
 * flight timeout (a peer that went quiet), wolfSSL's retransmission timer
 * (RFC 6347 §4.2.4.1). Lowers next_at for those still running. */
void dtls_hs_tick(tether_dtls_srv_t *srv, tether_time_t now)
{
    for (tether_dtls_sess_t *s = sess_first(&srv->handshaking), *next; s; s = next) {
        next = sess_next(s);
        if (now >= s->hs->hs_started + srv->conf.handshake_timeout_ms) {
            dtls_hs_fail(srv, s, TETHER_DTLS_WHY_TIMEOUT);
            continue;
        } else if (now >= s->last_rx + srv->conf.handshake_flight_timeout_ms) {
            srv->stats.handshakes_stalled++;
            dtls_hs_fail(srv, s, TETHER_DTLS_WHY_STALLED);
            continue;
        } else if (now >= s->hs->hs_deadline) {
            if (wolfSSL_dtls_got_timeout(s->ssl) != WOLFSSL_SUCCESS) {
                dtls_hs_fail(srv, s, TETHER_DTLS_WHY_TIMEOUT);
                continue;
            }
            hs_schedule(srv, s, now);
        }
        dtls_deadline(srv, s->hs->hs_started + srv->conf.handshake_timeout_ms);
        dtls_deadline(srv, s->last_rx + srv->conf.handshake_flight_timeout_ms);
        dtls_deadline(srv, s->hs->hs_deadline);
    }
}

/* The context's callbacks, versions and suites, then X.509 (tether_dtls_create). */
int dtls_ctx_setup(WOLFSSL_CTX *ctx, const tether_dtls_conf_t *conf)
{
    /* The PSK callback first: wolfSSL drops PSK suites from a cipher list
     * set while the context has no PSK. */
    wolfSSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    wolfSSL_CTX_set_psk_server_tls13_callback(ctx, psk_server_tls13_cb);
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    /* A flight's messages share datagrams up to the MTU (RFC 6347 §4.1.1,
     * RFC 9147 §4.3): ServerHello..ServerHelloDone went out one message
     * per datagram, each costing a send and a receive in both kernels.
     * The bytes are the same, so the amplification bound is unchanged. */
    wolfSSL_CTX_set_group_messages(ctx);
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_DTLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(ctx, cipher_list) != WOLFSSL_SUCCESS)
        return TETHER_ECRYPTO;
    return setup_x509(ctx, conf);
}
