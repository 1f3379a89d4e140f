/* Failover (SPEC S5): the transmit-sequence ceiling of compact sessions
 * (txceil.h), their checkpoints (checkpoint.h) and adoption of another
 * node's session. Public contract in tether/dtls.h ("Failover"); what is
 * left to the layers above (store I/O, membership, adoption election) is
 * said there too. */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>

#include "dtls/dtls_int.h"

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
    dtls_ceil_kick(srv, s);
    return 0;
}

void dtls_ceil_start(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t next)
{
    ceil_start_rc(srv, s, next);
}

void dtls_ceil_free(tether_dtls_sess_t *s)
{
    if (!s->ceil)
        return;
    tether_txceil_destroy(s->ceil);
    free(s->ceil);
    s->ceil = NULL;
}

/* Asks the layer above for a raise when one is due. */
void dtls_ceil_kick(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    uint64_t c;
    if (s->state != S_ESTABLISHED || !tether_txceil_want(s->ceil, s->rec.tx_seq, srv->now, &c))
        return;
    s->ceil->retry_at = 0;
    tether_txceil_started(s->ceil, c);
    dtls_event_push(srv, TETHER_DTLS_EV_CEILING, 0, s);
}

/* Tick: failed raises whose pause is over ask again. One pass over the
 * established sessions, only while some raise may have failed
 * (ceil_failed counts failures since the last pass, then those left). */
