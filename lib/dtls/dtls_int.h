/* tether — the DTLS server's state as its files see it (internal to lib/dtls).
 *
 * One datagram's path through the files:
 *   session.c   tether_dtls_input: demultiplexes by CID (by_cid) or address
 *               (by_addr); established sessions read and send there, on
 *               wolfSSL or on the compact record layer (record.h);
 *   listener.c  anything else that is a ClientHello: the stateless cookie
 *               exchange (two listeners, current and previous secret),
 *               admission (per-source rate and caps), promotion to a
 *               handshaking session;
 *   handshake.c wolfSSL callbacks (I/O, PSK, certificates) and the
 *               handshake state machine up to an authenticated session;
 *   rebind.c    RFC 9146 moves of CID sessions and the 3x budget of an
 *               unvalidated address;
 *   ident.c     established sessions per identity;
 *   dtls.c      create/destroy, tick and next deadline, events, accessors;
 *   failover.c  SPEC S5: the transmit ceiling of compact sessions
 *               (txceil.h), checkpoints (checkpoint.h), adoption.
 * All of them share tether_dtls_srv; each function names what it owns.
 */
#ifndef TETHER_DTLS_INT_H
#define TETHER_DTLS_INT_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/random.h>

#include "dtls/checkpoint.h"
#include "dtls/ckseen.h"
#include "dtls/ratelimit.h"
#include "dtls/record.h"
#include "dtls/ticket.h"
#include "dtls/txceil.h"
#include "tether/dtls.h"
#include "tether/list.h"
#include "util/container.h"
#include "util/hmap.h"

#define CT_HANDSHAKE 22
#define CT_TLS12_CID 25
#define DTLS12_HDR 13
#define COOKIE_SECRET_LEN 32
/* Identities x our two TLS 1.3 suites x wolfSSL's two passes over a hello. */
#define PSK_LOOKUPS_MAX (TETHER_DTLS_MAX_PSK_IDENTITIES * 2 * 2)

enum sess_state { S_HANDSHAKE, S_ESTABLISHED, S_DEAD };
enum auth_kind { AUTH_NONE, AUTH_PSK, AUTH_X509 };

/* Per-WOLFSSL I/O context: the datagram being fed and where output goes.
 * (Widest fields first: it is in every session.) */
typedef struct {
    tether_dtls_srv_t *srv;
    const uint8_t *in;
    size_t in_len;
    const tether_addr_t *dst;
    const char *psk13_suite; /* TLS 1.3 suite for a PSK, from the ClientHello */
    /* Tickets the hello carried that opened (ticket.h); NULL when none. */
    tether_ticket_seen_t *tickets;
    uint64_t key_tag; /* AUTH_PSK: tether_creds_key_tag of the key it used */
    uint64_t sess;    /* id of the session it serves; 0: a stateless listener's */
    /* Stateless listener: what dst, not yet validated, may still be sent
     * in answer to the one hello being read (SPEC S10: 3x its bytes). */
    uint32_t tx_budget;
    tether_role_t role;
    char identity[TETHER_IDENTITY_MAX];
    uint8_t iface; /* the local interface dst talks to */
    bool tx_limited;
    uint8_t auth;        /* enum auth_kind: how identity was established */
    uint8_t psk_lookups; /* PSK callback calls for the hello being processed */
    bool x509_rejected;  /* a certificate was presented and refused */
} io_t;

/* An identity with established sessions (ident.c): the one copy of its
 * name they all point to (an idle tunnel is budgeted, SPEC S9), and their
 * count for conf.max_sessions_per_identity; exists only while it has
 * some. */
typedef struct {
    tether_hnode_t node; /* in srv->idents, keyed by a digest of name */
    uint32_t n;
    tether_list_t sessions; /* oldest first, via ident_ln */
    char name[];            /* NUL-terminated, its own length */
} ident_t;

/* What a session needs while wolfSSL runs it: during its handshake, and
 * after it when the compact record layer cannot take it (wolf_only).
 * Allocated with the session; freed with its WOLFSSL when the session
 * moves to the compact record layer (dtls_compact). */
typedef struct {
    io_t io;            /* the WOLFSSL's I/O context */
    uint64_t displaced; /* handshake: the established session whose address it took */
    tether_time_t hs_started;
    tether_time_t hs_deadline;
    struct tether_dtls_sess *src_next; /* handshake: its source's next, newer one */
    bool prefix_charged;               /* handshake: counted in its prefix_t */
} dtls_hs_t;

