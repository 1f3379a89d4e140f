/* tether — relaying client requests down device tunnels (internal to
 * lib/proxy; SPEC S3, S4).
 *
 * A relayed request is the client's side (link, MID, type, token) and the
 * encoded upstream request the node sends the device as a CON under its
 * own token (role reversal, RFC 7252 §5.7). Lifecycle:
 *   accepted -> sent (CON outstanding) -> waiting (device ACKed, separate
 *   response to come) -> answered; a device that is asleep (queue mode) or
 *   unreachable holds it queued until it next speaks, or 5.04 at the TTL.
 * NSTART (RFC 7252 §4.7, conf.nstart): a device has at most that many of
 * our CONs outstanding; a request beyond them is held (at most
 * conf.nstart_queue_max per device, 5.03 beyond) and sent, oldest first,
 * as earlier CONs end, or 5.04 at the request timeout.
 * Per-client bound (bounds.h): a client's pending requests beyond
 * conf.max_pending_per_client get 4.29 with Max-Age (RFC 8516).
 * The client's CON gets an empty ACK after ack_delay_ms unless the answer
 * came first (then it is piggybacked). Timeouts: 5.04; device gone: 5.02.
 *
 * Lifetimes: a request is owned by the node (its by_token map, timer heap
 * and its device's list) from tether_relay_request until it is answered or
 * failed; the exchange waiter embedded in it is cancelled before it is
 * freed. Its device outlives it (rd.c fails a device's requests before
 * removing the device). Timers: the heap's capacity is reserved for both
 * timers of every pending request when one is accepted, so arming never
 * fails later and no request loses its timeout.
 */
#ifndef TETHER_PROXY_RELAY_H
#define TETHER_PROXY_RELAY_H

#include "proxy/blockwise.h"
#include "proxy/bounds.h"
#include "proxy/group.h"
#include "proxy/node_int.h"

enum relay_state { R_QUEUED, R_SENT, R_WAITING, R_HELD /* for an NSTART slot */ };
/* What the cache does with a relayed request's answer. */
enum relay_cache_flag {
    C_STORE = 1,       /* cacheable: store the response */
    C_CLIENT_VTAG = 2, /* the client sent the ETag being revalidated itself */
};

typedef struct relay_req {
    tether_hnode_t by_token;   /* key: upstream token */
    tether_timer_t deadline;   /* request timeout, or queue TTL while queued */
    tether_timer_t ack_timer;  /* client CON not yet acknowledged */
    tether_lnode_t in_dev;     /* dev->reqs */
    tether_lnode_t in_held;    /* dev->held, while R_HELD */
    tether_bclient_t *charged; /* the client it counts against (bounds.h), NULL: none */
    tether_cx_waiter_t w;      /* hears how the upstream CON ended */
    tether_device_t *dev;
    uint8_t state; /* enum relay_state */
    uint8_t utok[TETHER_UTOK_LEN];
    uint16_t umid;
    tether_link_t dev_link; /* link the upstream CON went out on */
    tether_link_t client;
    uint16_t cmid;
    uint8_t ctype;
    uint8_t ctkl;
    uint8_t ctok[TETHER_COAP_MAX_TOKEN];
    bool acked;
    uint8_t cflags;   /* enum relay_cache_flag */
    uint8_t vtag_len; /* ETag of the stale entry being revalidated, 0: none */
    uint8_t vtag[8];
    tether_time_t queued_until;
    bw_xfer_t *bw_xfer;     /* a Block2 transfer's request (no client), blockwise.h */
    bw_upload_t *bw_upload; /* a client's upload block, blockwise.h */
    group_fan_t *fan;       /* a group request's member request (no client), group.h */
    tether_lnode_t in_fan;  /* fan->subs */
    uint16_t len;
    uint8_t msg[]; /* upstream request, MID patched in when sent */
} relay_req_t;

/* A client request for a device (not for the node itself): target, access
 * control, observe and cache, then send, queue, or answer with the S4
 * error codes. */
void tether_relay_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_time_t now);
/* A response from a device (piggybacked, separate CON/NON). false when no
 * relayed request has its token. */
bool tether_relay_response(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *msg, tether_time_t now);
/* A request of tether's own for device `d` (a Block2 transfer's next
 * block, blockwise.c): no client; its answer goes to
 * tether_bw_xfer_answer(x). May answer synchronously (a failure while
 * sending), so the caller must not touch `x` after a 0 return.
 * TETHER_ELIMIT when the proxy or the device's queue is full,
 * TETHER_ENOMEM. */
int tether_relay_internal(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                          bw_xfer_t *x, tether_time_t now);
/* A group request's member request for device `d` (group.c): no client;
 * the device's answer goes to tether_group_answer(f), tether's own
 * verdicts (timeout, device gone) nowhere. TETHER_ELIMIT when the proxy
 * or the device's queue is full, TETHER_ENOMEM. */
int tether_relay_group(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                       group_fan_t *f, tether_time_t now);
/* Copies the options a proxy forwards (RFC 7252 §5.7.2) from `in` into
 * `out`: not the ones naming the target (nor Uri-Path/Uri-Query with
 * skip_uri: they came from a Proxy-Uri), Observe (the observe layer adds
 * its own) or Multicast-Timeout (a group request's, group.h).
 * TETHER_EPROTO for an unrecognised unsafe option (5.02), TETHER_ENOSPC. */
int tether_relay_forward_opts(const tether_node_t *n, const tether_coap_msg_t *in,
                              tether_coap_msg_t *out, bool skip_uri);
/* Forgets `r` without answering anyone. */
void tether_relay_cancel(tether_node_t *n, relay_req_t *r);
/* Sends `r` (again) down its device's tunnel as a CON with a fresh MID. */
void tether_relay_send(tether_node_t *n, relay_req_t *r, tether_time_t now);
/* The device spoke: deliver what was queued for it. */
void tether_relay_flush(tether_node_t *n, tether_device_t *d, tether_time_t now);
/* The device's session `link` ended: requests it had acknowledged are
 * queued (queue mode) or fail with 5.02. */
void tether_relay_link_down(tether_node_t *n, tether_device_t *d, const tether_link_t *link,
                            tether_time_t now);
/* Fails every request of `d` with `code`. */
void tether_relay_fail_all(tether_node_t *n, tether_device_t *d, uint8_t code, tether_time_t now);
/* Frees every request of `d` without answering (node teardown). */
void tether_relay_free_all(tether_node_t *n, tether_device_t *d);
/* Request timeouts, queue TTLs and delayed empty ACKs due at `now`. */
void tether_relay_tick(tether_node_t *n, tether_time_t now);

#endif
