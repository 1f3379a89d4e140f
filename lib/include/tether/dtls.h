/* tether — device/client-facing DTLS termination (sans-I/O over wolfSSL).
 *
 * The caller feeds datagrams with `now` and drains the transmit queue;
 * nothing here touches a socket or a clock. DTLS 1.2 (RFC 6347) with
 * Connection ID (RFC 9146) and DTLS 1.3 (RFC 9147); PSK and ECDSA P-256
 * X.509 client certificates (identity = subject CN, role from creds).
 *
 * Lifetimes: a session pointer handed out in tether_dtls_rx_t stays valid
 * until the next call to tether_dtls_input() or tether_dtls_tick(); closed
 * sessions are freed at the start of those calls, never inside them.
 */
#ifndef TETHER_DTLS_H
#define TETHER_DTLS_H

#include <stdbool.h>
#include <sys/socket.h>

#include "tether/addr.h"
#include "tether/common.h"
#include "tether/creds.h"

#define TETHER_DTLS_MAX_DGRAM 2048
#define TETHER_DTLS_TXQ 256
#define TETHER_CID_MAX 16
/* PSK identities a ClientHello may offer; more are refused before wolfSSL
 * looks any up (a device offers one; two leaves room for a rotation). */
#define TETHER_DTLS_MAX_PSK_IDENTITIES 2

typedef struct {
    uint8_t node_id;         /* first byte of every CID we issue */
    uint8_t cid_len;         /* server-issued CID length, 2..16 (default 8) */
    uint32_t max_sessions;   /* established + handshaking */
    uint32_t max_handshakes; /* handshakes in flight (~13 KB of memory each) */
    /* Handshakes in flight per source (IPv4 address or IPv6 /64), 0 = no
     * cap: a source at its cap gives up its own oldest one once that has
     * stalled, else waits. Behind a load balancer that hides client
     * addresses every client is one source: raise it or set 0. */
    uint32_t max_handshakes_per_source;
    /* Handshakes in flight per network (IPv4 /24, IPv6 /48), 0 = no cap
     * (the default): many sources of one network then cannot hold the
     * table either. Over the cap a new hello waits (its peer resends it)
     * until one of that network's handshakes finishes or stalls out.
     * Behind a load balancer or a carrier NAT many clients share one
     * network, so size it to them or leave it 0. */
    uint32_t max_handshakes_per_prefix;
    /* Established sessions of one identity, 0 = no cap: beyond it the
     * identity's oldest session is closed (lib/dtls/ident.c), so one
     * credential cannot take the max_sessions table from the others. */
    uint32_t max_sessions_per_identity;
    /* A handshake whose peer sends nothing for this long is dropped, long
     * before handshake_timeout: a stalled slot costs the attacker nothing. */
    uint32_t handshake_flight_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms; /* established session without traffic */
    uint32_t cookie_rotate_ms;
    /* Session tickets (DTLS 1.2 RFC 5077, DTLS 1.3 resumption PSKs): their
     * key changes every this many ms of wall clock; a ticket opens for at
     * least one period and at most two (lib/dtls/ticket.h). */
    uint32_t ticket_rotation_ms;
    /* Cookie secrets and ticket keys derive from it when set (every node
     * of a cluster then accepts every node's cookies and tickets); without
     * it both are random to this process. */
    const uint8_t *cluster_key;
    size_t cluster_key_len;
    /* X.509 (all optional, PEM paths read at create time): the CA that signs
     * client certificates, and our own ECDSA P-256 certificate and key for
     * the ECDHE-ECDSA suites. Without ca_file no client certificate is asked
     * for; without cert_file/key_file only PSK suites can complete. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /* Handshakes admitted per source IP address (token bucket): `rate` per
     * second, up to `burst` at once. 0 = unlimited. */
    uint32_t handshake_rate_per_source;
    uint32_t handshake_burst_per_source;
    /* ClientHellos from peers without a session looked at per second,
     * node-wide (burst: a tenth of a second's worth), 0 = no budget.
     * Beyond it a hello is dropped before wolfSSL sees it (its peer
     * resends it): each costs a cookie computation or check even when it
     * leads nowhere, so a flood of them, spoofed or cookie-valid, takes
     * at most this much of the node's time from established sessions. A
     * full PSK handshake costs far more than a hello, so the default
     * (20,000/s) is above what a core completes. */
    uint32_t hello_rate;
    /* SPEC S5 failover: compact DTLS 1.2 sessions with a CID run under a
     * transmit-sequence ceiling (EV_CEILING, tether_dtls_ceiling_acked) and
     * can be checkpointed and adopted. Needs cluster_key. Off by default:
     * with it on, a session sends nothing until the layer above has stored
     * its first ceiling. */
    bool checkpoint;
} tether_dtls_conf_t;

