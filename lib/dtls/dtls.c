/* DTLS termination over wolfSSL with our own I/O callbacks (sans-I/O).
 *
 * Handshakes start on a stateless listener object: nothing per peer is
 * allocated until a ClientHello returns a valid cookie. Two listeners are
 * kept, one per cookie secret (current and previous), so a rotation never
 * rejects a client that is mid-exchange. Records are demultiplexed by CID
 * (hash lookup) when they carry one, by address otherwise.
 *
 * An established DTLS 1.2 session is then handed to the compact record
 * layer (record.h) and its WOLFSSL object is freed: as soon as the peer's
 * first application record shows it has our final flight, or after
 * handshake_timeout_ms if it sends nothing (until then a lost final flight
 * may still need wolfSSL to answer a retransmitted Finished). DTLS 1.3
 * sessions stay on wolfSSL.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>

#include "dtls/checkpoint.h"
#include "dtls/hello.h"
#include "dtls/ratelimit.h"
#include "dtls/record.h"
#include "dtls/txceil.h"
#include "dtls/wolfrec.h"
#include "tether/dtls.h"
#include "util/hmap.h"

#define CT_HANDSHAKE 22
#define CT_TLS12_CID 25
#define DTLS12_HDR 13
#define COOKIE_SECRET_LEN 32
/* Identities x our two TLS 1.3 suites x wolfSSL's two passes over a hello. */
#define PSK_LOOKUPS_MAX (TETHER_DTLS_MAX_PSK_IDENTITIES * 2 * 2)

#include "util/container.h"

enum sess_state { S_HANDSHAKE, S_ESTABLISHED, S_DEAD };
enum auth_kind { AUTH_NONE, AUTH_PSK, AUTH_X509 };

/* Per-WOLFSSL I/O context: the datagram being fed and where output goes. */
typedef struct {
    tether_dtls_srv_t *srv;
    const uint8_t *in;
    size_t in_len;
    const tether_addr_t *dst;
    uint8_t iface; /* the local interface dst talks to */
    /* Stateless listener: what dst, not yet validated, may still be sent
     * in answer to the one hello being read (SPEC S10: 3x its bytes). */
    bool tx_limited;
    uint32_t tx_budget;
    char identity[TETHER_IDENTITY_MAX];
    tether_role_t role;
    const char *psk13_suite; /* TLS 1.3 suite for a PSK, from the ClientHello */
    uint8_t auth;       /* enum auth_kind: how identity was established */
    uint8_t psk_lookups; /* PSK callback calls for the hello being processed */
    bool x509_rejected; /* a certificate was presented and refused */
} io_t;

/* The session whose handshake wolfSSL_accept() is driving: wolfSSL's
 * certificate-manager verify callback gets no per-connection context. */
static _Thread_local io_t *verifying;

struct tether_dtls_sess {
    io_t io;
    WOLFSSL *ssl; /* NULL once the session runs on `rec` */
    tether_rec_t rec;
    tether_addr_t peer;
    tether_hnode_t by_addr;
    tether_hnode_t by_cid;
    tether_hnode_t by_id;
    uint64_t id; /* stable handle for layers above; never reused */
    uint64_t displaced; /* handshake: the established session whose address it took */
    uint8_t cid[TETHER_CID_MAX];
    uint8_t cid_len;
    uint8_t state;
    bool app_seen;   /* the peer sent application data: it has our final flight */
    bool wolf_only;  /* cannot run on the compact record layer (DTLS 1.3, suite) */
    bool unvalidated; /* moved to an address that has not shown it is the peer's */
    uint32_t credit;  /* unvalidated: bytes we may still send there (3x received) */
    uint64_t max_seq; /* newest authenticated (epoch << 48 | seq) */
    tether_txceil_t *ceil; /* compact, conf.checkpoint: the transmit ceiling (txceil.h) */
    tether_time_t last_rx; /* handshake: last datagram from the peer */
    tether_time_t hs_started;
    struct tether_dtls_sess *src_next; /* handshake: its source's next, newer one */
    tether_time_t hs_deadline;
    struct tether_dtls_sess *prev, *next; /* handshaking list or idle LRU */
};

typedef struct {
    WOLFSSL *ssl;
    io_t io;
    uint8_t cid[TETHER_CID_MAX];
    uint8_t secret[COOKIE_SECRET_LEN];
} listener_t;

typedef struct {
    tether_dtls_sess_t *head, *tail;
} sess_list_t;

/* A source with handshakes in flight (SPEC S2: capped per source as well as
 * in total). Exists only while it has some, so it costs nothing per idle
 * session and at most one entry per handshake. */
typedef struct {
    tether_hnode_t node; /* in srv->sources, keyed by source_key() */
    uint32_t n;
    tether_dtls_sess_t *oldest, *newest; /* via src_next */
} source_t;

/* Sessions that completed a handshake and are still on wolfSSL, oldest
 * first, by id (they may have closed since). */
typedef struct {
    uint64_t id;
    tether_time_t due;
} settle_t;

struct tether_dtls_srv {
    tether_dtls_conf_t conf;
    uint8_t cluster_key[64];
    WOLFSSL_CTX *ctx;
    WC_RNG rng;
    const tether_creds_t *creds;
    listener_t lst[2]; /* [0] current secret, [1] previous */
    uint64_t cookie_epoch;
    tether_time_t wall_ms; /* wall clock from tether_dtls_set_wall_clock, 0 = none yet */
    tether_hmap_t by_addr, by_cid, by_id;
    tether_hmap_t sources; /* of source_t */
    uint64_t next_id;
    tether_dtls_event_t *ev; /* events since the last clear */
    size_t nev, ev_cap;
    tether_time_t next_at; /* lower bound of the next tick's work; exact after a tick */
    sess_list_t handshaking, established;
    tether_dtls_sess_t *dead;
    tether_dtls_sess_t *reading; /* session of the datagram being read */
    tether_addr_t reading_from;  /* its source and interface, and whether it came by CID */
    uint8_t reading_iface;
    bool reading_by_cid;
    settle_t *settle; /* ring buffer of cap entries */
    size_t settle_head, settle_n, settle_cap;
    Aes aes;               /* scratch key schedule for the compact record layer */
    size_t rd_off, rd_len; /* compact layer: unread part of rdbuf */
    uint8_t rdbuf[TETHER_DTLS_MAX_DGRAM];
    tether_dtls_stats_t stats;
    tether_ckpt_key_t ckpt_key; /* conf.checkpoint: wraps checkpoints (checkpoint.h) */
    tether_time_t now;          /* of the current input or tick */
    uint32_t ceil_failed;       /* sessions whose ceiling raise failed, waiting to retry */
    tether_rl_t rate; /* new handshakes per source address */
    size_t ntx;
    tether_dgram_t tx[TETHER_DTLS_TXQ];
    uint8_t rxbuf[TETHER_DTLS_MAX_DGRAM];
};

/* Transmit ceiling and checkpoints (SPEC S5), at the end of this file. */
static void ceil_start(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t next);
static void ceil_kick(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);
static void ceil_retry(tether_dtls_srv_t *srv);
static void ceil_free(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);

static void list_add(sess_list_t *l, tether_dtls_sess_t *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
}

static void list_del(sess_list_t *l, tether_dtls_sess_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
}

/* Who a handshake is charged to: the IPv4 address, or the IPv6 /64 (one
 * host usually owns a whole /64). */
static size_t source_key(const tether_addr_t *a, uint8_t key[9])
{
    if (a->ss.ss_family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, 8);
        return 9;
    }
    key[0] = 4;
    memcpy(key + 1, &((const struct sockaddr_in *)&a->ss)->sin_addr, 4);
    return 5;
}

