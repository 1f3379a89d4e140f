/* DTLS termination over wolfSSL with our own I/O callbacks (sans-I/O):
 * the server object (tether/dtls.h).
 *
 * Contract: create/destroy (one goto ladder), the tick that runs every
 * timer of the layer (compact-layer moves, cookie-secret rotation,
 * handshake timeouts via handshake.c, idle sessions) and computes the
 * exact next deadline, credential reloads, events and the accessors.
 * The datagram path is in session.c (input, send), listener.c (cookie
 * exchange and admission), handshake.c (wolfSSL callbacks, handshake) and
 * rebind.c (CID moves); dtls_int.h holds the state they share.
 *
 * An established DTLS 1.2 session is handed to the compact record layer
 * (record.h) and its WOLFSSL object is freed: as soon as the peer's first
 * application record shows it has our final flight, or after
 * handshake_timeout_ms if it sends nothing (until then a lost final flight
 * may still need wolfSSL to answer a retransmitted Finished). DTLS 1.3
 * sessions stay on wolfSSL.
 */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>

#include "dtls/dtls_int.h"
#include "util/container.h"

/* Records an event for the layers above (which hold session ids, never
 * pointers). If the list cannot grow, the oldest events are kept. */
void dtls_event_push(tether_dtls_srv_t *srv, uint8_t kind, uint8_t why, const tether_dtls_sess_t *s)
{
    if (srv->nev == srv->ev_cap) {
        size_t cap = srv->ev_cap ? srv->ev_cap * 2 : 64;
        tether_dtls_event_t *n = realloc(srv->ev, cap * sizeof *n);
        if (!n) {
            srv->stats.events_dropped++;
            return;
        }
        srv->ev = n;
        srv->ev_cap = cap;
    }
    srv->ev[srv->nev++] =
        (tether_dtls_event_t){.kind = kind, .why = why, .id = s->id, .peer = s->peer};
}

void tether_dtls_tick(tether_dtls_srv_t *srv, tether_time_t now)
{
    dtls_release_reading(srv);
    dtls_reap(srv);
    srv->now = now;
    while (srv->settle_n && srv->settle[srv->settle_head].due <= now) {
        uint64_t id = srv->settle[srv->settle_head].id;
        srv->settle_head = (srv->settle_head + 1) % srv->settle_cap;
        srv->settle_n--;
        tether_dtls_sess_t *s = tether_dtls_sess_find(srv, id);
        if (s)
            dtls_compact(srv, s);
        if (s && s->ssl && !s->wolf_only) /* wolfSSL still held input: again later */
            dtls_settle_push(srv, id, now + 1000);
    }
    uint64_t epoch = dtls_epoch_of(srv, srv->wall_ms ? srv->wall_ms : now);
    if (epoch > srv->cookie_epoch)
        dtls_rotate(srv, epoch);
    if (!srv->lst[0].ssl)
        dtls_listener_reset(srv, &srv->lst[0]);
    /* The exact next deadline is recomputed here; calls in between only
     * lower it (dtls_deadline()). */
    srv->next_at = UINT64_MAX;
    dtls_hs_tick(srv, now);
    tether_dtls_sess_t *oldest;
    while ((oldest = sess_first(&srv->established)) &&
           oldest->last_rx + srv->conf.idle_timeout_ms <= now)
        dtls_sess_close(srv, oldest, TETHER_DTLS_WHY_IDLE);
    if ((oldest = sess_first(&srv->established)))
        dtls_deadline(srv, oldest->last_rx + srv->conf.idle_timeout_ms);
    if (srv->settle_n)
        dtls_deadline(srv, srv->settle[srv->settle_head].due);
    if (srv->ceil_failed)
        dtls_ceil_retry(srv);
    /* The next cookie epoch, on the clock the epochs follow. */
    tether_time_t rot = srv->conf.cookie_rotate_ms ? srv->conf.cookie_rotate_ms : 1;
    tether_time_t clock = srv->wall_ms ? srv->wall_ms : now;
    tether_time_t next_epoch = (srv->cookie_epoch + 1) * rot;
    dtls_deadline(srv, clock >= next_epoch ? now : now + (next_epoch - clock));
    tether_time_t next_key = dtls_ticket_rotate(srv, clock);
    dtls_deadline(srv, clock >= next_key ? now : now + (next_key - clock));
}

tether_time_t tether_dtls_next_deadline(const tether_dtls_srv_t *srv)
{
    return srv->next_at;
}