typedef struct {
    uint64_t sessions_active;
    uint64_t handshakes_inflight;
    uint64_t handshakes_full;
    uint64_t handshakes_failed;
    uint64_t hello_verify_sent;
    uint64_t address_changes;
    uint64_t unknown_cid_dropped;
    uint64_t dropped_limit;
    uint64_t sessions_closed;
    uint64_t tx_dropped;
    uint64_t dropped_rate;     /* cookie-verified hellos over the per-source rate */
    uint64_t handshakes_x509;  /* completed with a client certificate */
    uint64_t x509_rejected;    /* client certificate missing or refused (chain, dates, CN) */
    uint64_t sessions_compact; /* established sessions on the compact record layer */
    uint64_t records_rejected; /* compact layer: records not ours, replayed or forged */
    uint64_t handshakes_unauthenticated; /* completed, but authenticated nobody (refused) */
    uint64_t hellos_refused;             /* malformed or fragmented, or over the PSK identity cap */
    uint64_t handshakes_stalled; /* dropped: no flight from the peer within the flight timeout */
    uint64_t
        handshakes_evicted; /* stalled, dropped for a newer one (source at its cap, table full) */
    uint64_t
        handshakes_prefix_limited; /* hellos refused: their network at max_handshakes_per_prefix */
    uint64_t hellos_over_budget;   /* hellos dropped beyond hello_rate, node-wide */
    uint64_t events_dropped;       /* events lost because the list could not grow */
    uint64_t tx_unvalidated_dropped; /* over 3x what an unvalidated address sent us */
    uint64_t sessions_revoked;       /* closed by set_creds: identity gone or role changed */
    uint64_t records_empty;          /* zero-length application records skipped */
    uint64_t records_held;           /* waited for a transmit-ceiling raise */
    uint64_t sessions_adopted;       /* created from another node's checkpoint */
    uint64_t adoptions_refused;      /* checkpoint did not open, identity gone, no room */
    uint64_t handshakes_resumed;     /* completed by resuming a session ticket */
    uint64_t tickets_refused;        /* did not open (key, epoch, altered) or credential changed */
    uint64_t sessions_identity_capped; /* closed: their identity over max_sessions_per_identity */
} tether_dtls_stats_t;

typedef struct tether_dtls_srv tether_dtls_srv_t;
typedef struct tether_dtls_sess tether_dtls_sess_t;

typedef struct {
    tether_dtls_sess_t *sess;
    const uint8_t *data; /* plaintext, valid until the next call */
    size_t len;
} tether_dtls_rx_t;

/* A datagram to send: from local interface `iface` (the listener, that is
 * local address and port, its peer wrote to: answers must come from where
 * the peer sent, or NATs and the peer's own stack drop them) to `to`. */
typedef struct {
    tether_addr_t to;
    uint64_t sess; /* the id of the session it is for; 0: none (a cookie exchange) */
    uint8_t iface;
    uint16_t len;
    uint8_t data[TETHER_DTLS_MAX_DGRAM];
} tether_dgram_t;

/* What happened to sessions and handshakes, for the layers above (which
 * hold session ids, never pointers) and for logs. */
typedef enum {
    TETHER_DTLS_EV_CLOSED = 1,           /* an established session ended */
    TETHER_DTLS_EV_HANDSHAKE_FAILED = 2, /* a handshake in flight was given up */
    TETHER_DTLS_EV_MOVED = 3, /* a CID session follows its peer to a new, unvalidated address */
    /* A session needs its transmit ceiling raised (conf.checkpoint): write
     * tether_dtls_checkpoint at tether_dtls_sess_ceiling_wanted to the
     * store, then tether_dtls_ceiling_acked or _failed. */
    TETHER_DTLS_EV_CEILING = 4,
} tether_dtls_ev_kind_t;

