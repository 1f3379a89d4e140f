/* tether — one node's protocol state, without I/O. The server feeds it
 * datagrams with `now`; it returns what to send. */
#ifndef TETHER_NODE_H
#define TETHER_NODE_H

#include "tether/coap_ep.h"
#include "tether/local.h"

typedef struct {
    uint64_t rx_datagrams;
    uint64_t rx_rejected; /* malformed or bad critical option */
    uint64_t requests_local;
    uint64_t requests_refused; /* proxying asked for but not available */
} tether_node_stats_t;

typedef struct {
    tether_coap_optreg_t optreg;
    tether_coap_ep_t plain_ep;  /* the plain-CoAP (5683) endpoint */
    tether_coap_ep_t secure_ep; /* CoAP over DTLS sessions */
    tether_local_t local;
    tether_node_stats_t stats;
} tether_node_t;

typedef struct {
    uint8_t node_id;
    const char *version;
    uint16_t opt_multicast_timeout;
    uint16_t opt_reply_from;
    uint16_t first_mid; /* random per process */
} tether_node_conf_t;

TETHER_API int tether_node_init(tether_node_t *node, const tether_node_conf_t *conf);

/* Who sent a CoAP message: an authenticated DTLS identity, or nobody
 * (plain CoAP, loopback only by default). */
typedef struct {
    bool secure;
    const char *identity; /* NULL for plain CoAP */
} tether_peer_t;

/* One CoAP message in (a plain datagram or a decrypted DTLS record); at most
 * one reply out (reply[*reply_len]). */
TETHER_API tether_layer_res_t tether_node_coap_input(tether_node_t *node,
                                                     const tether_peer_t *peer,
                                                     const uint8_t *buf, size_t len,
                                                     tether_time_t now, uint8_t *reply,
                                                     size_t cap, size_t *reply_len);

#endif