void tether_dtls_conf_defaults(tether_dtls_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->cid_len = 8;
    c->max_sessions = 1000000;
    /* A handshake in flight holds a WOLFSSL with its handshake arrays,
     * hashes and flight buffers: ~13 KB measured (2,048 abandoned
     * cookie-valid handshakes grew tetherd by 27 MB). 10,000 let a flood
     * from many addresses take ~130 MB; 1,024 bounds it to ~13 MB, and a
     * slot is held only for one handshake's round trips (stalled ones are
     * evicted), so it still completes thousands of handshakes a second. */
    c->max_handshakes = 1024;
    c->handshake_timeout_ms = 30000;
    c->max_handshakes_per_source = 8;
    /* A load generator or gateway client may hold hundreds; one credential
     * must not hold the million of max_sessions. */
    c->max_sessions_per_identity = 1024;
    c->handshake_flight_timeout_ms = 5000;
    c->idle_timeout_ms = 86400000;
    c->cookie_rotate_ms = 300000;
    c->ticket_rotation_ms = 86400000;
    c->handshake_rate_per_source = 200;
    c->handshake_burst_per_source = 400;
    c->hello_rate = 20000;
}

int tether_dtls_create(const tether_dtls_conf_t *conf, const tether_creds_t *creds,
                       tether_time_t now, tether_dtls_srv_t **out)
{
    static bool wolf_init;
    int rc = TETHER_ECRYPTO;
    if (conf->cid_len < 2 || conf->cid_len > TETHER_CID_MAX ||
        conf->cluster_key_len > sizeof((tether_dtls_srv_t *)0)->cluster_key)
        return TETHER_EINVAL;
    if (!wolf_init) {
        wolfSSL_Init();
#ifdef WOLFSSL_DRBG_SHA512
        /* Every WOLFSSL seeds and health-tests its own DRBG (wolfSSL_new),
         * one per handshake: the SHA-256 Hash_DRBG (SP 800-90A §10.1.1,
         * 256-bit security strength, like the SHA-512 one) costs 7 us
         * instead of 11 here and half as much per block generated. */
        wc_Sha512Drbg_Disable();
#endif
        wolf_init = true;
    }
    tether_dtls_srv_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return TETHER_ENOMEM;
    srv->conf = *conf;
    srv->conf.ca_file = srv->conf.cert_file = srv->conf.key_file = NULL; /* read once, below */
    if (conf->cluster_key_len)
        memcpy(srv->cluster_key, conf->cluster_key, conf->cluster_key_len);
    if (conf->checkpoint &&
        (rc = tether_ckpt_key(conf->cluster_key, conf->cluster_key_len, &srv->ckpt_key)) < 0) {
        free(srv);
        return rc == TETHER_EINVAL ? TETHER_ECONFIG : rc;
    }
    srv->conf.cluster_key = srv->cluster_key;
    srv->creds = creds;
    srv->next_at = now; /* a first tick sets the cookie clock and the exact deadline */
    if (wc_InitRng(&srv->rng) != 0)
        goto fail_rng;
    if (wc_AesInit(&srv->aes, NULL, INVALID_DEVID) != 0)
        goto fail_aes;
    uint64_t seed;
    wc_RNG_GenerateBlock(&srv->rng, (byte *)&seed, sizeof seed);
    uint8_t rl_key[TETHER_RL_KEY];
    wc_RNG_GenerateBlock(&srv->rng, rl_key, sizeof rl_key);
    tether_rl_init(&srv->rate, conf->handshake_rate_per_source, conf->handshake_burst_per_source,
                   rl_key, now);
    tether_bucket_fill(&srv->hellos, conf->hello_rate / 10, now);
    if ((rc = tether_hmap_init(&srv->by_addr, 1024, seed)) < 0)
        goto fail_addr;
    if ((rc = tether_hmap_init(&srv->by_cid, 1024, seed ^ 0x9e3779b97f4a7c15ull)) < 0)
        goto fail_cid;
    if ((rc = tether_hmap_init(&srv->by_id, 1024, seed ^ 0x5851f42d4c957f2dull)) < 0)
        goto fail_id;
    if ((rc = tether_hmap_init(&srv->sources, 64, seed ^ 0x2545f4914f6cdd1dull)) < 0)
        goto fail_sources;
    if ((rc = tether_hmap_init(&srv->prefixes, 64, seed ^ 0x94d049bb133111ebull)) < 0)
        goto fail_prefixes;
    if ((rc = tether_hmap_init(&srv->idents, 64, seed ^ 0xd6e8feb86659fd93ull)) < 0)
        goto fail_idents;
    /* Room for twice the sessions: ours and those seen in the store. */
    if ((rc = tether_ckseen_init(&srv->ckseen, 2 * (size_t)(conf->max_sessions + 1),
                                 seed ^ 0xbf58476d1ce4e5b9ull)) < 0)
        goto fail_ckseen;
    rc = TETHER_ECRYPTO;
    srv->ctx = wolfSSL_CTX_new(wolfDTLS_server_method());
    if (!srv->ctx)
        goto fail_ctx;
    if ((rc = dtls_ctx_setup(srv->ctx, conf)) < 0)
        goto fail_setup;
    if ((rc = dtls_ticket_setup(srv, conf->ca_file, now)) < 0)
        goto fail_setup;
    rc = TETHER_ECRYPTO;
    srv->cookie_epoch = now / (conf->cookie_rotate_ms ? conf->cookie_rotate_ms : 1);
    if (dtls_cookie_secret(srv, srv->cookie_epoch, srv->lst[0].secret) < 0 ||
        dtls_listener_reset(srv, &srv->lst[0]) < 0)
        goto fail_listener;
    *out = srv;
    return 0;

fail_listener:
    if (srv->lst[0].ssl)
        wolfSSL_free(srv->lst[0].ssl);
    dtls_ticket_wipe(srv);
fail_setup:
    wolfSSL_CTX_free(srv->ctx);
fail_ctx:
    tether_ckseen_free(&srv->ckseen);
fail_ckseen:
    tether_hmap_free(&srv->idents);
fail_idents:
    tether_hmap_free(&srv->prefixes);
fail_prefixes:
    tether_hmap_free(&srv->sources);
fail_sources:
    tether_hmap_free(&srv->by_id);
fail_id:
    tether_hmap_free(&srv->by_cid);
fail_cid:
    tether_hmap_free(&srv->by_addr);
fail_addr:
    wc_AesFree(&srv->aes);
fail_aes:
    wc_FreeRng(&srv->rng);
fail_rng:
    free(srv);
    return rc;
}

