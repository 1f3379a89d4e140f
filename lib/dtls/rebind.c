/* CID sessions that follow their peer, and address validation (internal
 * to lib/dtls).
 *
 * Contract: after an authenticated record newer than any seen, a session
 * reached by CID moves to the datagram's source (RFC 9146 §6, RFC 9147 §9;
 * older records never move it) and raises EV_MOVED. Until the layer above
 * validates the new address (tether_dtls_sess_validate), sends there are
 * limited to 3x the bytes received from it (SPEC S10).
 */
#include "dtls/dtls_int.h"

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
    s->iface = iface;
    if (s->ssl)
        s->hs->io.iface = iface; /* wolfSSL's own sends (handshake.c) */
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(to, key);
    tether_hmap_remove(&srv->by_addr, &s->by_addr);
    s->peer = *to;
    if (!tether_hmap_find(&srv->by_addr, key, kl))
        tether_hmap_insert(&srv->by_addr, &s->by_addr, key, kl);
    s->unvalidated = true;
    s->credit = 0; /* the datagram that moved it adds its share (credit_rx) */
    srv->stats.address_changes++;
    dtls_event_push(srv, TETHER_DTLS_EV_MOVED, 0, s);
}

/* An authenticated datagram of `len` bytes from the session's address. */
void dtls_credit_rx(tether_dtls_sess_t *s, size_t len)
{
    if (!s->unvalidated)
        return;
    uint64_t c = (uint64_t)s->credit + 3 * (uint64_t)len;
    s->credit = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

/* Whether `n` bytes may go to the session's address now; charges them. */
bool dtls_credit_tx(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, size_t n)
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
void dtls_note_record(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t rn)
{
    if (rn <= s->max_seq)
        return;
    s->max_seq = rn;
    if (srv->reading_by_cid &&
        (!tether_addr_equal(&srv->reading_from, &s->peer) || srv->reading_iface != s->iface))
        sess_move(srv, s, &srv->reading_from, srv->reading_iface);
}

void tether_dtls_sess_validate(tether_dtls_sess_t *s)
{
    s->unvalidated = false;
    s->credit = 0;
}

bool tether_dtls_sess_validated(const tether_dtls_sess_t *s)
{
    return !s->unvalidated;
}