typedef enum {
    TETHER_DTLS_WHY_PROTOCOL = 1,    /* alert, bad record, wrong key (Finished/binder) */
    TETHER_DTLS_WHY_CERTIFICATE,     /* client certificate missing or refused */
    TETHER_DTLS_WHY_UNAUTHENTICATED, /* completed, but authenticated nobody */
    TETHER_DTLS_WHY_TIMEOUT,         /* handshake_timeout_ms, or retransmissions exhausted */
    TETHER_DTLS_WHY_STALLED,         /* nothing from the peer for the flight timeout */
    TETHER_DTLS_WHY_EVICTED,         /* made room for a newer handshake */
    TETHER_DTLS_WHY_IDLE,            /* closed: idle_timeout_ms without traffic */
    TETHER_DTLS_WHY_PEER,            /* closed: close_notify or fatal alert from the peer */
    TETHER_DTLS_WHY_REPLACED,        /* closed: the peer completed a new handshake */
    TETHER_DTLS_WHY_LOCAL,           /* closed: sequence numbers exhausted, shutdown */
    TETHER_DTLS_WHY_REVOKED,         /* closed: identity gone or role changed (set_creds) */
    TETHER_DTLS_WHY_HANDED_OVER,     /* released here: it continues on another node */
} tether_dtls_why_t;

typedef struct {
    uint8_t kind; /* tether_dtls_ev_kind_t */
    uint8_t why;  /* tether_dtls_why_t */
    uint64_t id;  /* the session's id */
    tether_addr_t peer;
} tether_dtls_event_t;

/* Human-readable name of a tether_dtls_why_t (never NULL). */
TETHER_API const char *tether_dtls_why_str(uint8_t why);

/* Fills defaults (node 1, CID 8 bytes, generous limits). */
TETHER_API void tether_dtls_conf_defaults(tether_dtls_conf_t *conf);

/* Creates a server; `creds` is borrowed (see tether_dtls_set_creds). */
TETHER_API int tether_dtls_create(const tether_dtls_conf_t *conf, const tether_creds_t *creds,
                                  tether_time_t now, tether_dtls_srv_t **out);
TETHER_API void tether_dtls_destroy(tether_dtls_srv_t *srv);

/* Swaps the credential set used by new handshakes. Established sessions
 * whose identity the new set no longer lists, or lists with another role,
 * are closed (event CLOSED, why REVOKED); the others are kept. The caller
 * frees the old set after this returns. */
TETHER_API void tether_dtls_set_creds(tether_dtls_srv_t *srv, const tether_creds_t *creds);

/* Feeds one datagram that arrived on local interface `iface` (an index the
 * caller chooses, given back in tether_dgram_t.iface for everything sent to
 * this peer). When it carried application data, rx->len > 0 and
 * tether_dtls_input_more() returns further records of the same datagram.
 * Returns 0 (what the datagram led to is in rx, the transmit queue and the
 * events). */
TETHER_API int tether_dtls_input(tether_dtls_srv_t *srv, uint8_t iface, const tether_addr_t *from,
                                 const uint8_t *buf, size_t len, tether_time_t now,
                                 tether_dtls_rx_t *rx);
TETHER_API bool tether_dtls_input_more(tether_dtls_srv_t *srv, tether_dtls_rx_t *rx);

/* Encrypts application data for `sess` into the transmit queue. Under
 * conf.checkpoint a record beyond the session's stored transmit ceiling
 * is held instead (0, counted in records_held) and queued once the
 * ceiling is raised; TETHER_ELIMIT when the hold is full (tx_dropped). */
TETHER_API int tether_dtls_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *sess,
                                const uint8_t *data, size_t len);

/* Wall-clock milliseconds (Unix epoch). Cookie secrets derived from the
 * cluster key follow wall-clock epochs of cookie_rotate_ms, ticket keys
 * epochs of ticket_rotation_ms, so every node of a cluster accepts every
 * other node's cookies and tickets; without a wall clock they follow
 * `now`. Call it before each tick. */
TETHER_API void tether_dtls_set_wall_clock(tether_dtls_srv_t *srv, tether_time_t wall_ms);

/* Retransmissions, handshake and idle timeouts, cookie-secret and ticket
 * key rotation. */
TETHER_API void tether_dtls_tick(tether_dtls_srv_t *srv, tether_time_t now);
/* When tether_dtls_tick() next has something to do (UINT64_MAX: nothing
 * pending); valid after any call, so the caller arms one timer for it. */
TETHER_API tether_time_t tether_dtls_next_deadline(const tether_dtls_srv_t *srv);

/* Transmit queue: datagrams to send, in order; the caller clears it. */
TETHER_API size_t tether_dtls_tx_count(const tether_dtls_srv_t *srv);
TETHER_API const tether_dgram_t *tether_dtls_tx_get(const tether_dtls_srv_t *srv, size_t i);
TETHER_API void tether_dtls_tx_clear(tether_dtls_srv_t *srv);

TETHER_API const tether_dtls_stats_t *tether_dtls_stats(const tether_dtls_srv_t *srv);