void tether_dtls_destroy(tether_dtls_srv_t *srv)
{
    if (!srv)
        return;
    while (srv->handshaking.head)
        dtls_sess_close(srv, sess_first(&srv->handshaking), TETHER_DTLS_WHY_LOCAL);
    while (srv->established.head)
        dtls_sess_close(srv, sess_first(&srv->established), TETHER_DTLS_WHY_LOCAL);
    dtls_reap(srv);
    for (int i = 0; i < 2; i++) {
        if (srv->lst[i].ssl)
            wolfSSL_free(srv->lst[i].ssl);
        dtls_io_auth_reset(&srv->lst[i].io);
    }
    wolfSSL_CTX_free(srv->ctx);
    dtls_ticket_wipe(srv);
    tether_ckseen_free(&srv->ckseen);
    tether_hmap_free(&srv->idents);   /* empty: every established session was closed */
    tether_hmap_free(&srv->prefixes); /* empty, like sources */
    tether_hmap_free(&srv->sources);  /* empty: every handshake was closed above */
    tether_hmap_free(&srv->by_id);
    tether_hmap_free(&srv->by_cid);
    tether_hmap_free(&srv->by_addr);
    free(srv->ev);
    free(srv->settle);
    wc_AesFree(&srv->aes);
    volatile uint8_t *ks = (volatile uint8_t *)&srv->aes; /* the last key schedule */
    for (size_t i = 0; i < sizeof srv->aes; i++)
        ks[i] = 0;
    wc_FreeRng(&srv->rng);
    memset(srv->cluster_key, 0, sizeof srv->cluster_key);
    tether_ckpt_key_wipe(&srv->ckpt_key);
    free(srv);
}

void tether_dtls_set_wall_clock(tether_dtls_srv_t *srv, tether_time_t wall_ms)
{
    bool first = !srv->wall_ms;
    srv->wall_ms = wall_ms;
    uint64_t epoch = dtls_epoch_of(srv, wall_ms);
    if (first && epoch != srv->cookie_epoch) {
        /* Start over on the cluster's epochs: the previous one, then this. */
        srv->cookie_epoch = epoch - 1;
        if (dtls_cookie_secret(srv, epoch - 1, srv->lst[0].secret) == 0)
            dtls_listener_reset(srv, &srv->lst[0]);
        dtls_rotate(srv, epoch);
    }
    if (first)
        dtls_ticket_rotate(srv, wall_ms); /* the cluster's ticket epoch */
}

