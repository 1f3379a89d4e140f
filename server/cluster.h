/* tetherd's end of the cluster's internal channel (SPEC S5): the UDP
 * socket and timer around lib/cluster's sans-I/O channel (tether/channel.h:
 * forwarding by CID, replies through the node the client talks to,
 * membership from the configured node list, liveness from heartbeats,
 * replay windows).
 */
#ifndef TETHERD_CLUSTER_H
#define TETHERD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "tether/addr.h"
#include "tether/channel.h"

typedef struct tetherd_cluster tetherd_cluster_t;

typedef struct {
    /* A client's datagram that node `via` received on its listener `iface`
     * and forwarded to us: feed it to DTLS as if it had come from `client`,
     * then report what authenticated with tetherd_cluster_authenticated. */
    void (*deliver)(void *user, const tether_addr_t *client, uint8_t via, uint8_t iface,
                    const uint8_t *data, size_t len);
    /* A datagram another node's session sends to a client that talks to
     * us: send it from our listener `iface`. */
    void (*reply)(void *user, const tether_addr_t *client, uint8_t iface, const uint8_t *data,
                  size_t len);
    /* Sends a datagram on the internal socket (the caller may batch it). */
    void (*send)(void *user, uv_udp_t *sock, const tether_addr_t *to, const uint8_t *data,
                 size_t len);
} tetherd_cluster_ops_t;

/* Opens the internal channel on cfg->cluster_listen and resolves every
 * configured node. Clients routed through other nodes are remembered at
 * most the session limit at once and for the session idle timeout.
 * Returns 0, or a TETHER_E* code with a message in err. */
int tetherd_cluster_open(uv_loop_t *loop, const tetherd_config_t *cfg,
                         const tetherd_cluster_ops_t *ops, void *user, tetherd_cluster_t **out,
                         char *err, size_t errcap);
/* Closes the socket and timer; frees the cluster after the loop ran. */
void tetherd_cluster_close(tetherd_cluster_t *c);

/* A datagram that arrived on DTLS listener `iface` from `from`. Returns
 * true when it was forwarded to the node owning its CID (the caller drops
 * it). */
bool tetherd_cluster_route_in(tetherd_cluster_t *c, uint8_t iface, const tether_addr_t *from,
                              const uint8_t *data, size_t len);
/* A record from `client` authenticated in one of our sessions, having come
 * through node `via` (0: straight to us). */
void tetherd_cluster_authenticated(tetherd_cluster_t *c, const tether_addr_t *client, uint8_t via);
/* A datagram our DTLS layer sends to `to` from listener `iface`. Returns
 * true when `to` talks to another node, which got it to send. */
bool tetherd_cluster_route_out(tetherd_cluster_t *c, const tether_addr_t *to, uint8_t iface,
                               const uint8_t *data, size_t len);

/* Node `id` is at `addr` (membership from Redis leases). 0 (also when it
 * was known already: its first address stays) or a TETHER_E* code. */
int tetherd_cluster_add_node(tetherd_cluster_t *c, uint8_t id, const tether_addr_t *addr);
/* Whether the channel hears node `id`'s heartbeats (ourselves always). */
bool tetherd_cluster_node_alive(const tetherd_cluster_t *c, uint8_t id);

const tether_channel_stats_t *tetherd_cluster_stats(const tetherd_cluster_t *c);

/* Wall-clock milliseconds (Unix epoch), for what must agree between hosts:
 * message timestamps, cookie-secret epochs. */
uint64_t tetherd_wall_ms(void);

#endif
