/* tether — one node's end of the cluster's internal channel (SPEC S5),
 * sans-I/O: membership, liveness, replay protection and the client routing
 * table, over the messages of tether/cluster.h. The caller owns the UDP
 * socket: it feeds what arrives (tether_channel_input), sends what the
 * outbox holds, and calls tether_channel_tick at tether_channel_next_deadline.
 *
 * Routing. A client's DTLS record whose CID names another known node is
 * forwarded there (route_in) with the listener index it arrived on. The
 * owner's session then answers through us: when the owner's DTLS layer
 * sends for a session whose newest authenticated record came through node
 * V (authenticated), route_out wraps the datagram in a REPLY to V, which
 * sends it from the listener the client wrote to. The table is keyed by
 * session, not by client address: a credential holder whose own session
 * follows a spoofed address A through V must not send A's other sessions'
 * answers out of V (where A's NAT drops them). It is bounded (via_max,
 * least recently heard first out); entries expire after via_idle_ms
 * without an authenticated record, or go with their session (forget).
 *
 * Keys. Each direction of each pair of nodes has its own MAC key,
 * HKDF-SHA256(cluster key, salt "tether-cluster-v2", info "pair" | from |
 * to): a message made for one pair is refused by every other pair and in
 * the other direction. Every node holding the cluster key can still derive
 * every pair's key: against a compromised node this binds messages to
 * their endpoints but does not isolate nodes (that needs per-node keys
 * handed out by the operator).
 *
 * Replay. Every message carries the sender's counter, which starts at its
 * wall clock in microseconds (so a restarted node continues above what it
 * sent before) and increases by one per message; the receiver accepts a
 * counter above the newest seen from that sender, or one of the 64 below
 * it not seen yet (RFC 6347 §4.1.2.6 style window), and the timestamp must
 * be within TETHER_CLUSTER_MAX_SKEW_MS. The windows live in memory, so a
 * receiver that restarts would take back any message captured in the skew
 * before it: a message stamped before the receiver's own start (its `now`
 * at tether_channel_create) is refused as a replay. The price: for as long
 * as a sender's clock lags the receiver's, right after the receiver
 * starts, that sender's messages are refused too (node clocks must agree).
 *
 * Clock: `now` is wall-clock milliseconds (Unix epoch) everywhere here;
 * timestamps must agree between hosts.
 */
#ifndef TETHER_CHANNEL_H
#define TETHER_CHANNEL_H

#include <stdbool.h>

#include "tether/addr.h"
#include "tether/cluster.h"
#include "tether/common.h"

#define TETHER_CHANNEL_MAX_MSG 2048 /* largest payload (a DTLS datagram) */

typedef struct {
    uint8_t self;               /* this node's id, 1..255 */
    const uint8_t *key;         /* cluster key (copied) */
    size_t key_len;             /* 1..128 */
    size_t via_max;             /* clients routed through other nodes, at most */
    tether_time_t via_idle_ms;  /* forget such a client after this long unheard */
    tether_time_t heartbeat_ms; /* "I am alive" to every node this often */
    tether_time_t alive_ms;     /* a node is alive while heard from this recently */
    /* Messages for one node share a datagram (a BUNDLE, cluster.h) of up
     * to this many bytes until tether_channel_flush; 0: one message per
     * datagram, each in the outbox at once. Clamped to a datagram's size
     * (TETHER_CHANNEL_MAX_MSG + TETHER_CLUSTER_OVERHEAD). Keep it under
     * the internal network's MTU: a fragmented bundle loses all its
     * messages with any one fragment. */
    size_t bundle_max;
} tether_channel_conf_t;

