/* CoAP endpoint layer: what RFC 7252 §4 asks of every receiver before the
 * application sees a message. */
#include <string.h>

#include "tether/coap_ep.h"

void tether_coap_ep_init(tether_coap_ep_t *ep, const tether_coap_optreg_t *reg, uint16_t first_mid)
{
    ep->reg = reg;
    ep->next_mid = first_mid;
}

void tether_coap_ep_response(tether_coap_ep_t *ep, const tether_coap_msg_t *req, uint8_t code,
                             tether_coap_msg_t *resp)
{
    if (req->type == TETHER_COAP_CON)
        tether_coap_msg_init(resp, TETHER_COAP_ACK, code, req->mid);
    else
        tether_coap_msg_init(resp, TETHER_COAP_NON, code, ep->next_mid++);
    tether_coap_msg_set_token(resp, req->token, req->tkl);
}

/* Encodes an error answer for a rejected message; empty when dropped. */
static void reject(tether_coap_ep_t *ep, const tether_coap_msg_t *msg, tether_coap_reject_t act,
                   uint8_t *reply, size_t cap, size_t *reply_len)
{
    tether_coap_msg_t r;
    *reply_len = 0;
    switch (act) {
    case TETHER_COAP_REJECT_DROP: return;
    case TETHER_COAP_REJECT_RST: tether_coap_msg_init(&r, TETHER_COAP_RST, 0, msg->mid); break;
    case TETHER_COAP_REJECT_BAD_OPTION:
        tether_coap_ep_response(ep, msg, TETHER_COAP_BAD_OPTION, &r);
        break;
    case TETHER_COAP_REJECT_BAD_REQUEST:
        tether_coap_ep_response(ep, msg, TETHER_COAP_BAD_REQUEST, &r);
        break;
    }
    if (tether_coap_encode(&r, reply, cap, reply_len) < 0)
        *reply_len = 0;
}

tether_coap_ep_res_t tether_coap_ep_input(tether_coap_ep_t *ep, const uint8_t *buf, size_t len,
                                          tether_coap_msg_t *msg, uint8_t *reply, size_t cap,
                                          size_t *reply_len)
{
    tether_coap_perr_t perr;
    uint16_t bad;
    *reply_len = 0;
    if (tether_coap_parse(msg, buf, len, &perr) < 0) {
        reject(ep, msg, tether_coap_reject_action(msg, perr), reply, cap, reply_len);
        return TETHER_COAP_EP_STOP;
    }
    if (msg->code == TETHER_COAP_EMPTY) {
        /* CoAP ping: a CON empty message is answered with RST (§4.3). */
        if (msg->type == TETHER_COAP_CON)
            reject(ep, msg, TETHER_COAP_REJECT_RST, reply, cap, reply_len);
        else if (msg->type == TETHER_COAP_ACK || msg->type == TETHER_COAP_RST)
            return TETHER_COAP_EP_UP; /* matters to whoever sent the CON */
        return TETHER_COAP_EP_STOP;
    }
    if (tether_coap_check_opts(ep->reg, msg, &bad) < 0) {
        reject(ep, msg, tether_coap_reject_action(msg, TETHER_COAP_PERR_BAD_OPTION), reply, cap,
               reply_len);
        return TETHER_COAP_EP_STOP;
    }
    return TETHER_COAP_EP_UP;
}
