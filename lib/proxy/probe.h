/* tether — return-routability probes of moved sessions (internal to
 * lib/; SPEC S10, security issue 11 item 3), sans-I/O.
 *
 * A CID session that follows its peer to a new address (DTLS EV_MOVED,
 * RFC 9146 §6) may only send 3x what arrived from there until the address
 * is validated (lib/dtls/rebind.c): otherwise a credential holder could
 * spoof a victim's address on one record and aim notifications and
 * retransmissions at it. The probe validates it, in the manner of
 * draft-ietf-tls-dtls-rrc but at the CoAP layer every device already has:
 * a CoAP ping (an empty CON, RFC 7252 §4.3) goes down the session to the
 * new address with an unpredictable Message ID (from a CSPRNG, never the
 * sequential MID counter, so an off-path sender cannot guess it); only the
 * matching RST, authenticated in that session and coming from that
 * address, shows the peer receives there, and then the caller calls
 * tether_dtls_sess_validate. A moved session that only receives is
 * validated the same way: the probe needs nothing from the application.
 *
 * Wire: ping = 0x40 (ver 1, CON, TKL 0), code 0.00, MID; answer = 0x70
 * (ver 1, RST, TKL 0), code 0.00, the same MID.
 *
 * Bounds: one probe per session; a new move restarts it for the new
 * address with a fresh MID. It goes out at 0, 2, 6 and 14 s (the RFC 7252
 * §4.2 back-off with ACK_TIMEOUT 2 s, no random factor) and is given up
 * at 30 s (the address stays limited to 3x until the next move). Every try
 * is a new ping with a fresh MID, not a retransmission: a MID the device
 * saw lately from the node would make it answer from its dedup cache
 * rather than with RST. An empty RST with another MID from the probed
 * address burns the current MID until the next try, so guessing costs one
 * try per retry interval. Guesses are counted for the session's
 * identity, not for one probe or one session: a new move (which the
 * credential holder makes at will, one spoofed record each) restarts the
 * tries, and a new handshake a session, but neither the count. After
 * TETHER_PROBE_GUESSES wrong answers within TETHER_PROBE_GUESS_WINDOW_MS,
 * no session of that identity is probed or validated until the window
 * has passed (they stay at 3x). Otherwise move, guess, move away and back
 * would try all 2^16 MIDs in a few seconds, and a session per 8 guesses
 * in a minute: now a guesser gets 8 in 2^16 per hour.
 *
 * Lifetimes: the table owns its entries (at most one per session, and
 * one per identity that gave a wrong answer in the window); the caller
 * forgets a session's probe when the session closes. Nothing here reads
 * a clock or sends: the `send` callback queues a ping, `random` fills
 * MIDs.
 */
#ifndef TETHER_PROXY_PROBE_H
#define TETHER_PROXY_PROBE_H

#include <stdbool.h>

#include "tether/addr.h"
#include "tether/hmap.h"
#include "tether/list.h"
#include "tether/pipeline.h"

#define TETHER_PROBE_TRIES 4
#define TETHER_PROBE_FIRST_MS 2000u
/* Wrong answers an identity may give in a window before its sessions are
 * no longer validated (above). */
#define TETHER_PROBE_GUESSES 8
#define TETHER_PROBE_GUESS_WINDOW_MS 3600000u

typedef struct {
    /* Queues ping[4] on session `sess` (toward its current address). */
    void (*send)(void *ctx, uint64_t sess, const uint8_t ping[4]);
    /* Fills buf[n] from a CSPRNG: 0, or <0 (the probe is not sent). */
    int (*random)(void *ctx, void *buf, size_t n);
    void *ctx;
} tether_probe_conf_t;

typedef struct {
    tether_probe_conf_t conf;
    tether_hmap_t by_sess;
    tether_list_t all;
    tether_hmap_t guessers; /* identities with wrong answers in their window */
    tether_list_t guessers_by_age;
    uint64_t seed;
    tether_rrc_stats_t stats;
} tether_probes_t;

/* 0 or TETHER_ENOMEM. */
int tether_probes_init(tether_probes_t *t, const tether_probe_conf_t *conf, uint64_t seed);
void tether_probes_free(tether_probes_t *t);

/* Session `sess` of `identity` (NULL: none) moved to `to`: probe it
 * (now, and again on the back-off above). 0, TETHER_ENOMEM,
 * TETHER_ECRYPTO (no random MID) or TETHER_ELIMIT (the identity spent
 * its guesses: no probe). */
int tether_probe_start(tether_probes_t *t, uint64_t sess, const char *identity,
                       const tether_addr_t *to, tether_time_t now);
/* A record msg[len] authenticated in session `sess`, from `from`: true
 * when it is the RST answering the session's probe from the probed
 * address (the probe ends; the caller validates the address and does not
 * pass the RST on). */
bool tether_probe_answer(tether_probes_t *t, uint64_t sess, const tether_addr_t *from,
                         const uint8_t *msg, size_t len, tether_time_t now);
/* The session closed: its probe (if any) ends. */
void tether_probe_forget(tether_probes_t *t, uint64_t sess);
/* Resends due probes; drops those out of tries (counted as given up). */
void tether_probe_tick(tether_probes_t *t, tether_time_t now);
/* When tether_probe_tick next has work, UINT64_MAX: none. */
tether_time_t tether_probe_next_deadline(const tether_probes_t *t);

#endif