static source_t *source_find(tether_dtls_srv_t *srv, const tether_addr_t *a)
{
    uint8_t key[9];
    tether_hnode_t *h = tether_hmap_find(&srv->sources, key, source_key(a, key));
    return h ? container_of(h, source_t, node) : NULL;
}

/* Charges a new handshaking session to its source (the session's peer). */
static int source_add(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    source_t *src = source_find(srv, &s->peer);
    if (!src) {
        uint8_t key[9];
        if (!(src = calloc(1, sizeof *src)))
            return TETHER_ENOMEM;
        tether_hmap_insert(&srv->sources, &src->node, key, source_key(&s->peer, key));
    }
    s->src_next = NULL;
    if (src->newest)
        src->newest->src_next = s;
    else
        src->oldest = s;
    src->newest = s;
    src->n++;
    return 0;
}

/* Takes a handshaking session off its source's list; frees the source
 * with its last handshake. */
static void source_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    source_t *src = source_find(srv, &s->peer);
    if (!src)
        return;
    tether_dtls_sess_t *prev = NULL;
    for (tether_dtls_sess_t *p = src->oldest; p && p != s; p = p->src_next)
        prev = p;
    if (prev ? prev->src_next != s : src->oldest != s)
        return; /* not on the list (could not be charged) */
    if (prev)
        prev->src_next = s->src_next;
    else
        src->oldest = s->src_next;
    if (src->newest == s)
        src->newest = prev;
    s->src_next = NULL;
    if (--src->n == 0) {
        tether_hmap_remove(&srv->sources, &src->node);
        free(src);
    }
}

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
    if (++io->psk_lookups > PSK_LOOKUPS_MAX)
        return 0;
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
static void io_auth_reset(io_t *io)
{
    memset(io->identity, 0, sizeof io->identity);
    io->role = 0;
    io->auth = AUTH_NONE;
    io->x509_rejected = false;
    io->psk_lookups = 0;
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

/* ---- listeners and cookie secrets ------------------------------------------ */

/* Secret for a cookie epoch: derived from the cluster key so every node
 * accepts every other node's cookies, or random when there is no key. */
static int cookie_secret(tether_dtls_srv_t *srv, uint64_t epoch, uint8_t out[COOKIE_SECRET_LEN])
{
    if (!srv->conf.cluster_key_len)
        return wc_RNG_GenerateBlock(&srv->rng, out, COOKIE_SECRET_LEN) ? TETHER_ECRYPTO : 0;
    uint8_t msg[21] = "tether-cookie";
    for (int i = 0; i < 8; i++)
        msg[13 + i] = (uint8_t)(epoch >> (56 - 8 * i));
    Hmac h;
    int rc = TETHER_ECRYPTO;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) == 0) {
        if (wc_HmacSetKey(&h, WC_SHA256, srv->cluster_key, (word32)srv->conf.cluster_key_len) ==
                0 &&
            wc_HmacUpdate(&h, msg, sizeof msg) == 0 && wc_HmacFinal(&h, out) == 0)
            rc = 0;
        wc_HmacFree(&h);
    }
    return rc;
}

/* A fresh CID: node id, then random bytes, unique among live sessions and
 * the other listener. */
static void new_cid(tether_dtls_srv_t *srv, uint8_t *cid)
{
    size_t n = srv->conf.cid_len;
    do {
        cid[0] = srv->conf.node_id;
        wc_RNG_GenerateBlock(&srv->rng, cid + 1, (word32)(n - 1));
    } while (tether_hmap_find(&srv->by_cid, cid, n) ||
             (srv->lst[0].cid != cid && srv->lst[0].ssl && memcmp(srv->lst[0].cid, cid, n) == 0) ||
             (srv->lst[1].cid != cid && srv->lst[1].ssl && memcmp(srv->lst[1].cid, cid, n) == 0));
}

