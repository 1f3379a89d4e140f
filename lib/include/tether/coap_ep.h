/* tether — CoAP endpoint layer over one transport (sans-I/O): validation,
 * rejection per RFC 7252, ping, and response skeletons. */
#ifndef TETHER_COAP_EP_H
#define TETHER_COAP_EP_H

#include "tether/coap.h"

/* What tether_coap_ep_input found. */
typedef enum {
    TETHER_COAP_EP_UP = 0,   /* a valid message for the layer above */
    TETHER_COAP_EP_STOP = 1, /* done here: maybe a reply to send, nothing above */
} tether_coap_ep_res_t;

typedef struct {
    const tether_coap_optreg_t *reg;
    uint16_t next_mid;
} tether_coap_ep_t;

TETHER_API void tether_coap_ep_init(tether_coap_ep_t *ep, const tether_coap_optreg_t *reg,
                                    uint16_t first_mid);

/* Parses and checks one datagram.
 * UP: *msg holds a valid request or response for the layer above.
 * STOP: nothing goes up; when *reply_len > 0, reply[] must be sent back to
 * the peer (RST, 4.00, 4.02, or the RST that answers a CoAP ping). */
TETHER_API tether_coap_ep_res_t tether_coap_ep_input(tether_coap_ep_t *ep, const uint8_t *buf,
                                                     size_t len, tether_coap_msg_t *msg,
                                                     uint8_t *reply, size_t cap,
                                                     size_t *reply_len);

/* Starts a response to `req`: piggybacked ACK for CON (same MID), NON with a
 * fresh MID for NON; same token; no options, no payload. */
TETHER_API void tether_coap_ep_response(tether_coap_ep_t *ep, const tether_coap_msg_t *req,
                                        uint8_t code, tether_coap_msg_t *resp);

#endif