struct tether_dtls_sess {
    WOLFSSL *ssl; /* NULL once the session runs on `rec` */
    /* On wolfSSL (ssl set): hs; on the compact record layer: rec. */
    union {
        dtls_hs_t *hs;
        tether_rec_t rec;
    };
    /* Who authenticated, once established (the handshake's own view is in
     * hs->io until then). */
    ident_t *ident;   /* its identity's entry (ident.c): the name */
    uint64_t key_tag; /* AUTH_PSK: tether_creds_key_tag of the key it used */
    uint8_t role;     /* tether_role_t */
    uint8_t auth;     /* enum auth_kind */
    uint8_t iface;    /* the local interface its peer talks to */
    uint8_t cid_len;
    uint8_t cid[TETHER_CID_MAX];
    tether_addr_t peer;
    tether_hnode_t by_addr;
    tether_hnode_t by_cid;
    tether_hnode_t by_id;
    uint64_t id;        /* stable handle for layers above; never reused */
    uint64_t origin_id; /* adopted: its id at the node whose checkpoint it came from */
    uint8_t state;
    bool app_seen;           /* the peer sent application data: it has our final flight */
    bool wolf_only;          /* cannot run on the compact record layer (DTLS 1.3, suite) */
    bool unvalidated;        /* moved to an address that has not shown it is the peer's */
    uint32_t credit;         /* unvalidated: bytes we may still send there (3x received) */
    uint64_t max_seq;        /* newest authenticated (epoch << 48 | seq) */
    tether_txceil_t *ceil;   /* compact, conf.checkpoint: the transmit ceiling (txceil.h) */
    tether_time_t last_rx;   /* last datagram from the peer (handshake: last progress) */
    tether_lnode_t ln;       /* in handshaking, established (idle LRU) or dead */
    tether_lnode_t ident_ln; /* established with an identity: in its ident_t (ident.c) */
};

typedef struct {
    WOLFSSL *ssl;
    io_t io;
    uint8_t cid[TETHER_CID_MAX];
    uint8_t secret[COOKIE_SECRET_LEN];
} listener_t;

/* A source with handshakes in flight (SPEC S2: capped per source as well as
 * in total). Exists only while it has some, so it costs nothing per idle
 * session and at most one entry per handshake. */
typedef struct {
    tether_hnode_t node; /* in srv->sources, keyed by source_key() */
    uint32_t n;
    tether_dtls_sess_t *oldest, *newest; /* via src_next */
} source_t;

/* A network (IPv4 /24, IPv6 /48) with handshakes in flight, counted for
 * conf.max_handshakes_per_prefix; exists only while the count is not 0. */
typedef struct {
    tether_hnode_t node; /* in srv->prefixes */
    uint32_t n;
} prefix_t;

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
    tether_hmap_t sources;  /* of source_t */
    tether_hmap_t prefixes; /* of prefix_t */
    tether_hmap_t idents;   /* of ident_t */
    uint64_t next_id;
    tether_dtls_event_t *ev; /* events since the last clear */
    size_t nev, ev_cap;
    tether_time_t next_at;     /* lower bound of the next tick's work; exact after a tick */
    tether_list_t handshaking; /* least recent progress first (dtls_hs_step) */
    tether_list_t established;
    tether_list_t dead;          /* closed, freed by dtls_reap */
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
    tether_ckseen_t ckseen;     /* conf.checkpoint: highest checkpoint seen per CID */
    tether_ticket_keys_t tkt;   /* session ticket keys (ticket.h) */
    tether_time_t now;          /* of the current input or tick */
    uint32_t ceil_failed;       /* ceiling raises failed since the tick last looked */
    tether_rl_t rate;           /* new handshakes per source address */
    tether_rl_slot_t hellos;    /* node-wide hello budget (conf.hello_rate) */
    size_t ntx;
    tether_dgram_t tx[TETHER_DTLS_TXQ];
    uint8_t rxbuf[TETHER_DTLS_MAX_DGRAM];
};

#define sess_of(n) container_of(n, tether_dtls_sess_t, ln)
/* The first session of `l`, or NULL. */
static inline tether_dtls_sess_t *sess_first(const tether_list_t *l)
{
    return l->head ? sess_of(l->head) : NULL;
}
/* The session after `s` in its list, or NULL. */
static inline tether_dtls_sess_t *sess_next(const tether_dtls_sess_t *s)
{
    return s->ln.next ? sess_of(s->ln.next) : NULL;
}

/* The next tick has work at `at` or later (a lower bound is enough: a tick
 * that finds nothing due computes the exact next deadline). */
static inline void dtls_deadline(tether_dtls_srv_t *srv, tether_time_t at)
{
    if (at < srv->next_at)
        srv->next_at = at;
}

/* ---- dtls.c */
/* Records an event for the layers above. If the list cannot grow, the
 * oldest events are kept (events_dropped counts the rest). */