static WOLFSSL *new_ssl(tether_dtls_srv_t *srv, io_t *io, uint8_t *cid, const uint8_t *secret)
{
    WOLFSSL *ssl = wolfSSL_new(srv->ctx);
    if (!ssl)
        return NULL;
    wolfSSL_SetIOReadCtx(ssl, io);
    wolfSSL_SetIOWriteCtx(ssl, io);
    wolfSSL_dtls_set_using_nonblock(ssl, 1);
    /* hs_step reads the negotiated PSK identity from the handshake arrays,
     * then frees them (wolfSSL_FreeArrays). */
    wolfSSL_KeepArrays(ssl);
    new_cid(srv, cid);
    if (wolfSSL_dtls_cid_use(ssl) != WOLFSSL_SUCCESS ||
        wolfSSL_dtls_cid_set(ssl, cid, srv->conf.cid_len) != WOLFSSL_SUCCESS ||
        wolfSSL_DTLS_SetCookieSecret(ssl, secret, COOKIE_SECRET_LEN) != 0 ||
        wolfSSL_send_hrr_cookie(ssl, secret, COOKIE_SECRET_LEN) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static int listener_reset(tether_dtls_srv_t *srv, listener_t *l)
{
    if (l->ssl)
        wolfSSL_free(l->ssl);
    memset(&l->io, 0, sizeof l->io);
    l->io.srv = srv;
    l->ssl = new_ssl(srv, &l->io, l->cid, l->secret);
    return l->ssl ? 0 : TETHER_ECRYPTO;
}

static uint64_t epoch_of(const tether_dtls_srv_t *srv, tether_time_t t)
{
    return t / (srv->conf.cookie_rotate_ms ? srv->conf.cookie_rotate_ms : 1);
}

/* Moves current to previous and starts a current listener on the secret of
 * cookie epoch `epoch`. */
static int rotate(tether_dtls_srv_t *srv, uint64_t epoch)
{
    listener_t *cur = &srv->lst[0], *prev = &srv->lst[1];
    if (prev->ssl)
        wolfSSL_free(prev->ssl);
    *prev = *cur;
    /* The moved WOLFSSL still points at cur->io: repoint it. */
    wolfSSL_SetIOReadCtx(prev->ssl, &prev->io);
    wolfSSL_SetIOWriteCtx(prev->ssl, &prev->io);
    cur->ssl = NULL;
    srv->cookie_epoch = epoch;
    if (cookie_secret(srv, srv->cookie_epoch, cur->secret) < 0)
        return TETHER_ECRYPTO;
    return listener_reset(srv, cur);
}

/* ---- sessions -------------------------------------------------------------- */

/* Records an event for the layers above (which hold session ids, never
 * pointers). If the list cannot grow, the oldest events are kept. */
static void event_push(tether_dtls_srv_t *srv, uint8_t kind, uint8_t why,
                       const tether_dtls_sess_t *s)
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
    srv->ev[srv->nev++] = (tether_dtls_event_t){.kind = kind, .why = why, .id = s->id, .peer = s->peer};
}

/* The next tick has work at `at` or later (a lower bound is enough: a tick
 * that finds nothing due computes the exact next deadline). */
static void deadline(tether_dtls_srv_t *srv, tether_time_t at)
{
    if (at < srv->next_at)
        srv->next_at = at;
}

static void sess_close(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why)
{
    if (s->state == S_DEAD)
        return;
    tether_hmap_remove(&srv->by_addr, &s->by_addr);
    if (s->cid_len)
        tether_hmap_remove(&srv->by_cid, &s->by_cid);
    if (s->state == S_HANDSHAKE) {
        list_del(&srv->handshaking, s);
        source_del(srv, s);
        srv->stats.handshakes_inflight--;
    } else {
        list_del(&srv->established, s);
        srv->stats.sessions_active--;
        if (!s->ssl)
            srv->stats.sessions_compact--;
        event_push(srv, TETHER_DTLS_EV_CLOSED, why, s);
    }
    tether_hmap_remove(&srv->by_id, &s->by_id);
    s->state = S_DEAD;
    srv->stats.sessions_closed++;
    s->next = srv->dead;
    srv->dead = s;
}

/* Frees sessions closed during the previous call: never inside the call
 * that still holds pointers to them. */
static void reap(tether_dtls_srv_t *srv)
{
    while (srv->dead) {
        tether_dtls_sess_t *s = srv->dead;
        srv->dead = s->next;
        if (s->ssl)
            wolfSSL_free(s->ssl);
        ceil_free(srv, s);
        tether_rec_wipe(&s->rec);
        free(s);
    }
}

/* Queues a session that just completed its handshake for the move to the
 * compact record layer at `due`. If the queue cannot grow, the session
 * moves after its next application record, or stays on wolfSSL. */
static void settle_push(tether_dtls_srv_t *srv, uint64_t id, tether_time_t due)
{
    if (srv->settle_n == srv->settle_cap) {
        size_t cap = srv->settle_cap ? srv->settle_cap * 2 : 256;
        settle_t *n = malloc(cap * sizeof *n);
        if (!n)
            return;
        for (size_t i = 0; i < srv->settle_n; i++)
            n[i] = srv->settle[(srv->settle_head + i) % srv->settle_cap];
        free(srv->settle);
        srv->settle = n;
        srv->settle_cap = cap;
        srv->settle_head = 0;
    }
    srv->settle[(srv->settle_head + srv->settle_n++) % srv->settle_cap] = (settle_t){id, due};
    deadline(srv, due);
}

/* Moves an established DTLS 1.2 session from wolfSSL to the compact record
 * layer and frees its WOLFSSL. Only between datagrams, when wolfSSL holds
 * no unread record; a session that cannot move is marked and left alone. */
static void compact(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    if (!s->ssl || s->wolf_only || s->state != S_ESTABLISHED)
        return;
    int rc = tether_wolf_export_rec(s->ssl, &s->rec);
    if (rc == TETHER_EAGAIN)
        return;
    if (rc < 0) {
        s->wolf_only = true;
        tether_rec_wipe(&s->rec);
        return;
    }
    wolfSSL_free(s->ssl);
    s->ssl = NULL;
    srv->stats.sessions_compact++;
    ceil_start(srv, s, s->rec.tx_seq);
}

/* Ends the read of the previous datagram: the session it was for moves to
 * the compact layer if it has shown it holds our final flight. Called
 * before sessions are reaped, so `reading` is still valid memory. */
static void release_reading(tether_dtls_srv_t *srv)
{
    tether_dtls_sess_t *s = srv->reading;
    srv->reading = NULL;
    srv->rd_off = srv->rd_len = 0;
    if (s && s->ssl && s->app_seen)
        compact(srv, s);
}

/* A failed handshake from the address of an established session gives the
 * address back (the hello may have been a replay: the cookie only proves
 * the sender sees that address's traffic). */
static void hs_fail(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why)
{
    srv->stats.handshakes_failed++;
    if (s->io.x509_rejected) {
        srv->stats.x509_rejected++;
        if (why == TETHER_DTLS_WHY_PROTOCOL)
            why = TETHER_DTLS_WHY_CERTIFICATE;
    }
    event_push(srv, TETHER_DTLS_EV_HANDSHAKE_FAILED, why, s);
    sess_close(srv, s, why);
    tether_dtls_sess_t *old = s->displaced ? tether_dtls_sess_find(srv, s->displaced) : NULL;
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
    s->hs_deadline = now + (tether_time_t)(t > 0 ? t : 1) * 1000;
    deadline(srv, s->hs_deadline);
}

/* Sets the session's identity and role from what its completed handshake
 * negotiated: the PSK identity wolfSSL used (looked up again, so a
 * credential removed meanwhile is refused), or the client certificate
 * whose CertificateVerify wolfSSL checked and whose CN cert_verify_cb
 * accepted during this session's own handshake. Anything else, such as an
 * ECDHE handshake without a client certificate (a server with cert_file
 * but no ca_file never asks for one), has no identity: TETHER_EPROTO. */
static int hs_authenticate(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    char id[TETHER_IDENTITY_MAX];
    enum tether_wolf_auth how = tether_wolf_peer_auth(s->ssl, id, sizeof id);
    wolfSSL_FreeArrays(s->ssl); /* key material nobody needs any more */
    if (how == TETHER_WOLF_AUTH_PSK) {
        uint8_t key[64];
        size_t klen;
        tether_role_t role;
        int rc = tether_creds_psk(srv->creds, id, key, sizeof key, &klen, &role);
        wc_ForceZero(key, sizeof key);
        io_auth_reset(&s->io);
        if (rc < 0)
            return TETHER_EPROTO;
        memcpy(s->io.identity, id, sizeof id);
        s->io.role = role;
        s->io.auth = AUTH_PSK;
        return 0;
    }
    tether_role_t role;
    if (how == TETHER_WOLF_AUTH_CERT && s->io.auth == AUTH_X509 && s->io.identity[0] &&
        tether_creds_x509(srv->creds, s->io.identity, &role) == 0) {
        s->io.role = role; /* as listed now (a reload may have come in between) */
        return 0;
    }
    io_auth_reset(&s->io);
    return TETHER_EPROTO;
}

/* Drives the handshake one step with the datagram in s->io. */
static void hs_step(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_time_t now)
{
    verifying = &s->io;
    int ret = wolfSSL_accept(s->ssl);
    verifying = NULL;
    if (ret == WOLFSSL_SUCCESS) {
        if (hs_authenticate(srv, s) < 0) { /* e.g. ECDHE without a client certificate */
            srv->stats.handshakes_unauthenticated++;
            hs_fail(srv, s, TETHER_DTLS_WHY_UNAUTHENTICATED);
            return;
        }
        if (s->io.auth == AUTH_X509)
            srv->stats.handshakes_x509++;
        list_del(&srv->handshaking, s);
        source_del(srv, s);
        srv->stats.handshakes_inflight--;
        s->state = S_ESTABLISHED;
        s->last_rx = now;
        deadline(srv, now + srv->conf.idle_timeout_ms);
        list_add(&srv->established, s);
        srv->stats.sessions_active++;
        srv->stats.handshakes_full++;
        /* The peer started over from that address: its old session is
         * abandoned (RFC 6347 §4.2.8). */
        tether_dtls_sess_t *old = s->displaced ? tether_dtls_sess_find(srv, s->displaced) : NULL;
        if (old)
            sess_close(srv, old, TETHER_DTLS_WHY_REPLACED);
        settle_push(srv, s->id, now + srv->conf.handshake_timeout_ms);
        deadline(srv, now + srv->conf.handshake_timeout_ms);
        /* Our CID is only useful when negotiated; keep the map honest. */
        if (s->cid_len && wolfSSL_dtls_cid_is_enabled(s->ssl) != WOLFSSL_SUCCESS) {
            tether_hmap_remove(&srv->by_cid, &s->by_cid);
            s->cid_len = 0;
        }
        return;
    }
    int err = wolfSSL_get_error(s->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        hs_schedule(srv, s, now);
        return;
    }
    hs_fail(srv, s, TETHER_DTLS_WHY_PROTOCOL);
}

/* Feeds a ClientHello to a stateless listener: 1 when the cookie verified,
 * 0 when a HelloVerifyRequest / HRR went out, <0 on error. */
static int listener_try(tether_dtls_srv_t *srv, listener_t *l, uint8_t iface,
                        const tether_addr_t *from, const uint8_t *buf, size_t len,
                        const tether_hello_t *hello)
{
    wolfSSL_dtls_set_peer(l->ssl, (void *)&from->ss, (unsigned)from->len);
    io_auth_reset(&l->io); /* nothing of an earlier hello reaches this one */
    l->io.in = buf;
    l->io.in_len = len;
    l->io.dst = from;
    l->io.iface = iface;
    l->io.tx_limited = true;
    l->io.tx_budget = 3 * (uint32_t)len;
    l->io.psk13_suite = hello->psk13_suite;
    int ret = wolfDTLS_accept_stateless(l->ssl);
    l->io.in = NULL;
    l->io.dst = NULL;
    if (ret == WOLFSSL_SUCCESS)
        return 1;
    io_auth_reset(&l->io);
    if (ret == WOLFSSL_FAILURE)
        return 0;
    listener_reset(srv, l); /* a fatal error leaves the object unusable */
    return TETHER_EPROTO;
}

/* The listener's WOLFSSL becomes a session; the listener is re-armed. */
static tether_dtls_sess_t *promote(tether_dtls_srv_t *srv, listener_t *l,
                                   const tether_addr_t *from, tether_time_t now)
{
    uint8_t key[TETHER_HKEY_MAX];
    tether_dtls_sess_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->io = l->io; /* the TLS 1.3 PSK suite of the hello that verified */
    s->io.tx_limited = false; /* the cookie proved the address */
    io_auth_reset(&s->io); /* identity comes from the handshake's result only */
    s->io.srv = srv;
    s->io.dst = &s->peer;
    s->ssl = l->ssl;
    s->peer = *from;
    s->cid_len = srv->conf.cid_len;
    memcpy(s->cid, l->cid, s->cid_len);
    wolfSSL_SetIOReadCtx(s->ssl, &s->io);
    wolfSSL_SetIOWriteCtx(s->ssl, &s->io);
    l->ssl = NULL;
    if (listener_reset(srv, l) < 0)
        l->ssl = NULL; /* retried at the next tick */
    size_t kl = tether_addr_key(from, key);
    /* A returning peer's new handshake: its old session keeps its CID but
     * no longer owns the address; hs_step closes it when this handshake
     * completes, hs_fail gives the address back if it fails. */
    tether_hnode_t *old = tether_hmap_find(&srv->by_addr, key, kl);
    if (old) {
        s->displaced = container_of(old, tether_dtls_sess_t, by_addr)->id;
        tether_hmap_remove(&srv->by_addr, old);
    }
    tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    tether_hmap_insert(&srv->by_cid, &s->by_cid, s->cid, s->cid_len);
    s->id = ++srv->next_id;
    tether_hmap_insert(&srv->by_id, &s->by_id, &s->id, sizeof s->id);
    s->state = S_HANDSHAKE;
    s->hs_started = now;
    s->last_rx = now;
    deadline(srv, now + srv->conf.handshake_flight_timeout_ms);
    list_add(&srv->handshaking, s);
    srv->stats.handshakes_inflight++;
    source_add(srv, s); /* uncharged if it cannot be: the total cap still holds */
    return s;
}

/* A handshake that has heard nothing from its peer for half the flight
 * timeout: a live peer answers a flight within a round trip, or resends
 * its own after its first retransmission timer (1 s, RFC 6347 §4.2.4.1). */
static bool stalled(const tether_dtls_srv_t *srv, const tether_dtls_sess_t *s, tether_time_t now)
{
    return now >= s->last_rx + srv->conf.handshake_flight_timeout_ms / 2;
}

/* A slot for a handshake from `from`, whose cookie has just proved its
 * address. A source at its cap gives up its own oldest handshake if that
 * one has stalled, so two busy sources cannot hold the table against a
 * third; a full table gives up its oldest handshake if that one has
 * stalled (it had the most time to finish). Otherwise the newcomer waits
 * (TETHER_ELIMIT: its peer resends the hello). Established sessions are
 * never evicted. */
static int make_room(tether_dtls_srv_t *srv, const tether_addr_t *from, tether_time_t now)
{
    source_t *src = srv->conf.max_handshakes_per_source ? source_find(srv, from) : NULL;
    if (src && src->n >= srv->conf.max_handshakes_per_source) {
        if (!stalled(srv, src->oldest, now))
            return TETHER_ELIMIT;
        srv->stats.handshakes_evicted++;
        hs_fail(srv, src->oldest, TETHER_DTLS_WHY_EVICTED);
    }
    bool full = srv->stats.handshakes_inflight >= srv->conf.max_handshakes ||
                srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions;
    if (full && srv->handshaking.head && stalled(srv, srv->handshaking.head, now)) {
        srv->stats.handshakes_evicted++;
        hs_fail(srv, srv->handshaking.head, TETHER_DTLS_WHY_EVICTED);
        full = false;
    }
    return full ? TETHER_ELIMIT : 0;
}

static void new_handshake(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
                          const uint8_t *buf, size_t len, tether_time_t now)
{
    tether_hello_t hello;
    if (tether_hello_scan(buf, len, &hello) < 0) {
        /* Not a whole, well-formed ClientHello: wolfSSL's stateless path
         * needs an unfragmented hello anyway (RFC 9147 §5.1). */
        srv->stats.hellos_refused++;
        return;
    }
    /* Each offered identity costs a lookup (and a key derivation for a
     * derived fleet) before any binder is checked; a device offers one. */
    if (hello.psk_identities > TETHER_DTLS_MAX_PSK_IDENTITIES) {
        srv->stats.hellos_refused++;
        return;
    }
    if (srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions &&
        !srv->stats.handshakes_inflight) {
        srv->stats.dropped_limit++;
        return;
    }
    if (!srv->lst[0].ssl && listener_reset(srv, &srv->lst[0]) < 0)
        return;
    listener_t *l = &srv->lst[0];
    size_t mark = srv->ntx;
    int r = listener_try(srv, l, iface, from, buf, len, &hello);
    if (r == 0 && srv->lst[1].ssl && hello.has_cookie) {
        size_t mark2 = srv->ntx;
        int r2 = listener_try(srv, &srv->lst[1], iface, from, buf, len, &hello);
        if (r2 == 1) {
            srv->ntx = mark; /* drop the HVR the current secret produced */
            l = &srv->lst[1];
            r = 1;
        } else {
            srv->ntx = mark2; /* one HVR is enough */
        }
    }
    if (r == 0) {
        srv->stats.hello_verify_sent++;
        return;
    }
    if (r < 0)
        return;
    /* The cookie proved the address, so a spoofer cannot spend a victim's
     * tokens; the listener forgets the hello it just accepted. */
    uint8_t src[9];
    if (!tether_rl_admit(&srv->rate, src, source_key(from, src), now)) {
        srv->stats.dropped_rate++;
        listener_reset(srv, l);
        return;
    }
    if (make_room(srv, from, now) < 0) {
        srv->stats.dropped_limit++;
        listener_reset(srv, l);
        return;
    }
    tether_dtls_sess_t *s = promote(srv, l, from, now);
    if (!s) {
        listener_reset(srv, l); /* it must not carry this peer's handshake on */
        return;
    }
    s->io.in = NULL; /* the ClientHello was consumed by the listener */
    hs_step(srv, s, now);
}

/* Parses (epoch << 48 | seq) from a DTLS 1.2 record header; the datagram
 * must hold exactly one record for the result to be usable. */
static bool single_record_seq(const uint8_t *b, size_t len, size_t cid_len, uint64_t *seq)
{
    size_t hdr = DTLS12_HDR + (b[0] == CT_TLS12_CID ? cid_len : 0);
    if (len < hdr)
        return false;
    size_t rlen = (size_t)b[hdr - 2] << 8 | b[hdr - 1];
    if (hdr + rlen != len)
        return false;
    uint64_t v = 0;
    for (int i = 3; i < 11; i++)
        v = v << 8 | b[i];
    *seq = v;
    return true;
}

/* A CID session follows its peer to a new address. The address map only
 * serves records without a CID: if another live session owns the address
 * it keeps it (SPEC S2: an authenticated record never takes another live
 * session's address), and this one is then reached by CID alone. Until
 * the new address is validated (tether_dtls_sess_validate), at most three
 * times what arrived from it may be sent there (SPEC S10, RFC 9146 §6,
 * draft-ietf-tls-dtls-rrc §4): a credential holder who spoofs a victim's
 * address cannot aim more than that at it. */
static void sess_move(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const tether_addr_t *to,
                      uint8_t iface)
{
    s->io.iface = iface;
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(to, key);
    tether_hmap_remove(&srv->by_addr, &s->by_addr);
    s->peer = *to;
    if (!tether_hmap_find(&srv->by_addr, key, kl))
        tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    s->unvalidated = true;
    s->credit = 0; /* the datagram that moved it adds its share (credit_rx) */
    srv->stats.address_changes++;
    event_push(srv, TETHER_DTLS_EV_MOVED, 0, s);
}

/* An authenticated datagram of `len` bytes from the session's address. */
static void credit_rx(tether_dtls_sess_t *s, size_t len)
{
    if (!s->unvalidated)
        return;
    uint64_t c = (uint64_t)s->credit + 3 * (uint64_t)len;
    s->credit = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* Whether `n` bytes may go to the session's address now; charges them. */
static bool credit_tx(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, size_t n)
{
    if (!s->unvalidated)
        return true;
    if (n > s->credit) {
        srv->stats.tx_unvalidated_dropped++;
        return false;
    }
    s->credit -= (uint32_t)n;
    return true;
}

/* RFC 9146 §6 / RFC 9147 §9: after an authenticated record numbered `rn`
 * (epoch << 48 | seq), a newer number than any seen moves a CID session to
 * the datagram's source; older (even unseen) records never move it. */
static void note_record(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t rn)
{
    if (rn <= s->max_seq)
        return;
    s->max_seq = rn;
    if (srv->reading_by_cid && (!tether_addr_equal(&srv->reading_from, &s->peer) ||
                                srv->reading_iface != s->io.iface))
        sess_move(srv, s, &srv->reading_from, srv->reading_iface);
}

/* Reads one application record. DTLS 1.3 record numbers are encrypted on
 * the wire, so they come from wolfSSL after it authenticated the record
 * (per record, so datagrams with several records are fine). */
static bool read_record(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_dtls_rx_t *rx)
{
    int n = wolfSSL_read(s->ssl, srv->rxbuf, sizeof srv->rxbuf);
    if (n > 0) {
        uint64_t rn;
        bool dtls13 = false;
        if (tether_wolf_record_number(s->ssl, &rn, &dtls13) && dtls13)
            note_record(srv, s, rn);
        s->app_seen = true;
        rx->sess = s;
        rx->data = srv->rxbuf;
        rx->len = (size_t)n;
        return true;
    }
    int err = wolfSSL_get_error(s->ssl, n);
    if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE)
        sess_close(srv, s, TETHER_DTLS_WHY_PEER); /* close_notify or a fatal alert */
    return false;
}

/* Compact session: opens the datagram's records (in rdbuf) up to the next
 * application record. An authenticated close_notify or fatal alert closes
 * the session; handshake records (renegotiation, a late Finished) and
 * records that fail (not ours, replayed, forged) are skipped. */
static bool compact_read(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_dtls_rx_t *rx)
{
    while (srv->rd_off < srv->rd_len && s->state == S_ESTABLISHED) {
        size_t used;
        tether_rec_in_t in;
        int rc = tether_rec_open(&s->rec, &srv->aes, s->cid, s->cid_len, srv->rdbuf + srv->rd_off,
                                 srv->rd_len - srv->rd_off, &used, srv->rxbuf, sizeof srv->rxbuf,
                                 &in);
        srv->rd_off = rc == TETHER_EPROTO ? srv->rd_len : srv->rd_off + used;
        if (rc < 0) {
            srv->stats.records_rejected++;
            continue;
        }
        note_record(srv, s, in.number);
        if (in.type == TETHER_REC_CT_APP && in.len == 0) {
            /* RFC 6347 §4.1 allows an empty application record; it must
             * not end the datagram (rx->len 0 means "nothing more"). */
            srv->stats.records_empty++;
            continue;
        }
        if (in.type == TETHER_REC_CT_APP) {
            rx->sess = s;
            rx->data = srv->rxbuf;
            rx->len = in.len;
            return true;
        }
        if (in.type == TETHER_REC_CT_ALERT && in.len >= 2 &&
            (srv->rxbuf[0] == 2 || srv->rxbuf[1] == 0))
            sess_close(srv, s, TETHER_DTLS_WHY_PEER);
    }
    return false;
}

/* A plaintext ClientHello (epoch 0), the start of a new handshake. */
static bool is_client_hello(const uint8_t *b, size_t len)
{
    return len > DTLS12_HDR && b[0] == CT_HANDSHAKE && b[3] == 0 && b[4] == 0 &&
           b[DTLS12_HDR] == 1;
}

int tether_dtls_input(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
                      const uint8_t *buf, size_t len, tether_time_t now, tether_dtls_rx_t *rx)
{
    release_reading(srv);
    reap(srv);
    srv->now = now;
    rx->sess = NULL;
    rx->data = NULL;
    rx->len = 0;
    if (len < 1)
        return 0;
    tether_dtls_sess_t *s = NULL;
    bool by_cid = false;
    const size_t cl = srv->conf.cid_len;
    if (buf[0] == CT_TLS12_CID || ((buf[0] & 0xe0) == 0x20 && (buf[0] & 0x10))) {
        const uint8_t *cid = wolfSSL_dtls_cid_parse(buf, (unsigned)len, (unsigned)cl);
        tether_hnode_t *h = cid ? tether_hmap_find(&srv->by_cid, cid, cl) : NULL;
        if (!h) {
            srv->stats.unknown_cid_dropped++; /* never an alert: RFC 9146 §6 */
            return 0;
        }
        s = container_of(h, tether_dtls_sess_t, by_cid);
        by_cid = true;
    } else {
        uint8_t key[TETHER_HKEY_MAX];
        tether_hnode_t *h = tether_hmap_find(&srv->by_addr, key, tether_addr_key(from, key));
        if (h)
            s = container_of(h, tether_dtls_sess_t, by_addr);
    }
    if (!s) {
        new_handshake(srv, iface, from, buf, len, now);
        return 0;
    }
    if (s->state == S_HANDSHAKE) {
        s->last_rx = now;
        s->io.in = buf;
        s->io.in_len = len;
        hs_step(srv, s, now);
        s->io.in = NULL;
        return 0;
    }
    /* A device back behind the same NAT binding, starting over: the
     * cookie exchange comes first, the old session stays until then. */
    if (!by_cid && is_client_hello(buf, len)) {
        new_handshake(srv, iface, from, buf, len, now);
        return 0;
    }
    srv->reading_from = *from;
    srv->reading_iface = iface;
    srv->reading_by_cid = by_cid;
    if (!s->ssl) {
        if (len > sizeof srv->rdbuf)
            return 0;
        memcpy(srv->rdbuf, buf, len);
        srv->rd_off = 0;
        srv->rd_len = len;
        if (!compact_read(srv, s, rx))
            return 0;
        if (tether_addr_equal(from, &s->peer))
            credit_rx(s, len);
        s->last_rx = now;
        list_del(&srv->established, s);
        list_add(&srv->established, s);
        srv->reading = s;
        return 0;
    }
    s->io.in = buf;
    s->io.in_len = len;
    /* DTLS 1.2: the record number is in the clear; use it when the datagram
     * holds exactly one record (wolfSSL's own check covers the rest). */
    uint64_t seq = 0;
    bool single = buf[0] != CT_HANDSHAKE && (buf[0] & 0xe0) != 0x20 &&
                  single_record_seq(buf, len, cl, &seq);
    if (!read_record(srv, s, rx)) {
        s->io.in = NULL;
        return 0;
    }
    s->io.in = NULL;
    if (single) /* authenticated by the read above */
        note_record(srv, s, seq);
    if (tether_addr_equal(from, &s->peer))
        credit_rx(s, len);
    s->last_rx = now;
    list_del(&srv->established, s);
    list_add(&srv->established, s);
    srv->reading = s;
    return 0;
}

bool tether_dtls_input_more(tether_dtls_srv_t *srv, tether_dtls_rx_t *rx)
{
    tether_dtls_sess_t *s = srv->reading;
    if (!s || s->state != S_ESTABLISHED)
        return false;
    return s->ssl ? read_record(srv, s, rx) : compact_read(srv, s, rx);
}

/* Seals one record of a compact session into the transmit queue. */
static int compact_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t type,
                        const uint8_t *data, size_t len)
{
    if (srv->ntx == TETHER_DTLS_TXQ) {
        srv->stats.tx_dropped++;
        return TETHER_ENOSPC;
    }
    tether_dgram_t *d = &srv->tx[srv->ntx];
    int n = tether_rec_seal(&s->rec, &srv->aes, type, data, len, d->data, sizeof d->data);
    if (n == TETHER_ELIMIT) /* sequence numbers exhausted: it can never send again */
        sess_close(srv, s, TETHER_DTLS_WHY_LOCAL);
    if (n < 0)
        return n;
    if (!credit_tx(srv, s, (size_t)n)) /* a skipped record number is harmless */
        return TETHER_ELIMIT;
    d->to = s->peer;
    d->iface = s->io.iface;
    d->len = (uint16_t)n;
    srv->ntx++;
    if (s->ceil)
        ceil_kick(srv, s);
    return 0;
}

