/* tether — the resource directory (internal to lib/proxy; RFC 9176 subset,
 * SPEC S3).
 *
 * Over the device tunnel: POST /rd?ep=NAME&lt=S&b=UQ with a link-format
 * payload registers (2.01, Location-Path rd/<regid>); POST /rd/<regid>
 * updates; DELETE /rd/<regid> removes. `ep` must equal the DTLS identity
 * (4.03); the lifetime (default 90000 s) expiring removes it. Removal, by
 * any of DELETE, expiry or an operator, fails the device's requests and
 * ends its observations with 5.02.
 *
 * Every registration, update and removal is written through the node's
 * state store (tether/store.h) as the device's directory entry; the
 * registry (proxy/registry.h) keeps this node's runtime state. Writes are
 * asynchronous and never hold up the answer to the device: a failed write
 * is logged and the next registration or update writes the entry again.
 */
#ifndef TETHER_PROXY_RD_H
#define TETHER_PROXY_RD_H

#include "proxy/node_int.h"

/* A request for /rd or /rd/<id> from `peer`. */
void tether_rd_handle(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                      tether_time_t now);
/* Removes `d` (see above). */
void tether_rd_remove(tether_node_t *n, tether_device_t *d, tether_time_t now);
/* Removes the devices whose lifetime ran out by `now`. */
void tether_rd_expire(tether_node_t *n, tether_time_t now);

#endif
