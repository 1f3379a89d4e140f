/* Established DTLS sessions: the datagram path (internal to lib/dtls).
 *
 * Contract: tether_dtls_input demultiplexes a datagram by CID (hash
 * lookup, RFC 9146) when it carries one, by address otherwise; an unknown
 * CID is dropped without an alert (RFC 9146 §6). Datagrams for no session
 * go to listener.c, for a handshaking one to handshake.c. Established
 * sessions read and send here, on wolfSSL (DTLS 1.3, or until settled) or
 * on the compact record layer (record.h), keep the idle LRU and end
 * through dtls_sess_close; closed sessions are freed at the start of the
 * next call (the lifetime rule of tether/dtls.h). rebind.c decides moves.
 */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "dtls/dtls_int.h"
#include "dtls/wolfrec.h"
#include "util/container.h"

void dtls_sess_close(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why)
{
    if (s->state == S_DEAD)
        return;
    tether_hmap_remove(&srv->by_addr, &s->by_addr);
    if (s->cid_len)
        tether_hmap_remove(&srv->by_cid, &s->by_cid);
    if (s->state == S_HANDSHAKE) {
        tether_list_del(&srv->handshaking, &s->ln);
        dtls_source_del(srv, s);
        srv->stats.handshakes_inflight--;
    } else {
        tether_list_del(&srv->established, &s->ln);
        dtls_ident_del(srv, s);
        srv->stats.sessions_active--;
        if (!s->ssl)
            srv->stats.sessions_compact--;
        dtls_event_push(srv, TETHER_DTLS_EV_CLOSED, why, s);
    }
    tether_hmap_remove(&srv->by_id, &s->by_id);
    s->state = S_DEAD;
    srv->stats.sessions_closed++;
    tether_list_push(&srv->dead, &s->ln);
}

/* Frees sessions closed during the previous call: never inside the call
 * that still holds pointers to them. */
void dtls_reap(tether_dtls_srv_t *srv)
{
    while (srv->dead.head) {
        tether_dtls_sess_t *s = sess_first(&srv->dead);
        tether_list_del(&srv->dead, &s->ln);
        if (s->ssl) {
            wolfSSL_free(s->ssl);
            dtls_ticket_seen_free(&s->hs->io.tickets);
            free(s->hs);
        } else
            tether_rec_wipe(&s->rec);
        dtls_ceil_free(s);
        free(s);
    }
}

/* Queues a session that just completed its handshake for the move to the
 * compact record layer at `due`. If the queue cannot grow, the session
 * moves after its next application record, or stays on wolfSSL. */
void dtls_settle_push(tether_dtls_srv_t *srv, uint64_t id, tether_time_t due)
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
    dtls_deadline(srv, due);
}

/* Moves an established DTLS 1.2 session from wolfSSL to the compact record
 * layer and frees its WOLFSSL. Only between datagrams, when wolfSSL holds
 * no unread record; a session that cannot move is marked and left alone. */
void dtls_compact(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    if (!s->ssl || s->wolf_only || s->state != S_ESTABLISHED)
        return;
    tether_rec_t rec; /* s->rec shares its bytes with s->hs */
    int rc = tether_wolf_export_rec(s->ssl, &rec);
    if (rc == TETHER_EAGAIN)
        return;
    if (rc < 0) {
        s->wolf_only = true;
        tether_rec_wipe(&rec);
        return;
    }
    wolfSSL_free(s->ssl);
    s->ssl = NULL;
    dtls_ticket_seen_free(&s->hs->io.tickets);
    free(s->hs);
    s->rec = rec;
    tether_rec_wipe(&rec);
    srv->stats.sessions_compact++;
    dtls_ceil_start(srv, s, s->rec.tx_seq);
}

/* Ends the read of the previous datagram: the session it was for moves to
 * the compact layer if it has shown it holds our final flight. Called
 * before sessions are reaped, so `reading` is still valid memory. */
void dtls_release_reading(tether_dtls_srv_t *srv)
{
    tether_dtls_sess_t *s = srv->reading;
    srv->reading = NULL;
    srv->rd_off = srv->rd_len = 0;
    if (s && s->ssl && s->app_seen)
        dtls_compact(srv, s);
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
            dtls_note_record(srv, s, rn);
        s->app_seen = true;
        rx->sess = s;
        rx->data = srv->rxbuf;
        rx->len = (size_t)n;
        return true;
    }
    int err = wolfSSL_get_error(s->ssl, n);
    if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE)
        dtls_sess_close(srv, s, TETHER_DTLS_WHY_PEER); /* close_notify or a fatal alert */
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
        int rc =
            tether_rec_open(&s->rec, &srv->aes, s->cid, s->cid_len, srv->rdbuf + srv->rd_off,
                            srv->rd_len - srv->rd_off, &used, srv->rxbuf, sizeof srv->rxbuf, &in);
        srv->rd_off = rc == TETHER_EPROTO ? srv->rd_len : srv->rd_off + used;
        if (rc < 0) {
            srv->stats.records_rejected++;
            continue;
        }
        dtls_note_record(srv, s, in.number);
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
            dtls_sess_close(srv, s, TETHER_DTLS_WHY_PEER);
    }
    return false;
}