int tether_dtls_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const uint8_t *data,
                     size_t len)
{
    if (s->state != S_ESTABLISHED)
        return TETHER_EINVAL;
    if (!s->ssl) {
        if (s->ceil) {
            int rc = tether_txceil_check(s->ceil, s->rec.tx_seq);
            if (rc == TETHER_EAGAIN) { /* goes out once the store has the next ceiling */
                rc = tether_txceil_hold(s->ceil, TETHER_REC_CT_APP, data, len);
                if (rc == 0)
                    srv->stats.records_held++;
                else
                    srv->stats.tx_dropped++;
                ceil_kick(srv, s);
                return rc;
            }
            if (rc < 0) {
                sess_close(srv, s, TETHER_DTLS_WHY_LOCAL);
                return rc;
            }
        }
        return compact_send(srv, s, TETHER_REC_CT_APP, data, len);
    }
    /* DTLS 1.3 record: unified header with a CID, sequence, length, tag. */
    if (s->unvalidated && !credit_tx(srv, s, len + 1 + TETHER_CID_MAX + 4 + 16 + 1))
        return TETHER_ELIMIT;
    s->io.dst = &s->peer;
    int n = wolfSSL_write(s->ssl, data, (int)len);
    return n == (int)len ? 0 : TETHER_EIO;
}

