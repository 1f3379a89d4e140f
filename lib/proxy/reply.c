/* The node's answers (see reply.h). */
#include <string.h>

#include "proxy/reply.h"

void tether_reply_head(tether_node_t *n, const tether_link_t *link, uint8_t req_type,
                       uint16_t req_mid, bool acked, uint8_t *type, uint16_t *mid,
                       tether_time_t now)
{
    if (req_type == TETHER_COAP_CON && !acked) {
        *type = TETHER_COAP_ACK;
        *mid = req_mid;
        return;
    }
    *type = req_type == TETHER_COAP_CON ? TETHER_COAP_CON : TETHER_COAP_NON;
    /* The per-peer MID space is exhausted for now (or out of memory): an
     * answer still beats none, on the endpoint's own counter. */
    if (tether_cx_next_mid(n->cx, link, now, mid) < 0)
        *mid = n->ep.next_mid++;
}

void tether_reply_to(tether_node_t *n, const tether_link_t *link, uint8_t ctype, uint16_t cmid,
                     const uint8_t *ctok, uint8_t ctkl, bool acked, tether_coap_msg_t *resp,
                     tether_time_t now)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    tether_coap_msg_set_token(resp, ctok, ctkl);
    tether_reply_head(n, link, ctype, cmid, acked, &resp->type, &resp->mid, now);
    if (tether_coap_encode(resp, buf, sizeof buf, &len) < 0) {
        tether_coap_msg_t err;
        tether_coap_msg_init(&err, resp->type, TETHER_COAP_BAD_GATEWAY, resp->mid);
        tether_coap_msg_set_token(&err, ctok, ctkl);
        if (tether_coap_encode(&err, buf, sizeof buf, &len) < 0)
            return;
    }
    if (resp->type == TETHER_COAP_CON) /* separate response (RFC 7252 §5.2.2) */
        tether_cx_send_con(n->cx, link, buf, len, NULL, now);
    else if (resp->type == TETHER_COAP_ACK)
        tether_cx_reply(n->cx, link, cmid, buf, len);
    else
        tether_cx_emit(n->cx, link, buf, len);
}

void tether_reply_start(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                        uint8_t code, tether_coap_msg_t *resp, tether_time_t now)
{
    uint8_t type;
    uint16_t mid;
    tether_reply_head(n, link, req->type, req->mid, false, &type, &mid, now);
    tether_coap_msg_init(resp, type, code, mid);
    tether_coap_msg_set_token(resp, req->token, req->tkl);
}

void tether_reply_send(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       const tether_coap_msg_t *resp)
{
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    if (tether_coap_encode(resp, buf, sizeof buf, &len) < 0) {
        tether_coap_msg_t err;
        tether_coap_msg_init(&err, resp->type, TETHER_COAP_INTERNAL_ERROR, resp->mid);
        tether_coap_msg_set_token(&err, resp->token, resp->tkl);
        if (tether_coap_encode(&err, buf, sizeof buf, &len) < 0)
            return;
    }
    tether_cx_reply(n->cx, link, req->mid, buf, len);
}

void tether_reply_code(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       uint8_t code, const char *diag, tether_time_t now)
{
    tether_coap_msg_t resp;
    tether_reply_start(n, link, req, code, &resp, now);
    if (diag) { /* diagnostic payload (RFC 7252 §5.5.2) */
        resp.payload = (const uint8_t *)diag;
        resp.payload_len = strlen(diag);
    }
    tether_reply_send(n, link, req, &resp);
}

void tether_reply_add_max_age(tether_coap_msg_t *resp, uint32_t retry_s, uint8_t v[4])
{
    tether_coap_msg_add_opt(resp, TETHER_COAP_OPT_MAX_AGE, v, tether_coap_uint_encode(retry_s, v));
}

void tether_reply_retry(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                        uint8_t code, uint32_t retry_s, tether_time_t now)
{
    tether_coap_msg_t resp;
    uint8_t v[4];
    tether_reply_start(n, link, req, code, &resp, now);
    tether_reply_add_max_age(&resp, retry_s, v);
    tether_reply_send(n, link, req, &resp);
}

void tether_reply_empty(tether_node_t *n, const tether_link_t *link, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | type << 4), 0, (uint8_t)(mid >> 8),
                    (uint8_t)mid};
    tether_cx_reply(n->cx, link, mid, b, sizeof b);
}

void tether_reply_device_answer(const tether_coap_msg_t *msg, tether_coap_msg_t *resp)
{
    tether_coap_msg_init(resp, TETHER_COAP_NON, msg->code, 0);
    for (size_t i = 0; i < msg->nopts; i++)
        if (msg->opts[i].num != TETHER_COAP_OPT_OBSERVE)
            tether_coap_msg_add_opt(resp, msg->opts[i].num, msg->opts[i].val, msg->opts[i].len);
    resp->payload = msg->payload;
    resp->payload_len = msg->payload_len;
}
