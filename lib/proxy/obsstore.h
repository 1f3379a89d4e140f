/* tether — the cluster's observe registry in the state store (internal to
 * lib/proxy; SPEC S5 "Redis holds ... observe registry (device resource ->
 * observers)").
 *
 * One OBSERVE record per observed resource and node: key = the resource's
 * cache key (it starts with the device name, which the Redis layout uses
 * as the hash tag) followed by the node id byte; value = that node's
 * client observers (node id, link key, token). Each node writes only its
 * own record, so no two nodes race on one key; the device's node counts
 * only its own clients there (the other nodes' aggregates are theirs to
 * write) and deletes the record of a node that went silent, 30 s later
 * (its clients' sessions may be adopted: the adopter reads the record to
 * register them again, SPEC S5; tether_node_observer_adopt). GET
 * /observations joins the records of a resource.
 */
#ifndef TETHER_PROXY_OBSSTORE_H
#define TETHER_PROXY_OBSSTORE_H

#include "proxy/node_int.h"

/* The registry's entry for the client on `link` with token tok[tkl]. */
void tether_obsstore_observer(const tether_node_t *n, const tether_link_t *link, const uint8_t *tok,
                              size_t tkl, tether_store_observer_t *out);
/* Writes this node's observers of resource key[kl] (device `device`,
 * registered upstream with utok); none: deletes the record. */
void tether_obsstore_write(tether_node_t *n, const uint8_t *key, size_t kl, const char *device,
                           const uint8_t *utok, size_t utok_len, const tether_store_observer_t *obs,
                           size_t nobs, tether_time_t now);
/* Deletes node `node_id`'s record of resource key[kl]. */
void tether_obsstore_drop(tether_node_t *n, const uint8_t *key, size_t kl, uint8_t node_id,
                          tether_time_t now);

#endif