void tether_dtls_tick(tether_dtls_srv_t *srv, tether_time_t now)
{
    release_reading(srv);
    reap(srv);
    srv->now = now;
    while (srv->settle_n && srv->settle[srv->settle_head].due <= now) {
        uint64_t id = srv->settle[srv->settle_head].id;
        srv->settle_head = (srv->settle_head + 1) % srv->settle_cap;
        srv->settle_n--;
        tether_dtls_sess_t *s = tether_dtls_sess_find(srv, id);
        if (s)
            compact(srv, s);
        if (s && s->ssl && !s->wolf_only) /* wolfSSL still held input: again later */
            settle_push(srv, id, now + 1000);
    }
    uint64_t epoch = epoch_of(srv, srv->wall_ms ? srv->wall_ms : now);
    if (epoch > srv->cookie_epoch)
        rotate(srv, epoch);
    if (!srv->lst[0].ssl)
        listener_reset(srv, &srv->lst[0]);
    /* The exact next deadline is recomputed here; calls in between only
     * lower it (deadline()). */
    srv->next_at = UINT64_MAX;
    for (tether_dtls_sess_t *s = srv->handshaking.head, *next; s; s = next) {
        next = s->next;
        if (now >= s->hs_started + srv->conf.handshake_timeout_ms) {
            hs_fail(srv, s, TETHER_DTLS_WHY_TIMEOUT);
            continue;
        } else if (now >= s->last_rx + srv->conf.handshake_flight_timeout_ms) {
            srv->stats.handshakes_stalled++;
            hs_fail(srv, s, TETHER_DTLS_WHY_STALLED);
            continue;
        } else if (now >= s->hs_deadline) {
            if (wolfSSL_dtls_got_timeout(s->ssl) != WOLFSSL_SUCCESS) {
                hs_fail(srv, s, TETHER_DTLS_WHY_TIMEOUT);
                continue;
            }
            hs_schedule(srv, s, now);
        }
        deadline(srv, s->hs_started + srv->conf.handshake_timeout_ms);
        deadline(srv, s->last_rx + srv->conf.handshake_flight_timeout_ms);
        deadline(srv, s->hs_deadline);
    }
    while (srv->established.head &&
           srv->established.head->last_rx + srv->conf.idle_timeout_ms <= now)
        sess_close(srv, srv->established.head, TETHER_DTLS_WHY_IDLE);
    if (srv->established.head)
        deadline(srv, srv->established.head->last_rx + srv->conf.idle_timeout_ms);
    if (srv->settle_n)
        deadline(srv, srv->settle[srv->settle_head].due);
    if (srv->ceil_failed)
        ceil_retry(srv);
    /* The next cookie epoch, on the clock the epochs follow. */
    tether_time_t rot = srv->conf.cookie_rotate_ms ? srv->conf.cookie_rotate_ms : 1;
    tether_time_t clock = srv->wall_ms ? srv->wall_ms : now;
    tether_time_t next_epoch = (srv->cookie_epoch + 1) * rot;
    deadline(srv, clock >= next_epoch ? now : now + (next_epoch - clock));
}

