/* tether — how the node answers (internal to lib/proxy).
 *
 * RFC 7252 §5.2: the response to a CON request that has not been
 * acknowledged yet is piggybacked on its ACK (same MID); once an empty ACK
 * went out it is a separate response, sent as a CON (§5.2.2); a NON
 * request gets a NON response (§5.2.3). Both of the latter take a fresh
 * MID toward the peer from the message layer. tether_reply_head is that
 * one choice; the rest build on it. Answers to a received message are
 * remembered by the message layer, so a duplicate gets the same bytes.
 */
#ifndef TETHER_PROXY_REPLY_H
#define TETHER_PROXY_REPLY_H

#include "proxy/node_int.h"

/* Type and MID of the answer to a request of type req_type with MID
 * req_mid from `link`; `acked`: an empty ACK already went out for it. */
void tether_reply_head(tether_node_t *n, const tether_link_t *link, uint8_t req_type,
                       uint16_t req_mid, bool acked, uint8_t *type, uint16_t *mid,
                       tether_time_t now);
/* Sends `resp` (its type, MID and token are set here) to a client whose
 * request (type, MID, token) may have been acknowledged already (`acked`):
 * piggybacked, separate CON, or NON (RFC 7252 §5.2). A response that does
 * not encode becomes a 5.02. */
void tether_reply_to(tether_node_t *n, const tether_link_t *link, uint8_t ctype, uint16_t cmid,
                     const uint8_t *ctok, uint8_t ctkl, bool acked, tether_coap_msg_t *resp,
                     tether_time_t now);
/* Starts the response `resp` with `code` to `req` (head and token). */
void tether_reply_start(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                        uint8_t code, tether_coap_msg_t *resp, tether_time_t now);
/* Encodes `resp` as the reply to `req` (a 5.00 when it does not encode)
 * and queues it. */
void tether_reply_send(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       const tether_coap_msg_t *resp);
/* Answers `req` with `code` and an optional diagnostic payload. */
void tether_reply_code(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       uint8_t code, const char *diag, tether_time_t now);
/* Answers `req` with `code` and Max-Age: the client may try again in
 * `retry_s` seconds (4.29, RFC 8516 §4; 5.03, RFC 7252 §5.9.3.4). */
void tether_reply_retry(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                        uint8_t code, uint32_t retry_s, tether_time_t now);
/* Adds Max-Age: retry_s to `resp`; v[4] holds the value and must outlive it. */
void tether_reply_add_max_age(tether_coap_msg_t *resp, uint32_t retry_s, uint8_t v[4]);
/* Sends an empty ACK or RST for `mid`, remembered for duplicates. */
void tether_reply_empty(tether_node_t *n, const tether_link_t *link, uint8_t type, uint16_t mid);
/* The client's copy of a device's answer `msg`: its code, options and
 * payload (pointing into msg); type, MID, token and Observe are the client
 * side's to set. */
void tether_reply_device_answer(const tether_coap_msg_t *msg, tether_coap_msg_t *resp);

#endif