void dtls_ceil_retry(tether_dtls_srv_t *srv)
{
    srv->ceil_failed = 0;
    for (tether_dtls_sess_t *s = sess_first(&srv->established); s; s = sess_next(s)) {
        if (!s->ceil || !s->ceil->retry_at)
            continue;
        dtls_ceil_kick(srv, s);
        if (s->ceil->retry_at) {
            srv->ceil_failed++;
            dtls_deadline(srv, s->ceil->retry_at);
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

uint64_t tether_dtls_sess_ceiling(const tether_dtls_sess_t *s)
{
    return s->ceil ? s->ceil->acked : 0;
}

uint64_t tether_dtls_sess_origin(const tether_dtls_sess_t *s)
{
    return s->origin_id;
}

bool tether_dtls_sess_checkpointed(const tether_dtls_sess_t *s)
{
    return s->ceil != NULL;
}

uint64_t tether_dtls_sess_rx_next(const tether_dtls_sess_t *s)
{
    return s->rec.rx_next;
}

int tether_dtls_record_cid(const tether_dtls_srv_t *srv, const uint8_t *buf, size_t len,
                           const uint8_t **cid)
{
    const size_t cl = srv->conf.cid_len;
    if (len < 1 || !(buf[0] == CT_TLS12_CID || ((buf[0] & 0xe0) == 0x20 && (buf[0] & 0x10))))
        return TETHER_ENOTFOUND;
    const uint8_t *c = wolfSSL_dtls_cid_parse(buf, (unsigned)len, (unsigned)cl);
    if (!c)
        return TETHER_ENOTFOUND;
    *cid = c;
    return tether_hmap_find(&srv->by_cid, c, cl) ? 1 : 0;
}

int tether_dtls_sess_release(tether_dtls_srv_t *srv, uint64_t id)
{
    tether_dtls_sess_t *s = tether_dtls_sess_find(srv, id);
    if (!s)
        return TETHER_ENOTFOUND;
    /* No close_notify: the peer's session goes on elsewhere. */
    dtls_sess_close(srv, s, TETHER_DTLS_WHY_HANDED_OVER);
    return 0;
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
        dtls_compact_send(srv, s, type, buf, len);
    wc_ForceZero(buf, sizeof buf);
    if (s->state == S_ESTABLISHED)
        dtls_ceil_kick(srv, s);
    return 0;
}

int tether_dtls_ceiling_failed(tether_dtls_srv_t *srv, uint64_t id)
{
    tether_dtls_sess_t *s = ceiled(srv, id);
    if (!s)
        return TETHER_ENOTFOUND;
    srv->ceil_failed++;
    tether_txceil_failed(s->ceil, srv->now);
    dtls_deadline(srv, s->ceil->retry_at);
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
                           const tether_dtls_ckpt_bind_t *b, uint8_t *out, size_t cap, size_t *len)
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
    c.auth = s->auth == AUTH_X509 ? TETHER_CKPT_AUTH_X509 : TETHER_CKPT_AUTH_PSK;
    c.role = (tether_role_t)s->role;
    c.key_tag = s->auth == AUTH_X509 ? 0 : s->key_tag;
    c.link_id = s->id;
    snprintf(c.identity, sizeof c.identity, "%s", dtls_sess_name(s));
    c.peer = s->peer;
    c.unvalidated = s->unvalidated;
    tether_ckpt_bind_t bind;
    bind_of(b, s->cid, s->cid_len, &bind);
    int rc = tether_ckpt_seal(&srv->ckpt_key, &srv->rng, &bind, &c, out, cap, len);
    tether_ckpt_wipe(&c);
    if (rc == 0)
        tether_ckseen_note(&srv->ckseen, s->cid, s->cid_len, b->version, b->seq_ceiling);
    return rc;
}

void tether_dtls_ckpt_seen(tether_dtls_srv_t *srv, const uint8_t *cid, size_t cid_len,
                           uint64_t version, uint64_t seq_ceiling)
{
    if (srv->conf.checkpoint)
        tether_ckseen_note(&srv->ckseen, cid, cid_len, version, seq_ceiling);
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
    /* Older than a checkpoint of this CID seen before: a record rolled
     * back in the store (ckseen.h); its ceiling may be below what was
     * sent since. */
    rc = TETHER_ECONFLICT;
    if (tether_ckseen_stale(&srv->ckseen, cid, cid_len, b->version, b->seq_ceiling))
        goto refused;
    tether_ckpt_t c;
    tether_ckpt_bind_t bind;
    bind_of(b, cid, cid_len, &bind);
    if ((rc = tether_ckpt_open(&srv->ckpt_key, &bind, blob, len, &c)) < 0)
        goto refused;
    /* Credentials may have changed since the handshake (SPEC S7): the
     * same rule as tether_dtls_set_creds, the PSK's key tag included, so
     * a key rotated while the owner died ends the session here too. */
    tether_role_t role;
    uint64_t tag = 0;
    rc = c.auth == TETHER_CKPT_AUTH_X509 ? tether_creds_x509(srv->creds, c.identity, &role)
                                         : tether_creds_role(srv->creds, c.identity, &role);
    if (rc == 0 && c.auth == TETHER_CKPT_AUTH_PSK &&
        tether_creds_key_tag(srv->creds, c.identity, &tag) < 0)
        rc = TETHER_ENOTFOUND;
    if (rc < 0 || role != c.role || tag != c.key_tag) {
        rc = TETHER_ENOTFOUND;
        goto wipe;
    }
    rc = TETHER_ENOMEM;
    tether_dtls_sess_t *s = calloc(1, sizeof *s);
    if (!s)
        goto wipe;
    if ((rc = dtls_ident_add(srv, s, c.identity)) < 0) {
        free(s); /* linked nowhere yet */
        goto wipe;
    }
    s->iface = iface;
    s->auth = c.auth == TETHER_CKPT_AUTH_X509 ? AUTH_X509 : AUTH_PSK;
    s->role = (uint8_t)c.role;
    s->key_tag = c.key_tag; /* tether_dtls_set_creds compares it */
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
    s->origin_id = c.link_id;
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(&s->peer, key);
    if (!tether_hmap_find(&srv->by_addr, key, kl))
        tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    tether_hmap_insert(&srv->by_cid, &s->by_cid, s->cid, s->cid_len);
    tether_hmap_insert(&srv->by_id, &s->by_id, &s->id, sizeof s->id);
    tether_list_push(&srv->established, &s->ln);
    srv->stats.sessions_active++;
    srv->stats.sessions_compact++;
    dtls_deadline(srv, now + srv->conf.idle_timeout_ms);
    if ((rc = ceil_start_rc(srv, s, start)) < 0) {
        dtls_sess_close(srv, s, TETHER_DTLS_WHY_LOCAL); /* freed at the next call */
        goto wipe;
    }
    srv->stats.sessions_adopted++;
    tether_ckseen_note(&srv->ckseen, cid, cid_len, b->version, b->seq_ceiling);
    tether_ckpt_wipe(&c);
    *out = s;
    return 0;

wipe:
    tether_ckpt_wipe(&c);
refused:
    srv->stats.adoptions_refused++;
    return rc;
}