void dtls_event_push(tether_dtls_srv_t *srv, uint8_t kind, uint8_t why,
                     const tether_dtls_sess_t *s);

/* ---- listener.c */
/* Cookie secret of epoch `epoch` into out: 0 or TETHER_ECRYPTO. */
int dtls_cookie_secret(tether_dtls_srv_t *srv, uint64_t epoch, uint8_t out[COOKIE_SECRET_LEN]);
/* A fresh WOLFSSL (fresh CID) for a listener: 0 or TETHER_ECRYPTO. */
int dtls_listener_reset(tether_dtls_srv_t *srv, listener_t *l);
/* The cookie epoch of time `t` (wall clock or `now`). */
uint64_t dtls_epoch_of(const tether_dtls_srv_t *srv, tether_time_t t);
/* Current listener becomes previous; a new current one on epoch's secret:
 * 0 or TETHER_ECRYPTO. */
int dtls_rotate(tether_dtls_srv_t *srv, uint64_t epoch);
/* A datagram from an address without a session (or a ClientHello from an
 * established session's address): cookie exchange, admission, handshake. */
void dtls_new_handshake(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
                        const uint8_t *buf, size_t len, tether_time_t now);
/* Takes a handshaking session off its source's count. */
void dtls_source_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);

/* ---- ident.c */
/* The identity of an established session ("" before). */
const char *dtls_sess_name(const tether_dtls_sess_t *s);
/* Gives established session `s` its identity `name` (s->ident) and counts
 * it; closes that identity's oldest sessions beyond
 * conf.max_sessions_per_identity. 0, TETHER_EINVAL (empty or too long a
 * name) or TETHER_ENOMEM: the session must not be used then. */
int dtls_ident_add(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const char *name);
/* Takes a closing session off its identity (s->ident becomes NULL). */
void dtls_ident_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);

/* ---- handshake.c */
/* Installs the wolfSSL callbacks, versions, suites and X.509 material on a
 * new context: 0, TETHER_ECRYPTO or TETHER_ECONFIG (a file unusable). */
int dtls_ctx_setup(WOLFSSL_CTX *ctx, const tether_dtls_conf_t *conf);
/* Forgets what one handshake learnt about its peer (and the tickets its
 * hello carried). */
void dtls_io_auth_reset(io_t *io);
/* Drives a handshake one step with the datagram in s->io. */
void dtls_hs_step(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, tether_time_t now);
/* Gives a handshake up (event HANDSHAKE_FAILED, reason `why`). */
void dtls_hs_fail(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why);
/* Handshake timeouts and retransmissions due at `now`; lowers next_at. */
void dtls_hs_tick(tether_dtls_srv_t *srv, tether_time_t now);

/* ---- session.c */
void dtls_sess_close(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t why);
/* Frees the sessions closed during the previous call. */
void dtls_reap(tether_dtls_srv_t *srv);
/* Queues a just-established session for the compact record layer at `due`. */
void dtls_settle_push(tether_dtls_srv_t *srv, uint64_t id, tether_time_t due);
/* Moves an established DTLS 1.2 session off wolfSSL, when it can. */
void dtls_compact(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);
/* Ends the read of the previous datagram (see tether_dtls_input). */
void dtls_release_reading(tether_dtls_srv_t *srv);

/* Seals one record of a compact session into the transmit queue (the
 * ceiling already checked): 0 or a negative TETHER_E*. */
int dtls_compact_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint8_t type,
                      const uint8_t *data, size_t len);

/* ---- failover.c */
/* Puts a just-compacted CID session under a transmit ceiling from `next`
 * (conf.checkpoint; nothing otherwise). */
void dtls_ceil_start(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t next);
/* Queues EV_CEILING when the session's ceiling should be raised now. */
void dtls_ceil_kick(tether_dtls_srv_t *srv, tether_dtls_sess_t *s);
/* Tick: failed raises whose pause is over ask again; lowers next_at. */
void dtls_ceil_retry(tether_dtls_srv_t *srv);
/* Frees the session's ceiling and the records it held. */
void dtls_ceil_free(tether_dtls_sess_t *s);

/* ---- rebind.c */
/* An authenticated datagram of `len` bytes from the session's address. */
void dtls_credit_rx(tether_dtls_sess_t *s, size_t len);
/* Whether `n` bytes may go to the session's address now; charges them. */
bool dtls_credit_tx(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, size_t n);
/* After an authenticated record numbered `rn`: a CID session follows the
 * datagram being read to its source when `rn` is the newest yet. */
void dtls_note_record(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, uint64_t rn);

#endif