typedef struct {
    uint64_t nodes_configured;  /* this node included */
    uint64_t nodes_alive;       /* this node and peers heard from lately */
    uint64_t forwarded_records; /* records we sent to the node owning their CID */
    uint64_t forwarded_in;      /* records other nodes sent us */
    uint64_t replies_out;       /* our datagrams that left through another node */
    uint64_t replies_in;        /* other nodes' datagrams we sent to clients */
    uint64_t rejected;          /* internal messages refused (MAC, age, malformed, unknown) */
    uint64_t replayed;          /* of those, a counter already seen or too old */
    uint64_t unroutable;        /* records for a node we do not know */
    uint64_t node_moves;        /* nodes that came back at another address */
    uint64_t bundled;           /* messages sent in a bundle (one per frame) */
    uint64_t bundles_in;        /* bundles received and accepted */
} tether_channel_stats_t;

/* A datagram for another node's internal address. */
typedef struct {
    tether_addr_t to;
    uint16_t len;
    uint8_t data[TETHER_CHANNEL_MAX_MSG + TETHER_CLUSTER_OVERHEAD];
} tether_channel_dgram_t;

/* What an internal datagram asks of us. */
typedef enum {
    TETHER_CHANNEL_RX_NONE = 0, /* a heartbeat, or refused (counted) */
    TETHER_CHANNEL_RX_DELIVER,  /* a client's record for one of our sessions */
    TETHER_CHANNEL_RX_REPLY,    /* send payload to client from listener iface */
    TETHER_CHANNEL_RX_XRELAY,   /* XREQ/XRSP/XEND from node `via` (type in `type`) */
} tether_channel_rx_kind_t;

typedef struct {
    uint8_t kind;  /* tether_channel_rx_kind_t */
    uint8_t via;   /* the node it came from */
    uint8_t iface; /* the listener index at the receiving node */
    uint8_t type;  /* RX_XRELAY: the tether_cluster_type_t */
    tether_addr_t client;
    const uint8_t *payload; /* valid until the next call */
    size_t len;
} tether_channel_rx_t;

typedef struct tether_channel tether_channel_t;

/* Defaults: node 1, 1 s heartbeats, alive for 5 s, 1M clients for a day. */
TETHER_API void tether_channel_conf_defaults(tether_channel_conf_t *conf);

/* Returns 0, TETHER_EINVAL (node id 0, key missing or over 128 bytes) or
 * TETHER_ENOMEM. The first tick sends heartbeats at once. */
TETHER_API int tether_channel_create(const tether_channel_conf_t *conf, tether_time_t now,
                                     tether_channel_t **out);
TETHER_API void tether_channel_destroy(tether_channel_t *ch);

/* Adds node `id` at internal address `addr` (static membership). Returns
 * 0, TETHER_EEXIST (known, or ourselves), TETHER_EINVAL (id 0) or
 * TETHER_ECRYPTO (key derivation failed). */
TETHER_API int tether_channel_add_node(tether_channel_t *ch, uint8_t id, const tether_addr_t *addr);
/* A lease (Redis membership) names `addr` for node `id`: an unknown node
 * is added there; a known one at another address moves there once an
 * authenticated message from it arrives from that address (a lease alone,
 * which anyone with write access to Redis can forge, never redirects the
 * channel). Returns 0, TETHER_EEXIST (ourselves) or what
 * tether_channel_add_node returns. */
TETHER_API int tether_channel_node_lease(tether_channel_t *ch, uint8_t id,
                                         const tether_addr_t *addr);

/* A datagram from `from` on DTLS listener `iface`. Returns true when its
 * CID names another known node: a FORWARD is in the outbox and the caller
 * drops the datagram. False: it is ours (or for an unknown node, counted;
 * DTLS then drops it as an unknown CID). */
TETHER_API bool tether_channel_route_in(tether_channel_t *ch, uint8_t iface,
                                        const tether_addr_t *from, const uint8_t *data, size_t len,
                                        tether_time_t now);

/* Forwards a client's record to node `node` whatever its CID says (the
 * session it names is held there now: adopted after its node died or
 * handed over, SPEC S5). true: a FORWARD is in the outbox; false: `node`
 * is ourselves or unknown (unroutable counted), the caller handles it. */
TETHER_API bool tether_channel_forward(tether_channel_t *ch, uint8_t node, uint8_t iface,
                                       const tether_addr_t *from, const uint8_t *data, size_t len,
                                       tether_time_t now);

