/* tether — resources the node serves itself (not proxied). */
#ifndef TETHER_LOCAL_H
#define TETHER_LOCAL_H

#include "tether/coap_ep.h"

typedef struct {
    uint8_t node_id;
    const char *version;
} tether_local_t;

/* True when `req` addresses the node itself rather than a device: no
 * Uri-Host and no Proxy-Uri / Proxy-Scheme. */
TETHER_API bool tether_local_is_for_node(const tether_coap_msg_t *req);

/* Answers a request for a local resource into `resp` (started with
 * tether_coap_ep_response). Payload bytes are written to scratch[cap], which
 * must outlive resp. Unknown path -> 4.04, wrong method -> 4.05. */
TETHER_API int tether_local_handle(const tether_local_t *node, tether_coap_ep_t *ep,
                                   const tether_coap_msg_t *req, tether_coap_msg_t *resp,
                                   uint8_t *scratch, size_t cap);

#endif
