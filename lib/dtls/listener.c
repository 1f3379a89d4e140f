/* The stateless front door of the DTLS server (internal to lib/dtls).
 *
 * Contract: handshakes start on a stateless listener object, so nothing
 * per peer is allocated until a ClientHello returns a valid cookie
 * (RFC 6347 §4.2.1, RFC 9147 §5.1). Two listeners are kept, one per cookie
 * secret (current and previous), so a rotation never rejects a client
 * that is mid-exchange; secrets derive from the cluster key so any node
 * accepts any node's cookies. Before the cookie, an unvalidated address
 * gets at most 3x its bytes back (SPEC S10). After it, admission: the
 * per-source token bucket (ratelimit.h), the per-source and total caps on
 * handshakes in flight (stalled ones make room), then the listener's
 * WOLFSSL becomes a handshaking session (handshake.c) with a fresh CID.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "dtls/dtls_int.h"
#include "dtls/hello.h"
#include "util/container.h"

/* Key of the first v4 bytes of an IPv4 address or v6 bytes of an IPv6
 * one, after a family byte: 1 + v4 or 1 + v6 bytes. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2: every IPv4 peer of a
 * dual-stack "[::]" listener) is the IPv4 address it maps: its first 8
 * bytes are the same for all of them, so one IPv4 host would otherwise
 * spend the rate and the caps of every other one. */
static size_t net_key(const tether_addr_t *a, uint8_t *key, size_t v4, size_t v6)
{
    const uint8_t *ip = (const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
    bool is6 = a->ss.ss_family == AF_INET6;
    if (is6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        ip = (const uint8_t *)a6;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            is6 = false;
            ip += 12;
        }
    }
    key[0] = is6 ? 6 : 4;
    memcpy(key + 1, ip, is6 ? v6 : v4);
    return 1 + (is6 ? v6 : v4);
}

/* Who a handshake is charged to: the IPv4 address, or the IPv6 /64 (one
 * host usually owns a whole /64). */
static size_t source_key(const tether_addr_t *a, uint8_t key[9])
{
    return net_key(a, key, 4, 8);
}

/* The network a source sits in: the IPv4 /24 or the IPv6 /48 (one site,
 * RFC 6177), for conf.max_handshakes_per_prefix. */
static size_t prefix_key(const tether_addr_t *a, uint8_t key[7])
{
    return net_key(a, key, 3, 6);
}

static prefix_t *prefix_find(tether_dtls_srv_t *srv, const tether_addr_t *a)
{
    uint8_t key[7];
    tether_hnode_t *h = tether_hmap_find(&srv->prefixes, key, prefix_key(a, key));
    return h ? container_of(h, prefix_t, node) : NULL;
}

/* Charges handshake `s` to its prefix; s->prefix_charged says it was. */
static void prefix_add(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    prefix_t *p = prefix_find(srv, &s->peer);
    if (!p) {
        uint8_t key[7];
        if (!(p = calloc(1, sizeof *p)))
            return; /* uncharged: the per-source and total caps still hold */
        tether_hmap_insert(&srv->prefixes, &p->node, key, prefix_key(&s->peer, key));
    }
    p->n++;
    s->hs->prefix_charged = true;
}

static void prefix_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    prefix_t *p = s->hs->prefix_charged ? prefix_find(srv, &s->peer) : NULL;
    s->hs->prefix_charged = false;
    if (p && --p->n == 0) {
        tether_hmap_remove(&srv->prefixes, &p->node);
        free(p);
    }
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
    s->hs->src_next = NULL;
    if (src->newest)
        src->newest->hs->src_next = s;
    else
        src->oldest = s;
    src->newest = s;
    src->n++;
    prefix_add(srv, s);
    return 0;
}

/* Takes a handshaking session off its source's list; frees the source
 * with its last handshake. */
void dtls_source_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    source_t *src = source_find(srv, &s->peer);
    if (!src)
        return;
    tether_dtls_sess_t *prev = NULL;
    for (tether_dtls_sess_t *p = src->oldest; p && p != s; p = p->hs->src_next)
        prev = p;
    if (prev ? prev->hs->src_next != s : src->oldest != s)
        return; /* not on the list (could not be charged) */
    if (prev)
        prev->hs->src_next = s->hs->src_next;
    else
        src->oldest = s->hs->src_next;
    if (src->newest == s)
        src->newest = prev;
    s->hs->src_next = NULL;
    prefix_del(srv, s);
    if (--src->n == 0) {
        tether_hmap_remove(&srv->sources, &src->node);
        free(src);
    }
}

/* ---- listeners and cookie secrets ------------------------------------------ */

/* Secret for a cookie epoch: derived from the cluster key so every node
 * accepts every other node's cookies, or random when there is no key. */
int dtls_cookie_secret(tether_dtls_srv_t *srv, uint64_t epoch, uint8_t out[COOKIE_SECRET_LEN])
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

