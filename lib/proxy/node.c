/* Node-level dispatch: CoAP endpoint layer, then local resources or the
 * proxy (not yet wired: 5.05). */
#include <string.h>

#include "tether/node.h"

int tether_node_init(tether_node_t *node, const tether_node_conf_t *conf)
{
    memset(node, 0, sizeof *node);
    int rc = tether_coap_optreg_init(&node->optreg, conf->opt_multicast_timeout,
                                     conf->opt_reply_from);
    if (rc < 0)
        return rc;
    tether_coap_ep_init(&node->plain_ep, &node->optreg, conf->first_mid);
    tether_coap_ep_init(&node->secure_ep, &node->optreg, (uint16_t)(conf->first_mid ^ 0x8000));
    node->local.node_id = conf->node_id;
    node->local.version = conf->version;
    return 0;
}

tether_layer_res_t tether_node_coap_input(tether_node_t *node, const tether_peer_t *peer,
                                          const uint8_t *buf, size_t len, tether_time_t now,
                                          uint8_t *reply, size_t cap, size_t *reply_len)
{
    (void)now;
    tether_coap_ep_t *ep = peer->secure ? &node->secure_ep : &node->plain_ep;
    tether_coap_msg_t req, resp;
    uint8_t scratch[1024];
    node->stats.rx_datagrams++;
    tether_layer_res_t r =
        tether_coap_ep_input(ep, buf, len, &req, reply, cap, reply_len);
    if (r != TETHER_LAYER_CONTINUE) {
        if (*reply_len > 0 && reply[1] != 0)
            node->stats.rx_rejected++;
        return r;
    }
    if (!tether_coap_is_request(req.code))
        return TETHER_LAYER_STOP; /* no exchanges of our own on this endpoint yet */
    if (tether_local_is_for_node(&req)) {
        node->stats.requests_local++;
        if (tether_local_handle(&node->local, ep, &req, &resp, scratch,
                                sizeof scratch) < 0)
            tether_coap_ep_response(ep, &req, TETHER_COAP_INTERNAL_ERROR, &resp);
    } else {
        node->stats.requests_refused++;
        tether_coap_ep_response(ep, &req, TETHER_COAP_PROXYING_NOT_SUPPORTED, &resp);
    }
    if (tether_coap_encode(&resp, reply, cap, reply_len) < 0)
        *reply_len = 0;
    return TETHER_LAYER_STOP;
}