/* A record authenticated in our session `sess`, from the session's
 * address, having come through node `via` (0: straight to us). Only this
 * changes where that session's datagrams leave from: unauthenticated
 * traffic never does, nor another session's. */
TETHER_API void tether_channel_authenticated(tether_channel_t *ch, uint64_t sess, uint8_t via,
                                             tether_time_t now);
/* Session `sess` ended: its route goes. */
TETHER_API void tether_channel_forget(tether_channel_t *ch, uint64_t sess);

/* Our DTLS layer sends `data` for session `sess` (0: none, never routed)
 * to `to` from listener `iface` (an index at the node the client talks
 * to). Returns true when that session talks through another node: a
 * REPLY is in the outbox, the caller drops the datagram. */
TETHER_API bool tether_channel_route_out(tether_channel_t *ch, uint64_t sess,
                                         const tether_addr_t *to, uint8_t iface,
                                         const uint8_t *data, size_t len, tether_time_t now);

/* An internal datagram from `src`. Fills rx (kind NONE for heartbeats and
 * refusals); returns 0, or the refusal: TETHER_EPROTO (also: a bundle
 * with one malformed frame), TETHER_ECRYPTO (bad MAC, or a sender we do
 * not know), TETHER_ETIMEDOUT (clock skew), TETHER_ENOTFOUND (for another
 * node), TETHER_EEXIST (replayed). A bundle gives its first message in rx;
 * call tether_channel_input_more for the others. `data` must stay valid
 * until the last input_more (rx's payload points into it). */
TETHER_API int tether_channel_input(tether_channel_t *ch, const tether_addr_t *src,
                                    const uint8_t *data, size_t len, tether_time_t now,
                                    tether_channel_rx_t *rx);
/* The next message of the bundle the last tether_channel_input accepted:
 * true with rx filled, false when there is none (also after a plain
 * message or a refusal). */
TETHER_API bool tether_channel_input_more(tether_channel_t *ch, tether_channel_rx_t *rx);

/* Queues a cross-node relay message (TETHER_CLUSTER_XREQ, XRSP or XEND)
 * of len <= TETHER_CHANNEL_MAX_MSG bytes for node `to`. Returns 0,
 * TETHER_EINVAL (another type, too long), TETHER_ENOTFOUND (a node we do
 * not know) or TETHER_ELIMIT (the outbox is full: dropped, UDP-like). */
TETHER_API int tether_channel_send(tether_channel_t *ch, uint8_t type, uint8_t to,
                                   const uint8_t *data, size_t len, tether_time_t now);

/* Heartbeats, liveness, expiry of routed clients. */
TETHER_API void tether_channel_tick(tether_channel_t *ch, tether_time_t now);
TETHER_API tether_time_t tether_channel_next_deadline(const tether_channel_t *ch);

/* Whether node `id` is alive (ourselves always). */
TETHER_API bool tether_channel_node_alive(const tether_channel_t *ch, uint8_t id,
                                          tether_time_t now);

/* Closes every bundle being filled (conf.bundle_max): they join the
 * outbox. Call it when a batch of input ends (the host's receive batch). */
TETHER_API void tether_channel_flush(tether_channel_t *ch, tether_time_t now);

/* The outbox: datagrams to send in order; the caller clears it. A full
 * outbox drops (UDP semantics), counted nowhere else: size it by calling
 * out_clear after every call. While a bundle is being filled the outbox
 * shows nothing (count 0): tether_channel_flush first. out_clear also
 * drops bundles being filled. */
TETHER_API size_t tether_channel_out_count(const tether_channel_t *ch);
TETHER_API const tether_channel_dgram_t *tether_channel_out_get(const tether_channel_t *ch,
                                                                size_t i);
TETHER_API void tether_channel_out_clear(tether_channel_t *ch);

TETHER_API const tether_channel_stats_t *tether_channel_stats(const tether_channel_t *ch);

#endif
