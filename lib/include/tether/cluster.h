/* tether — the cluster's internal channel (SPEC S5).
 *
 * A DTLS record whose CID names another node is forwarded there in a
 * FORWARD message carrying the client's address; the owner's answers go
 * back in REPLY messages to the node that received the record, which sends
 * them to the client from its own socket (NATs and load balancers expect
 * the reply from where they sent). Every message is authenticated with
 * HMAC-SHA256 under the cluster key and carries a timestamp, so a message
 * from outside the cluster or replayed much later is refused.
 *
 * Wire format (network byte order), version 2:
 *   "TQ" | version 2 | type | from node | to node | interface | counter (8)
 *   | timestamp ms (8) | family (4 or 6) | port (2) | address (16, IPv4 in
 *   the first 4, then zeros) | payload | MAC (first 16 bytes of HMAC-SHA256 over all
 *   before it, under the key of the pair from -> to: tether/channel.h)
 * A BUNDLE's header has no client (family 4, zeros) and its payload is a
 * sequence of frames, each one message of another type but heartbeat:
 *   type | interface | family (4 or 6) | port (2) | address (4 or 16) |
 *   length (2) | payload
 * Why: a node that receives a rebinding device's records for another node
 * forwards every one of them, and each internal datagram costs a send and
 * a receive system call on both sides (~8 us of CPU per message on
 * loopback, `make bench` cross-node row) and an HMAC; records forwarded in
 * one receive batch share one datagram instead. The receiver checks every
 * frame before it acts on any (one malformed frame refuses the bundle).
 * A bundle of one frame is sent as that plain message.
 * The interface is the receiving node's DTLS listener index the client
 * wrote to, echoed in the owner's REPLY so the answer leaves from the same
 * local address and port. The counter is the sender's, strictly
 * increasing; the receiver keeps a replay window per sender (channel.h),
 * so a captured message is refused even inside the timestamp window.
 * Sans-I/O: bytes in, bytes out, `now` passed in.
 */
#ifndef TETHER_CLUSTER_H
#define TETHER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "tether/addr.h"
#include "tether/common.h"

#define TETHER_CLUSTER_HDR 42
#define TETHER_CLUSTER_MAC 16
#define TETHER_CLUSTER_OVERHEAD (TETHER_CLUSTER_HDR + TETHER_CLUSTER_MAC)
/* Messages older or newer than this (clock skew between nodes included)
 * are refused. */
#define TETHER_CLUSTER_MAX_SKEW_MS 30000

typedef enum {
    TETHER_CLUSTER_FORWARD = 1,   /* a client's datagram for the node owning its CID */
    TETHER_CLUSTER_REPLY = 2,     /* a datagram to send to the client */
    TETHER_CLUSTER_HEARTBEAT = 3, /* "I am alive" (no client, no payload) */
    /* Requests across nodes (lib/proxy/xrelay.h gives the payloads; the
     * client address is unused and zero): */
    TETHER_CLUSTER_XREQ = 4, /* a client's CoAP request for a device on the receiver */
    TETHER_CLUSTER_XRSP = 5, /* the device node's answer or notification for it */
    TETHER_CLUSTER_XEND = 6, /* the relaying node no longer wants answers for it */
    /* Several of the messages above (types 1, 2, 4, 5, 6) in one datagram,
     * as frames (below): one header, counter and MAC for all of them. */
    TETHER_CLUSTER_BUNDLE = 7,
} tether_cluster_type_t;
#define TETHER_CLUSTER_TYPE_LAST TETHER_CLUSTER_BUNDLE

typedef struct {
    uint8_t type; /* tether_cluster_type_t */
    uint8_t from_node, to_node;
    uint8_t iface;    /* FORWARD, REPLY: the receiving node's listener index */
    uint64_t counter; /* the sender's message counter */
    tether_time_t sent_at;
    tether_addr_t client;
    const uint8_t *payload; /* decode: points into the input */
    size_t payload_len;
} tether_cluster_msg_t;

/* A MAC key with its HMAC pads hashed once (RFC 2104 §2), for a node
 * pair's messages: the channel keeps one per direction and node, so a
 * message costs no key setup. Lifetime: tether_cluster_key_new ..
 * tether_cluster_key_free (wipes it). 0, TETHER_ENOMEM or TETHER_ECRYPTO. */
typedef struct tether_cluster_key tether_cluster_key_t;
TETHER_API int tether_cluster_key_new(const uint8_t *key, size_t key_len,
                                      tether_cluster_key_t **out);
TETHER_API void tether_cluster_key_free(tether_cluster_key_t *k);

/* Encodes `m` into out (cap bytes) with the MAC under key. Returns the
 * length, TETHER_ENOSPC, or TETHER_EINVAL (bad type or address family). */
TETHER_API int tether_cluster_encode(const tether_cluster_msg_t *m, const uint8_t *key,
                                     size_t key_len, uint8_t *out, size_t cap);

/* Decodes and authenticates a message for node `self`. Returns 0, or
 * TETHER_EPROTO (malformed, unknown type or version), TETHER_ECRYPTO (bad
 * MAC), TETHER_ETIMEDOUT (timestamp too far from now), TETHER_ENOTFOUND
 * (addressed to another node). */
TETHER_API int tether_cluster_decode(const uint8_t *in, size_t len, const uint8_t *key,
                                     size_t key_len, uint8_t self, tether_time_t now,
                                     tether_cluster_msg_t *m);

/* The same with a prepared key (byte for byte the same output). */
TETHER_API int tether_cluster_encode_k(const tether_cluster_msg_t *m, const tether_cluster_key_t *k,
                                       uint8_t *out, size_t cap);
TETHER_API int tether_cluster_decode_k(const uint8_t *in, size_t len, const tether_cluster_key_t *k,
                                       uint8_t self, tether_time_t now, tether_cluster_msg_t *m);

/* Frames of a BUNDLE (m->client, m->iface, m->type and the payload of a
 * frame; from/to/counter/sent_at are the bundle's). */
#define TETHER_CLUSTER_FRAME_MAX_HDR 23 /* with an IPv6 address */
/* Appends frame `f` at out (cap bytes). Returns its length, TETHER_ENOSPC
 * or TETHER_EINVAL (a heartbeat or bundle type, a payload over 65535
 * bytes, an address that is neither IPv4 nor IPv6). */
TETHER_API int tether_cluster_frame_put(const tether_cluster_msg_t *f, uint8_t *out, size_t cap);
/* The frame at *pos in a decoded bundle's payload (buf, len): fills *f
 * (payload pointing into buf) and moves *pos past it. Returns 1, 0 at the
 * end, or TETHER_EPROTO (truncated, or a type that cannot be a frame). */
TETHER_API int tether_cluster_frame_next(const uint8_t *buf, size_t len, size_t *pos,
                                         tether_cluster_msg_t *f);

/* The node id a DTLS record names in its CID (byte 0 of a tether CID), for
 * a DTLS 1.2 tls12_cid record or a DTLS 1.3 unified header with a CID;
 * -1 when the datagram carries no CID. */
TETHER_API int tether_cluster_cid_node(const uint8_t *dgram, size_t len);

#endif