/* A plaintext ClientHello (epoch 0), the start of a new handshake. */
static bool is_client_hello(const uint8_t *b, size_t len)
{
    return len > DTLS12_HDR && b[0] == CT_HANDSHAKE && b[3] == 0 && b[4] == 0 && b[DTLS12_HDR] == 1;
}

/* An authenticated datagram of `len` bytes from `from` was read for `s`:
 * its address's send budget grows (rebind.c), it moves to the young end
 * of the idle LRU, and its remaining records are read by input_more. */
static void sess_heard(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const tether_addr_t *from,
                       size_t len, tether_time_t now)
{
    if (tether_addr_equal(from, &s->peer))
        dtls_credit_rx(s, len);
    s->last_rx = now;
    tether_list_del(&srv->established, &s->ln);
    tether_list_push(&srv->established, &s->ln);
    srv->reading = s;
}

int tether_dtls_input(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
                      const uint8_t *buf, size_t len, tether_time_t now, tether_dtls_rx_t *rx)
{
    dtls_release_reading(srv);
    dtls_reap(srv);
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
        dtls_new_handshake(srv, iface, from, buf, len, now);
        return 0;
    }
    if (s->state == S_HANDSHAKE) { /* last_rx moves only on progress (dtls_hs_step) */
        s->hs->io.in = buf;
        s->hs->io.in_len = len;
        dtls_hs_step(srv, s, now);
        s->hs->io.in = NULL;
        return 0;
    }
    /* A device back behind the same NAT binding, starting over: the
     * cookie exchange comes first, the old session stays until then. */
    if (!by_cid && is_client_hello(buf, len)) {
        dtls_new_handshake(srv, iface, from, buf, len, now);
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
        sess_heard(srv, s, from, len, now);
        return 0;
    }
    s->hs->io.in = buf;
    s->hs->io.in_len = len;
    /* DTLS 1.2: the record number is in the clear; use it when the datagram
     * holds exactly one record (wolfSSL's own check covers the rest). */
    uint64_t seq = 0;
    bool single =
        buf[0] != CT_HANDSHAKE && (buf[0] & 0xe0) != 0x20 && single_record_seq(buf, len, cl, &seq);
    if (!read_record(srv, s, rx)) {
        s->hs->io.in = NULL;
        return 0;
    }
    s->hs->io.in = NULL;
    if (single) /* authenticated by the read above */
        dtls_note_record(srv, s, seq);
    sess_heard(srv, s, from, len, now);
    return 0;
}

bool tether_dtls_input_more(tether_dtls_srv_t *srv, tether_dtls_rx_t *rx)
{
    tether_dtls_sess_t *s = srv->reading;
    if (!s || s->state != S_ESTABLISHED)
        return false;
    return s->ssl ? read_record(srv, s, rx) : compact_read(srv, s, rx);
}

int dtls_compact_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t type,
                      const uint8_t *data, size_t len)
{
    if (srv->ntx == TETHER_DTLS_TXQ) {
        srv->stats.tx_dropped++;
        return TETHER_ENOSPC;
    }
    tether_dgram_t *d = &srv->tx[srv->ntx];
    int n = tether_rec_seal(&s->rec, &srv->aes, type, data, len, d->data, sizeof d->data);
    if (n == TETHER_ELIMIT) /* sequence numbers exhausted: it can never send again */
        dtls_sess_close(srv, s, TETHER_DTLS_WHY_LOCAL);
    if (n < 0)
        return n;
    if (!dtls_credit_tx(srv, s, (size_t)n)) /* a skipped record number is harmless */
        return TETHER_ELIMIT;
    d->to = s->peer;
    d->sess = s->id;
    d->iface = s->iface;
    d->len = (uint16_t)n;
    srv->ntx++;
    if (s->ceil)
        dtls_ceil_kick(srv, s);
    return 0;
}

int tether_dtls_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const uint8_t *data, size_t len)
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
                dtls_ceil_kick(srv, s);
                return rc;
            }
            if (rc < 0) { /* sequence numbers exhausted */
                dtls_sess_close(srv, s, TETHER_DTLS_WHY_LOCAL);
                return rc;
            }
        }
        return dtls_compact_send(srv, s, TETHER_REC_CT_APP, data, len);
    }
    /* DTLS 1.3 record: unified header with a CID, sequence, length, tag. */
    if (s->unvalidated && !dtls_credit_tx(srv, s, len + 1 + TETHER_CID_MAX + 4 + 16 + 1))
        return TETHER_ELIMIT;
    s->hs->io.dst = &s->peer;
    int n = wolfSSL_write(s->ssl, data, (int)len);
    return n == (int)len ? 0 : TETHER_EIO;
}