int dtls_listener_reset(tether_dtls_srv_t *srv, listener_t *l)
{
    if (l->ssl)
        wolfSSL_free(l->ssl);
    dtls_io_auth_reset(&l->io);
    memset(&l->io, 0, sizeof l->io);
    l->io.srv = srv;
    l->ssl = new_ssl(srv, &l->io, l->cid, l->secret);
    return l->ssl ? 0 : TETHER_ECRYPTO;
}

uint64_t dtls_epoch_of(const tether_dtls_srv_t *srv, tether_time_t t)
{
    return t / (srv->conf.cookie_rotate_ms ? srv->conf.cookie_rotate_ms : 1);
}

/* Moves current to previous and starts a current listener on the secret of
 * cookie epoch `epoch`. */
int dtls_rotate(tether_dtls_srv_t *srv, uint64_t epoch)
{
    listener_t *cur = &srv->lst[0], *prev = &srv->lst[1];
    if (prev->ssl)
        wolfSSL_free(prev->ssl);
    dtls_ticket_seen_free(&prev->io.tickets); /* overwritten next */
    *prev = *cur;
    cur->io.tickets = NULL; /* moved with the rest */
    /* The moved WOLFSSL still points at cur->io: repoint it. */
    wolfSSL_SetIOReadCtx(prev->ssl, &prev->io);
    wolfSSL_SetIOWriteCtx(prev->ssl, &prev->io);
    cur->ssl = NULL;
    srv->cookie_epoch = epoch;
    if (dtls_cookie_secret(srv, srv->cookie_epoch, cur->secret) < 0)
        return TETHER_ECRYPTO;
    return dtls_listener_reset(srv, cur);
}

/* Feeds a ClientHello to a stateless listener: 1 when the cookie verified,
 * 0 when a HelloVerifyRequest / HRR went out, <0 on error. */
static int listener_try(tether_dtls_srv_t *srv, listener_t *l, uint8_t iface,
                        const tether_addr_t *from, const uint8_t *buf, size_t len,
                        const tether_hello_t *hello)
{
    wolfSSL_dtls_set_peer(l->ssl, (void *)&from->ss, (unsigned)from->len);
    dtls_io_auth_reset(&l->io); /* nothing of an earlier hello reaches this one */
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
    dtls_io_auth_reset(&l->io);
    if (ret == WOLFSSL_FAILURE)
        return 0;
    dtls_listener_reset(srv, l); /* a fatal error leaves the object unusable */
    return TETHER_EPROTO;
}