tether_time_t tether_dtls_next_deadline(const tether_dtls_srv_t *srv) { return srv->next_at; }

void tether_dtls_sess_validate(tether_dtls_sess_t *s)
{
    s->unvalidated = false;
    s->credit = 0;
}

bool tether_dtls_sess_validated(const tether_dtls_sess_t *s) { return !s->unvalidated; }

void tether_dtls_conf_defaults(tether_dtls_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->cid_len = 8;
    c->max_sessions = 1000000;
    c->max_handshakes = 10000;
    c->handshake_timeout_ms = 30000;
    c->max_handshakes_per_source = 8;
    c->handshake_flight_timeout_ms = 5000;
    c->idle_timeout_ms = 86400000;
    c->cookie_rotate_ms = 300000;
    c->handshake_rate_per_source = 200;
    c->handshake_burst_per_source = 400;
}

/* Suites of SPEC S2 plus the DTLS 1.3 ones. */
static const char *const cipher_list =
    "TLS13-AES128-GCM-SHA256:TLS13-AES128-CCM-8-SHA256:"
    "PSK-AES128-CCM-8:PSK-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256";

static bool set(const char *path) { return path && *path; }

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
    if ((rc = tether_hmap_init(&srv->by_addr, 1024, seed)) < 0)
        goto fail_addr;
    if ((rc = tether_hmap_init(&srv->by_cid, 1024, seed ^ 0x9e3779b97f4a7c15ull)) < 0)
        goto fail_cid;
    if ((rc = tether_hmap_init(&srv->by_id, 1024, seed ^ 0x5851f42d4c957f2dull)) < 0)
        goto fail_id;
    if ((rc = tether_hmap_init(&srv->sources, 64, seed ^ 0x2545f4914f6cdd1dull)) < 0)
        goto fail_sources;
    rc = TETHER_ECRYPTO;
    srv->ctx = wolfSSL_CTX_new(wolfDTLS_server_method());
    if (!srv->ctx)
        goto fail_ctx;
    /* The PSK callback first: wolfSSL drops PSK suites from a cipher list
     * set while the context has no PSK. */
    wolfSSL_CTX_set_psk_server_callback(srv->ctx, psk_server_cb);
    wolfSSL_CTX_set_psk_server_tls13_callback(srv->ctx, psk_server_tls13_cb);
    wolfSSL_CTX_SetIORecv(srv->ctx, io_recv);
    wolfSSL_CTX_SetIOSend(srv->ctx, io_send);
    if (wolfSSL_CTX_SetMinVersion(srv->ctx, WOLFSSL_DTLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(srv->ctx, cipher_list) != WOLFSSL_SUCCESS)
        goto fail_setup;
    if ((rc = setup_x509(srv->ctx, conf)) < 0)
        goto fail_setup;
    rc = TETHER_ECRYPTO;
    srv->cookie_epoch = now / (conf->cookie_rotate_ms ? conf->cookie_rotate_ms : 1);
    if (cookie_secret(srv, srv->cookie_epoch, srv->lst[0].secret) < 0 ||
        listener_reset(srv, &srv->lst[0]) < 0)
        goto fail_setup;
    *out = srv;
    return 0;

fail_setup:
    wolfSSL_CTX_free(srv->ctx);
fail_ctx:
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
        sess_close(srv, srv->handshaking.head, TETHER_DTLS_WHY_LOCAL);
    while (srv->established.head)
        sess_close(srv, srv->established.head, TETHER_DTLS_WHY_LOCAL);
    reap(srv);
    for (int i = 0; i < 2; i++)
        if (srv->lst[i].ssl)
            wolfSSL_free(srv->lst[i].ssl);
    wolfSSL_CTX_free(srv->ctx);
    tether_hmap_free(&srv->sources); /* empty: every handshake was closed above */
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
    uint64_t epoch = epoch_of(srv, wall_ms);
    if (first && epoch != srv->cookie_epoch) {
        /* Start over on the cluster's epochs: the previous one, then this. */
        srv->cookie_epoch = epoch - 1;
        if (cookie_secret(srv, epoch - 1, srv->lst[0].secret) == 0)
            listener_reset(srv, &srv->lst[0]);
        rotate(srv, epoch);
    }
}