/* Authenticated identity (PSK identity or certificate CN) of an
 * established session: valid until the session closes (not only until it
 * is freed; "" once closed), so do not hold it across a call that may
 * close sessions (input, tick, set_creds, release). */
TETHER_API const char *tether_dtls_sess_identity(const tether_dtls_sess_t *sess);
TETHER_API tether_role_t tether_dtls_sess_role(const tether_dtls_sess_t *sess);
TETHER_API const tether_addr_t *tether_dtls_sess_peer(const tether_dtls_sess_t *sess);
/* Address validation after a CID move (EV_MOVED): until the layer above
 * has proof that the peer receives at the new address (say, the answer to
 * an unpredictable probe sent only there), sends to it are limited to 3x
 * the bytes received from it (TETHER_ELIMIT beyond, counted). */
TETHER_API void tether_dtls_sess_validate(tether_dtls_sess_t *sess);
/* n bytes from the server's CSPRNG (wolfSSL's DRBG) into buf, for values
 * an off-path attacker must not guess (probe MIDs): 0 or TETHER_ECRYPTO. */
TETHER_API int tether_dtls_random(tether_dtls_srv_t *srv, void *buf, size_t n);
TETHER_API bool tether_dtls_sess_validated(const tether_dtls_sess_t *sess);
/* Our CID for this session (0 length when none was negotiated). */
TETHER_API size_t tether_dtls_sess_cid(const tether_dtls_sess_t *sess, uint8_t *out);

/* A session's stable id (never reused within the process). Layers above
 * hold ids, not pointers, and look sessions up when they send. */
TETHER_API uint64_t tether_dtls_sess_id(const tether_dtls_sess_t *sess);
/* The established session with this id, or NULL when it has ended. */
TETHER_API tether_dtls_sess_t *tether_dtls_sess_find(const tether_dtls_srv_t *srv, uint64_t id);
/* Events since the last clear, oldest first (the caller clears after each
 * call that may have produced some). If the list cannot grow, later events
 * are dropped and counted in events_dropped: the layers above also learn
 * of a dead session when a send to its id fails. */
TETHER_API size_t tether_dtls_events(const tether_dtls_srv_t *srv, const tether_dtls_event_t **evs);
TETHER_API void tether_dtls_events_clear(tether_dtls_srv_t *srv);

/* ---- Failover: checkpoints, transmit ceiling, adoption (SPEC S5) ----------
 *
 * A checkpoint is a sealed blob (format, key and binding documented in
 * lib/dtls/checkpoint.h) for the store's TETHER_STORE_SESSION record,
 * keyed by the session's CID. Only compact DTLS 1.2 sessions with a CID
 * under conf.checkpoint have one. DTLS 1.3 sessions stay on wolfSSL
 * objects and cannot be checkpointed: when their node dies their peers
 * need a new handshake (or a resumption, where offered); that is out of
 * scope of this interface.
 *
 * The transmit ceiling (lib/dtls/txceil.h): such a session sends only
 * records numbered below a ceiling the store acknowledged. When it needs
 * more it queues EV_CEILING; the layer above then writes a checkpoint
 * bound to tether_dtls_sess_ceiling_wanted() (a compare-and-set put, with
 * `version` the version the put creates) and reports the outcome. Records
 * sent meanwhile wait in a bounded queue (records_held) and leave, in
 * order, into the transmit queue from tether_dtls_ceiling_acked. */

/* What a checkpoint is bound to besides the CID (see checkpoint.h). */
typedef struct {
    uint8_t owner;        /* node id owning the session (its CID's first byte) */
    uint64_t generation;  /* the owner's generation */
    uint64_t version;     /* store record version the blob is written at */
    uint64_t seq_ceiling; /* transmit-sequence ceiling written beside it */
} tether_dtls_ckpt_bind_t;

#define TETHER_DTLS_CHECKPOINT_MAX 292 /* largest blob */

/* The ceiling of the raise in flight (0: none). */
TETHER_API uint64_t tether_dtls_sess_ceiling_wanted(const tether_dtls_sess_t *sess);
/* The ceiling the store acknowledged last (0: none yet, or no ceiling):
 * what a checkpoint written outside a raise (a handover) is bound to. */
TETHER_API uint64_t tether_dtls_sess_ceiling(const tether_dtls_sess_t *sess);
/* Whether the session runs under a transmit ceiling (so it has, or will
 * have, a checkpoint in the store). */