/* SPEC S7 (SIGHUP reloads credentials): an established session whose
 * identity is gone from the new set, is listed with another role, or (PSK)
 * whose key changed ends (security review: a removed device, or one whose
 * compromised key was rotated, used to keep serving for days). One pass
 * over the sessions, a hash lookup and a SHA-256 of the key material each
 * (no key derivation). */
void tether_dtls_set_creds(tether_dtls_srv_t *srv, const tether_creds_t *creds)
{
    srv->creds = creds;
    for (tether_dtls_sess_t *s = sess_first(&srv->established), *next; s; s = next) {
        next = sess_next(s);
        tether_role_t role;
        const char *name = dtls_sess_name(s);
        int rc = s->auth == AUTH_X509 ? tether_creds_x509(creds, name, &role)
                                      : tether_creds_role(creds, name, &role);
        uint64_t tag = 0;
        if (rc == 0 && s->auth == AUTH_PSK && tether_creds_key_tag(creds, name, &tag) < 0)
            rc = TETHER_ENOTFOUND;
        if (rc < 0 || role != s->role || (s->auth == AUTH_PSK && tag != s->key_tag)) {
            srv->stats.sessions_revoked++;
            dtls_sess_close(srv, s, TETHER_DTLS_WHY_REVOKED);
        }
    }
}

uint64_t tether_dtls_sess_id(const tether_dtls_sess_t *s)
{
    return s->id;
}

tether_dtls_sess_t *tether_dtls_sess_find(const tether_dtls_srv_t *srv, uint64_t id)
{
    tether_hnode_t *n = tether_hmap_find(&srv->by_id, &id, sizeof id);
    if (!n)
        return NULL;
    tether_dtls_sess_t *s = container_of(n, tether_dtls_sess_t, by_id);
    return s->state == S_ESTABLISHED ? s : NULL;
}

size_t tether_dtls_events(const tether_dtls_srv_t *srv, const tether_dtls_event_t **evs)
{
    *evs = srv->ev;
    return srv->nev;
}

void tether_dtls_events_clear(tether_dtls_srv_t *srv)
{
    srv->nev = 0;
}

const char *tether_dtls_why_str(uint8_t why)
{
    static const char *const names[] = {
        [TETHER_DTLS_WHY_PROTOCOL] = "protocol",
        [TETHER_DTLS_WHY_CERTIFICATE] = "certificate",
        [TETHER_DTLS_WHY_UNAUTHENTICATED] = "unauthenticated",
        [TETHER_DTLS_WHY_TIMEOUT] = "timeout",
        [TETHER_DTLS_WHY_STALLED] = "stalled",
        [TETHER_DTLS_WHY_EVICTED] = "evicted",
        [TETHER_DTLS_WHY_IDLE] = "idle",
        [TETHER_DTLS_WHY_PEER] = "peer",
        [TETHER_DTLS_WHY_REPLACED] = "replaced",
        [TETHER_DTLS_WHY_LOCAL] = "local",
        [TETHER_DTLS_WHY_REVOKED] = "revoked",
        [TETHER_DTLS_WHY_HANDED_OVER] = "handed over",
    };
    return why < sizeof names / sizeof *names && names[why] ? names[why] : "unknown";
}

size_t tether_dtls_tx_count(const tether_dtls_srv_t *srv)
{
    return srv->ntx;
}
const tether_dgram_t *tether_dtls_tx_get(const tether_dtls_srv_t *srv, size_t i)
{
    return i < srv->ntx ? &srv->tx[i] : NULL;
}
void tether_dtls_tx_clear(tether_dtls_srv_t *srv)
{
    srv->ntx = 0;
}
const tether_dtls_stats_t *tether_dtls_stats(const tether_dtls_srv_t *srv)
{
    return &srv->stats;
}
const char *tether_dtls_sess_identity(const tether_dtls_sess_t *s)
{
    return dtls_sess_name(s);
}
tether_role_t tether_dtls_sess_role(const tether_dtls_sess_t *s)
{
    return (tether_role_t)s->role;
}
const tether_addr_t *tether_dtls_sess_peer(const tether_dtls_sess_t *s)
{
    return &s->peer;
}
size_t tether_dtls_sess_cid(const tether_dtls_sess_t *s, uint8_t *out)
{
    memcpy(out, s->cid, s->cid_len);
    return s->cid_len;
}

int tether_dtls_random(tether_dtls_srv_t *srv, void *buf, size_t n)
{
    return wc_RNG_GenerateBlock(&srv->rng, buf, (word32)n) == 0 ? 0 : TETHER_ECRYPTO;
}