/* SPEC S7 (SIGHUP reloads credentials): an established session whose
 * identity is gone from the new set, or listed with another role, ends
 * (security review: a removed device used to keep serving for days). One
 * pass over the sessions, a hash lookup each (no key derivation). */
void tether_dtls_set_creds(tether_dtls_srv_t *srv, const tether_creds_t *creds)
{
    srv->creds = creds;
    for (tether_dtls_sess_t *s = srv->established.head, *next; s; s = next) {
        next = s->next;
        tether_role_t role;
        int rc = s->io.auth == AUTH_X509 ? tether_creds_x509(creds, s->io.identity, &role)
                                          : tether_creds_role(creds, s->io.identity, &role);
        if (rc < 0 || role != s->io.role) {
            srv->stats.sessions_revoked++;
            sess_close(srv, s, TETHER_DTLS_WHY_REVOKED);
        }
    }
}

uint64_t tether_dtls_sess_id(const tether_dtls_sess_t *s) { return s->id; }

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

void tether_dtls_events_clear(tether_dtls_srv_t *srv) { srv->nev = 0; }

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
    };
    return why < sizeof names / sizeof *names && names[why] ? names[why] : "unknown";
}

size_t tether_dtls_tx_count(const tether_dtls_srv_t *srv) { return srv->ntx; }
const tether_dgram_t *tether_dtls_tx_get(const tether_dtls_srv_t *srv, size_t i)
{
    return i < srv->ntx ? &srv->tx[i] : NULL;
}
void tether_dtls_tx_clear(tether_dtls_srv_t *srv) { srv->ntx = 0; }
const tether_dtls_stats_t *tether_dtls_stats(const tether_dtls_srv_t *srv) { return &srv->stats; }
const char *tether_dtls_sess_identity(const tether_dtls_sess_t *s) { return s->io.identity; }
tether_role_t tether_dtls_sess_role(const tether_dtls_sess_t *s) { return s->io.role; }
const tether_addr_t *tether_dtls_sess_peer(const tether_dtls_sess_t *s) { return &s->peer; }
size_t tether_dtls_sess_cid(const tether_dtls_sess_t *s, uint8_t *out)
{
    memcpy(out, s->cid, s->cid_len);
    return s->cid_len;
}

/* ---- transmit ceiling, checkpoints, adoption (SPEC S5) --------------------- */

_Static_assert(TETHER_DTLS_CHECKPOINT_MAX == TETHER_CKPT_MAX, "public bound out of date");

/* Puts a compact CID session under a transmit ceiling starting at `next`
 * (conf.checkpoint). Without one (allocation failed) it is never
 * checkpointed, so no other node can reuse its nonces. */
static int ceil_start_rc(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t next)
{
    if (!srv->conf.checkpoint || !s->cid_len || s->ceil)
        return 0;
    s->ceil = malloc(sizeof *s->ceil);
    if (!s->ceil)
        return TETHER_ENOMEM;
    tether_txceil_conf_t conf;
    tether_txceil_conf_defaults(&conf);
    tether_txceil_init(s->ceil, &conf, next);
    ceil_kick(srv, s);
    return 0;
}

static void ceil_start(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t next)
{
    ceil_start_rc(srv, s, next);
}

static void ceil_free(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    if (!s->ceil)
        return;
    tether_txceil_destroy(s->ceil);
    free(s->ceil);
    s->ceil = NULL;
}

/* Asks the layer above for a raise when one is due. */
static void ceil_kick(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    uint64_t c;
    if (s->state != S_ESTABLISHED || !tether_txceil_want(s->ceil, s->rec.tx_seq, srv->now, &c))
        return;
    s->ceil->retry_at = 0;
    tether_txceil_started(s->ceil, c);
    event_push(srv, TETHER_DTLS_EV_CEILING, 0, s);
}