TETHER_API bool tether_dtls_sess_checkpointed(const tether_dtls_sess_t *sess);
/* An adopted session's id at the node whose checkpoint it came from (the
 * link id that node's observe registry entries name), 0 for a session
 * that began here. */
TETHER_API uint64_t tether_dtls_sess_origin(const tether_dtls_sess_t *sess);
/* One past the newest record sequence number received (0: none), so the
 * layer above can tell whether the receive window moved since its last
 * checkpoint. */
TETHER_API uint64_t tether_dtls_sess_rx_next(const tether_dtls_sess_t *sess);

/* Routing by session rather than by node byte (an adopted session's CID
 * names the node that died): the CID a DTLS 1.2 CID record or DTLS 1.3
 * unified header carries, conf.cid_len bytes at *cid. Returns 1 when a
 * session here holds that CID, 0 when none does, TETHER_ENOTFOUND when
 * the datagram carries no CID of our length. */
TETHER_API int tether_dtls_record_cid(const tether_dtls_srv_t *srv, const uint8_t *buf, size_t len,
                                      const uint8_t **cid);
/* Ends session `id` here without telling the peer (no close_notify): it
 * continues on another node (handed over, or adopted by a node that
 * fenced us). EV_CLOSED follows with why HANDED_OVER. TETHER_ENOTFOUND
 * when it is gone. */
TETHER_API int tether_dtls_sess_release(tether_dtls_srv_t *srv, uint64_t id);

/* Seals a checkpoint of `sess` into out[cap] (*len bytes). 0;
 * TETHER_EAGAIN (still on wolfSSL: not settled yet); TETHER_EINVAL (cannot
 * be checkpointed: DTLS 1.3, no CID, no ceiling, or b->seq_ceiling below
 * what it already sent); TETHER_ENOSPC; TETHER_ECRYPTO. */
TETHER_API int tether_dtls_checkpoint(tether_dtls_srv_t *srv, const tether_dtls_sess_t *sess,
                                      const tether_dtls_ckpt_bind_t *b, uint8_t *out, size_t cap,
                                      size_t *len);

/* The store acknowledged `ceiling` for session `id`: held records go out
 * (into the transmit queue). TETHER_ENOTFOUND when the session is gone. */
TETHER_API int tether_dtls_ceiling_acked(tether_dtls_srv_t *srv, uint64_t id, uint64_t ceiling);
/* The raise failed; retried by a tick after a pause (EV_CEILING again). */
TETHER_API int tether_dtls_ceiling_failed(tether_dtls_srv_t *srv, uint64_t id);

/* Continues a session from another node's checkpoint: `cid` (the store
 * key) and `b` as the record holds them, `blob` its bytes. The session is
 * established at once: the peer's next record with that CID opens on it
 * (the receive window carries over, so records it saw before the
 * checkpoint are dropped as replays) and its own records start at the
 * stored ceiling plus a margin (txceil.h), sent once its first ceiling is
 * stored (EV_CEILING queued now). `iface` is where its records arrive.
 * Returns 0 and *out; TETHER_EINVAL (conf.checkpoint off, CID length not
 * ours); TETHER_EEXIST (that CID is live here); TETHER_ELIMIT (max_sessions,
 * or no sequence numbers left); TETHER_EPROTO / TETHER_ECRYPTO (does not
 * open under this binding: altered, replayed from another version, moved,
 * another generation); TETHER_ENOTFOUND (its identity is no longer listed
 * with that role, or its PSK changed since the handshake: the key tag in
 * the checkpoint, which the adopted session keeps, so a later rotation
 * ends it as tether_dtls_set_creds ends any session); TETHER_ECONFLICT
 * (older than a checkpoint of that CID this server has seen: a lower
 * version or a lower ceiling, a record rolled back in the store;
 * lib/dtls/ckseen.h); TETHER_ENOMEM. */
/* A checkpoint of cid[cid_len] at (version, seq_ceiling) was seen in the
 * store (the layer above reports the records its replica receives):
 * tether_dtls_adopt refuses anything older for that CID from now on.
 * Checkpoints this server seals or adopts are noted by themselves. */
TETHER_API void tether_dtls_ckpt_seen(tether_dtls_srv_t *srv, const uint8_t *cid, size_t cid_len,
                                      uint64_t version, uint64_t seq_ceiling);

TETHER_API int tether_dtls_adopt(tether_dtls_srv_t *srv, const uint8_t *cid, size_t cid_len,
                                 const tether_dtls_ckpt_bind_t *b, const uint8_t *blob, size_t len,
                                 uint8_t iface, tether_time_t now, tether_dtls_sess_t **out);

#endif
