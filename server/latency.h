/* tetherd per-request proxy latency (SPEC S9, "proxy-added latency").
 *
 * A relayed request crosses tetherd twice: the client's request in, the
 * request to the device out; the device's answer in, the client's answer
 * out. This module times both crossings of each request and records their
 * sum, matching the two by the token tetherd itself put on the request to
 * the device (RFC 7252 §5.3.2: the device echoes it).
 *
 * A crossing runs from the moment the receive batch holding the incoming
 * datagram was read (recvmmsg returned) to the moment the batch's output
 * was handed to the kernel (sendmmsg returned): every datagram of a batch
 * waits for the whole batch, so that is what each of them sees. The time a
 * datagram spent in the socket buffer before the read is not included
 * (libuv gives no receive timestamps); the bench reports the end-to-end
 * figure beside it.
 *
 * Calls, all from the loop thread, in this order per batch:
 * tetherd_lat_read (first datagram of a batch), tetherd_lat_in for each
 * plaintext CoAP message a DTLS session delivered, tetherd_lat_out for each
 * message the node sends on a DTLS session while handling them, and
 * tetherd_lat_sent each time output of the batch left (batch_end false
 * while the read goes on: main.c sends what waited TX_WAIT_US), true once. Messages sent outside a
 * batch (timers: retransmissions, queued requests) are not attributed.
 * Bounded: at most TETHERD_LAT_PENDING requests wait for their device's
 * answer; the oldest is forgotten first (counted in `unmatched`).
 * Lifetime: tetherd_lat_init .. tetherd_lat_free, owned by tetherd_t. */
#ifndef TETHERD_LATENCY_H
#define TETHERD_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/hist.h"
#include "tether/hmap.h"

#define TETHERD_LAT_PENDING 8192
#define TETHERD_LAT_BATCH 256 /* device-bound requests timed per batch */

typedef struct {
    tether_hnode_t node;
    bool used;
    uint64_t leg1_ns; /* request in .. request to the device out */
} tetherd_lat_pending_t;

typedef struct {
    tether_hist_t relayed; /* both crossings of each relayed request, us */
    uint64_t unmatched;    /* requests forgotten before their answer came */
    /* internal */
    tether_hmap_t by_token; /* (device link id, token) -> pending */
    tetherd_lat_pending_t *ring;
    size_t ring_head;
    uint64_t batch_ns;   /* when the current batch was read; 0: none */
    bool in_request;     /* last message in: a request (code class 0) */
    bool in_answer;      /* last message in: an answer to a timed request */
    uint64_t in_leg1_ns; /* its first crossing */
    uint64_t in_link;
    /* this batch's output still to be timed at tetherd_lat_sent */
    struct {
        uint8_t key[TETHER_HKEY_MAX];
        uint8_t klen;
    } legs1[TETHERD_LAT_BATCH];
    size_t nlegs1;
    uint64_t legs2_leg1[TETHERD_LAT_BATCH];
    size_t nlegs2;
} tetherd_lat_t;

/* 0 or TETHER_ENOMEM. */
int tetherd_lat_init(tetherd_lat_t *l);
void tetherd_lat_free(tetherd_lat_t *l);
void tetherd_lat_read(tetherd_lat_t *l, uint64_t now_ns);
void tetherd_lat_in(tetherd_lat_t *l, uint64_t link, const uint8_t *msg, size_t len);
void tetherd_lat_out(tetherd_lat_t *l, uint64_t link, const uint8_t *msg, size_t len);
void tetherd_lat_sent(tetherd_lat_t *l, uint64_t now_ns, bool batch_end);

#endif