/* The listener's WOLFSSL becomes a session; the listener is re-armed. */
static tether_dtls_sess_t *promote(tether_dtls_srv_t *srv, listener_t *l, const tether_addr_t *from,
                                   tether_time_t now)
{
    uint8_t key[TETHER_HKEY_MAX];
    tether_dtls_sess_t *s = calloc(1, sizeof *s);
    dtls_hs_t *hs = s ? calloc(1, sizeof *hs) : NULL;
    if (!hs) {
        free(s);
        return NULL;
    }
    s->hs = hs;
    hs->io = l->io;            /* the TLS 1.3 PSK suite of the hello that verified */
    hs->io.tx_limited = false; /* the cookie proved the address */
    l->io.tickets = NULL;      /* the tickets that hello carried go with it */
    tether_ticket_seen_t *tickets = hs->io.tickets;
    hs->io.tickets = NULL;
    dtls_io_auth_reset(&hs->io); /* identity comes from the handshake's result only */
    hs->io.tickets = tickets;
    hs->io.srv = srv;
    hs->io.dst = &s->peer;
    s->iface = hs->io.iface;
    s->ssl = l->ssl;
    s->peer = *from;
    s->cid_len = srv->conf.cid_len;
    memcpy(s->cid, l->cid, s->cid_len);
    wolfSSL_SetIOReadCtx(s->ssl, &hs->io);
    wolfSSL_SetIOWriteCtx(s->ssl, &hs->io);
    l->ssl = NULL;
    if (dtls_listener_reset(srv, l) < 0)
        l->ssl = NULL; /* retried at the next tick */
    size_t kl = tether_addr_key(from, key);
    /* A returning peer's new handshake: its old session keeps its CID but
     * no longer owns the address; hs_step closes it when this handshake
     * completes, hs_fail gives the address back if it fails. */
    tether_hnode_t *old = tether_hmap_find(&srv->by_addr, key, kl);
    if (old) {
        hs->displaced = container_of(old, tether_dtls_sess_t, by_addr)->id;
        tether_hmap_remove(&srv->by_addr, old);
    }
    tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    tether_hmap_insert(&srv->by_cid, &s->by_cid, s->cid, s->cid_len);
    s->id = ++srv->next_id;
    hs->io.sess = s->id;
    tether_hmap_insert(&srv->by_id, &s->by_id, &s->id, sizeof s->id);
    s->state = S_HANDSHAKE;
    hs->hs_started = now;
    s->last_rx = now;
    dtls_deadline(srv, now + srv->conf.handshake_flight_timeout_ms);
    tether_list_push(&srv->handshaking, &s->ln);
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

/* The oldest of a source's handshakes that has stalled, or NULL. At most
 * max_handshakes_per_source to look at. */
static tether_dtls_sess_t *source_stalled(const tether_dtls_srv_t *srv, const source_t *src,
                                          tether_time_t now)
{
    for (tether_dtls_sess_t *p = src->oldest; p; p = p->hs->src_next)
        if (stalled(srv, p, now))
            return p;
    return NULL;
}

/* A slot for a handshake from `from`, whose cookie has just proved its
 * address. A source at its cap gives up its own oldest stalled handshake,
 * so two busy sources cannot hold the table against a third; a prefix at
 * its cap (max_handshakes_per_prefix) waits for its handshakes to finish
 * or stall out; a full table gives up the handshake that has gone longest
 * without progress (the head of srv->handshaking, dtls_hs_step) if that
 * one has stalled. Otherwise the newcomer waits (TETHER_ELIMIT: its peer
 * resends the hello). Established sessions are never evicted. */
static int make_room(tether_dtls_srv_t *srv, const tether_addr_t *from, tether_time_t now)
{
    source_t *src = srv->conf.max_handshakes_per_source ? source_find(srv, from) : NULL;
    if (src && src->n >= srv->conf.max_handshakes_per_source) {
        tether_dtls_sess_t *own = source_stalled(srv, src, now);
        if (!own)
            return TETHER_ELIMIT;
        srv->stats.handshakes_evicted++;
        dtls_hs_fail(srv, own, TETHER_DTLS_WHY_EVICTED);
    }
    prefix_t *pre = srv->conf.max_handshakes_per_prefix ? prefix_find(srv, from) : NULL;
    if (pre && pre->n >= srv->conf.max_handshakes_per_prefix) {
        srv->stats.handshakes_prefix_limited++;
        return TETHER_ELIMIT;
    }
    bool full =
        srv->stats.handshakes_inflight >= srv->conf.max_handshakes ||
        srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions;
    tether_dtls_sess_t *oldest = sess_first(&srv->handshaking);
    if (full && oldest && stalled(srv, oldest, now)) {
        srv->stats.handshakes_evicted++;
        dtls_hs_fail(srv, oldest, TETHER_DTLS_WHY_EVICTED);
        full = false;
    }
    return full ? TETHER_ELIMIT : 0;
}

/* Whether a hello from `from` that returns a valid cookie could be
 * admitted now: its source's bucket has a token, and make_room would find
 * a slot. Only cookie-proven traffic fills buckets and the tables, so a
 * hello that fails this is dropped before wolfSSL checks its cookie,
 * without taking anything: a flood of cookie-valid hellos beyond the
 * per-source rate and caps costs a lookup each instead of a cookie check
 * and a fresh listener (the handshake flood test). */
static bool admissible(tether_dtls_srv_t *srv, const tether_addr_t *from, tether_time_t now)
{
    uint8_t key[9];
    if (!tether_rl_peek(&srv->rate, key, source_key(from, key), now)) {
        srv->stats.dropped_rate++;
        return false;
    }
    source_t *src = srv->conf.max_handshakes_per_source ? source_find(srv, from) : NULL;
    prefix_t *pre = srv->conf.max_handshakes_per_prefix ? prefix_find(srv, from) : NULL;
    tether_dtls_sess_t *oldest = sess_first(&srv->handshaking);
    bool full =
        srv->stats.handshakes_inflight >= srv->conf.max_handshakes ||
        srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions;
    if ((src && src->n >= srv->conf.max_handshakes_per_source && !source_stalled(srv, src, now)) ||
        (full && !(oldest && stalled(srv, oldest, now)))) {
        srv->stats.dropped_limit++;
        return false;
    }
    if (pre && pre->n >= srv->conf.max_handshakes_per_prefix) {
        srv->stats.handshakes_prefix_limited++;
        return false;
    }
    return true;
}

void dtls_new_handshake(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
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
    if (!tether_bucket_take(&srv->hellos, srv->conf.hello_rate, srv->conf.hello_rate / 10, now)) {
        srv->stats.hellos_over_budget++;
        return; /* before any cookie work: see conf.hello_rate */
    }
    if (srv->stats.handshakes_inflight + srv->stats.sessions_active >= srv->conf.max_sessions &&
        !srv->stats.handshakes_inflight) {
        srv->stats.dropped_limit++;
        return;
    }
    if (hello.has_cookie && !admissible(srv, from, now))
        return; /* its peer resends it */
    if (!srv->lst[0].ssl && dtls_listener_reset(srv, &srv->lst[0]) < 0)
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
        dtls_listener_reset(srv, l);
        return;
    }
    if (make_room(srv, from, now) < 0) {
        srv->stats.dropped_limit++;
        dtls_listener_reset(srv, l);
        return;
    }
    tether_dtls_sess_t *s = promote(srv, l, from, now);
    if (!s) {
        dtls_listener_reset(srv, l); /* it must not carry this peer's handshake on */
        return;
    }
    s->hs->io.in = NULL; /* the ClientHello was consumed by the listener */
    dtls_hs_step(srv, s, now);
}