/* Tick: failed raises whose pause is over ask again. One pass over the
 * established sessions, only while some raise may have failed
 * (ceil_failed counts failures since the last pass, then those left). */
static void ceil_retry(tether_dtls_srv_t *srv)
{
    srv->ceil_failed = 0;
    for (tether_dtls_sess_t *s = srv->established.head; s; s = s->next) {
        if (!s->ceil || !s->ceil->retry_at)
            continue;
        ceil_kick(srv, s);
        if (s->ceil->retry_at) {
            srv->ceil_failed++;
            deadline(srv, s->ceil->retry_at);
        }
    }
}

static tether_dtls_sess_t *ceiled(const tether_dtls_srv_t *srv, uint64_t id)
{
    tether_dtls_sess_t *s = tether_dtls_sess_find(srv, id);
    return s && s->ceil ? s : NULL;
}

uint64_t tether_dtls_sess_ceiling_wanted(const tether_dtls_sess_t *s)
{
    return s->ceil ? s->ceil->pending : 0;
}

int tether_dtls_ceiling_acked(tether_dtls_srv_t *srv, uint64_t id, uint64_t ceiling)
{
    tether_dtls_sess_t *s = ceiled(srv, id);
    if (!s)
        return TETHER_ENOTFOUND;
    tether_txceil_acked(s->ceil, ceiling);
    uint8_t buf[TETHER_DTLS_MAX_DGRAM], type;
    size_t len;
    while (s->state == S_ESTABLISHED &&
           tether_txceil_pop(s->ceil, s->rec.tx_seq, &type, buf, sizeof buf, &len) == 0)
        compact_send(srv, s, type, buf, len);
    wc_ForceZero(buf, sizeof buf);
    if (s->state == S_ESTABLISHED)
        ceil_kick(srv, s);
    return 0;
}

int tether_dtls_ceiling_failed(tether_dtls_srv_t *srv, uint64_t id)
{
    tether_dtls_sess_t *s = ceiled(srv, id);
    if (!s)
        return TETHER_ENOTFOUND;
    srv->ceil_failed++;
    tether_txceil_failed(s->ceil, srv->now);
    deadline(srv, s->ceil->retry_at);
    return 0;
}

static void bind_of(const tether_dtls_ckpt_bind_t *b, const uint8_t *cid, size_t cid_len,
                    tether_ckpt_bind_t *out)
{
    *out = (tether_ckpt_bind_t){.cid = cid,
                                .cid_len = cid_len,
                                .owner = b->owner,
                                .generation = b->generation,
                                .version = b->version,
                                .seq_ceiling = b->seq_ceiling};
}

int tether_dtls_checkpoint(tether_dtls_srv_t *srv, const tether_dtls_sess_t *s,
                           const tether_dtls_ckpt_bind_t *b, uint8_t *out, size_t cap,
                           size_t *len)
{
    if (s->state != S_ESTABLISHED)
        return TETHER_EINVAL;
    if (s->ssl)
        return s->wolf_only ? TETHER_EINVAL : TETHER_EAGAIN;
    if (!s->ceil || b->seq_ceiling < s->rec.tx_seq)
        return TETHER_EINVAL;
    tether_ckpt_t c;
    memset(&c, 0, sizeof c);
    c.rec = s->rec;
    c.auth = s->io.auth == AUTH_X509 ? TETHER_CKPT_AUTH_X509 : TETHER_CKPT_AUTH_PSK;
    c.role = s->io.role;
    memcpy(c.identity, s->io.identity, sizeof c.identity);
    c.peer = s->peer;
    c.unvalidated = s->unvalidated;
    tether_ckpt_bind_t bind;
    bind_of(b, s->cid, s->cid_len, &bind);
    int rc = tether_ckpt_seal(&srv->ckpt_key, &srv->rng, &bind, &c, out, cap, len);
    tether_ckpt_wipe(&c);
    return rc;
}

int tether_dtls_adopt(tether_dtls_srv_t *srv, const uint8_t *cid, size_t cid_len,
                      const tether_dtls_ckpt_bind_t *b, const uint8_t *blob, size_t len,
                      uint8_t iface, tether_time_t now, tether_dtls_sess_t **out)
{
    if (!srv->conf.checkpoint || cid_len != srv->conf.cid_len)
        return TETHER_EINVAL;
    srv->now = now;
    if (tether_hmap_find(&srv->by_cid, cid, cid_len))
        return TETHER_EEXIST;
    int rc = TETHER_ELIMIT;
    uint64_t start = tether_txceil_adopt_start(b->seq_ceiling, TETHER_TXCEIL_MARGIN);
    if (srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions ||
        start >= TETHER_TXCEIL_SEQ_LIMIT)
        goto refused;
    tether_ckpt_t c;
    tether_ckpt_bind_t bind;
    bind_of(b, cid, cid_len, &bind);
    if ((rc = tether_ckpt_open(&srv->ckpt_key, &bind, blob, len, &c)) < 0)
        goto refused;
    /* Credentials may have changed since the checkpoint (SPEC S7): the
     * same rule as tether_dtls_set_creds. */
    tether_role_t role;
    rc = c.auth == TETHER_CKPT_AUTH_X509 ? tether_creds_x509(srv->creds, c.identity, &role)
                                         : tether_creds_role(srv->creds, c.identity, &role);
    if (rc < 0 || role != c.role) {
        rc = TETHER_ENOTFOUND;
        goto wipe;
    }
    rc = TETHER_ENOMEM;
    tether_dtls_sess_t *s = calloc(1, sizeof *s);
    if (!s)
        goto wipe;
    s->io.srv = srv;
    s->io.dst = &s->peer;
    s->io.iface = iface;
    s->io.auth = c.auth == TETHER_CKPT_AUTH_X509 ? AUTH_X509 : AUTH_PSK;
    s->io.role = c.role;
    memcpy(s->io.identity, c.identity, sizeof s->io.identity);
    s->rec = c.rec;
    s->rec.tx_seq = start;
    s->peer = c.peer;
    s->unvalidated = c.unvalidated;
    memcpy(s->cid, cid, cid_len);
    s->cid_len = (uint8_t)cid_len;
    s->app_seen = true;
    /* Records older than the newest the owner saw never move the session
     * (note_record). */
    s->max_seq = (uint64_t)s->rec.epoch << 48 | (s->rec.rx_next ? s->rec.rx_next - 1 : 0);
    s->state = S_ESTABLISHED;
    s->last_rx = now;
    s->id = ++srv->next_id;
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(&s->peer, key);
    if (!tether_hmap_find(&srv->by_addr, key, kl))
        tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    tether_hmap_insert(&srv->by_cid, &s->by_cid, s->cid, s->cid_len);
    tether_hmap_insert(&srv->by_id, &s->by_id, &s->id, sizeof s->id);
    list_add(&srv->established, s);
    srv->stats.sessions_active++;
    srv->stats.sessions_compact++;
    deadline(srv, now + srv->conf.idle_timeout_ms);
    if ((rc = ceil_start_rc(srv, s, start)) < 0) {
        sess_close(srv, s, TETHER_DTLS_WHY_LOCAL); /* freed at the next call */
        goto wipe;
    }
    srv->stats.sessions_adopted++;
    tether_ckpt_wipe(&c);
    *out = s;
    return 0;

wipe:
    tether_ckpt_wipe(&c);
refused:
    srv->stats.adoptions_refused++;
    return rc;
}
