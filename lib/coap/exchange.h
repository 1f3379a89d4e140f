/* tether — CoAP message layer state (RFC 7252 §4), sans-I/O.
 *
 * Per-peer message IDs (with the lifetime rule: a MID is not reused toward
 * the same peer within EXCHANGE_LIFETIME), duplicate detection of received
 * CON/NON messages with the cached reply, reliable transmission of our own
 * CON messages (randomised exponential back-off), and the outbox of
 * datagrams the caller must send. Time is passed in.
 */
#ifndef TETHER_CX_H
#define TETHER_CX_H

#include "tether/addr.h"
#include "tether/common.h"

#define TETHER_CX_MAX_MSG TETHER_MSG_MAX

typedef enum {
    TETHER_CX_ACKED = 1, /* our CON was acknowledged (empty or piggybacked ACK) */
    TETHER_CX_RESET,     /* the peer answered RST */
    TETHER_CX_TIMEOUT,   /* MAX_RETRANSMIT reached without ACK */
    TETHER_CX_LINK_DOWN, /* the link ended while the CON was outstanding */
} tether_cx_event_t;

typedef struct {
    uint32_t ack_timeout_ms;       /* ACK_TIMEOUT, default 2000 */
    uint32_t ack_random_permille;  /* ACK_RANDOM_FACTOR * 1000, default 1500 */
    uint8_t max_retransmit;        /* default 4 */
    uint32_t exchange_lifetime_ms; /* default 247000 */
    uint32_t dedup_max;            /* bound on remembered received MIDs */
    /* Of those, what one peer (link) may hold, 0 = no quota: a peer at its
     * quota forgets its own oldest, so a flood of fresh MIDs from one peer
     * cannot push another peer's entries out of the shared FIFO (their
     * retransmitted POSTs would then run twice). */
    uint32_t dedup_per_peer;
    uint64_t seed;                 /* randomises first MIDs and back-off */
} tether_cx_conf_t;

typedef struct tether_cx tether_cx_t;

/* Whoever waits for the outcome of a CON embeds a waiter (callback and
 * owner) and passes it to tether_cx_send_con; the exchange layer calls
 * done() exactly once when the CON ends, after forgetting the
 * transmission, so the callback may send again or free the waiter's
 * container. Lifetime: the waiter must stay valid while its CON is
 * outstanding; an owner that goes away first calls tether_cx_cancel, after
 * which done() is never called. */
typedef struct tether_cx_waiter tether_cx_waiter_t;
struct tether_cx_waiter {
    void (*done)(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now);
    void *owner;
};

void tether_cx_conf_defaults(tether_cx_conf_t *c);
/* 0 or TETHER_ENOMEM. */
int tether_cx_create(const tether_cx_conf_t *conf, tether_cx_t **out);
/* Frees everything; waiters of outstanding CONs are not called. */
void tether_cx_destroy(tether_cx_t *cx);

/* A fresh MID toward `link`. TETHER_EAGAIN when 65535 MIDs were taken
 * toward the peer within the last EXCHANGE_LIFETIME (counted per slot of
 * a 32nd of it once the peer is busy), so the next one might reuse a MID
 * within the lifetime (RFC 7252 §4.4): the message cannot be sent before
 * tether_cx_mid_available_at. */
int tether_cx_next_mid(tether_cx_t *cx, const tether_link_t *link, tether_time_t now,
                       uint16_t *mid);
/* The earliest time a MID toward `link` can be taken (`now` when one can
 * be now). */
tether_time_t tether_cx_mid_available_at(tether_cx_t *cx, const tether_link_t *link,
                                         tether_time_t now);

/* Duplicate detection for a received CON or NON (RFC 7252 §4.5). Returns
 * false for a new message (now remembered), true for a duplicate: its
 * cached reply, if any, has been queued again for sending. */
bool tether_cx_seen(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, tether_time_t now);
/* Remembers the reply sent for a received message (ACK, RST or response),
 * so a duplicate gets the same answer, and queues it for sending. */
void tether_cx_reply(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, const uint8_t *buf,
                     size_t len);

/* Queues a datagram to send once, unreliably. 0, TETHER_EINVAL (too
 * large) or TETHER_ENOMEM. */
int tether_cx_emit(tether_cx_t *cx, const tether_link_t *link, const uint8_t *buf, size_t len);
/* Sends an encoded CON reliably (its MID from tether_cx_next_mid); `w`
 * (NULL: nobody waits) hears the outcome. 0, or TETHER_EINVAL, TETHER_EEXIST
 * (that MID is outstanding toward `link`) or TETHER_ENOMEM, and then
 * nothing was sent and `w` is not called. */
int tether_cx_send_con(tether_cx_t *cx, const tether_link_t *link, const uint8_t *buf, size_t len,
                       tether_cx_waiter_t *w, tether_time_t now);
/* Stops retransmitting the CON with `mid` to `link`; its waiter is not
 * called. A no-op when no such CON is outstanding. */
void tether_cx_cancel(tether_cx_t *cx, const tether_link_t *link, uint16_t mid);
/* An ACK or RST for `mid` arrived from `link`; completes its waiter.
 * Returns false when no such CON is outstanding. */
bool tether_cx_on_ack(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, bool rst,
                      tether_time_t now);
/* The link ended (DTLS session closed): the waiters of outstanding CONs
 * hear LINK_DOWN and its per-peer state is forgotten. */
void tether_cx_link_down(tether_cx_t *cx, const tether_link_t *link, tether_time_t now);

/* Retransmissions and expiry of remembered state. */
void tether_cx_tick(tether_cx_t *cx, tether_time_t now);
/* Earliest time tether_cx_tick has work, or UINT64_MAX. */
tether_time_t tether_cx_next_deadline(const tether_cx_t *cx);

size_t tether_cx_out_count(const tether_cx_t *cx);
const tether_out_t *tether_cx_out_get(const tether_cx_t *cx, size_t i);
void tether_cx_out_clear(tether_cx_t *cx);

typedef struct {
    uint64_t retransmissions;
    uint64_t timeouts;
    uint64_t duplicates;
    uint64_t dedup_entries;
    uint64_t outstanding;
    uint64_t mid_throttled;
    uint64_t dedup_quota_dropped; /* entries a peer at dedup_per_peer gave up */
} tether_cx_stats_t;
const tether_cx_stats_t *tether_cx_stats(const tether_cx_t *cx);

#endif
