/* tetherd's end of the cluster's internal channel (SPEC S5): a UDP socket
 * between nodes carrying lib/cluster messages.
 *
 * A DTLS record whose CID names another node is forwarded to it; the
 * client address of each record that arrived that way is remembered, so
 * the owner's answers go back through the node the client talks to
 * (route_out). Membership is the configured node list; a node counts as
 * alive while its heartbeats (every second) keep arriving.
 */
#ifndef TETHERD_CLUSTER_H
#define TETHERD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "tether/addr.h"

typedef struct tetherd_cluster tetherd_cluster_t;

typedef struct {
    /* A client's datagram that node `via` received and forwarded to us:
     * feed it to DTLS as if it had come from `client`, then report what
     * authenticated with tetherd_cluster_authenticated. */
    void (*deliver)(void *user, const tether_addr_t *client, uint8_t via, const uint8_t *data,
                    size_t len);
    /* A datagram another node's session sends to a client that talks to
     * us: send it from our DTLS socket. */
    void (*reply)(void *user, const tether_addr_t *client, const uint8_t *data, size_t len);
    /* Sends a datagram on the internal socket (the caller may batch it). */
    void (*send)(void *user, uv_udp_t *sock, const tether_addr_t *to, const uint8_t *data,
                 size_t len);
} tetherd_cluster_ops_t;

typedef struct {
    uint64_t nodes_configured; /* this node included */
    uint64_t nodes_alive;      /* this node and peers heard from lately */
    uint64_t forwarded_records; /* records we sent to the node owning their CID */
    uint64_t forwarded_in;      /* records other nodes sent us */
    uint64_t replies_out;       /* our datagrams that left through another node */
    uint64_t replies_in;        /* other nodes' datagrams we sent to clients */
    uint64_t rejected;          /* internal messages refused (MAC, age, malformed) */
    uint64_t unroutable;        /* records for a node we do not know */
} tetherd_cluster_stats_t;

/* Opens the internal channel on cfg->cluster_listen and resolves every
 * configured node. Returns 0, or a TETHER_E* code with a message in err. */
/* Clients routed through other nodes are remembered at most `max` at once
 * (the session limit) and until `idle_ms` without an authenticated record
 * (the session idle timeout). */
int tetherd_cluster_open(uv_loop_t *loop, const tetherd_config_t *cfg,
                         const tetherd_cluster_ops_t *ops, void *user, tetherd_cluster_t **out,
                         char *err, size_t errcap);
/* Closes the socket and timer; frees the cluster after the loop ran. */
void tetherd_cluster_close(tetherd_cluster_t *c);

/* A datagram that arrived on a DTLS listener from `from`. Returns true when
 * it was forwarded to the node owning its CID (the caller drops it). */
bool tetherd_cluster_route_in(tetherd_cluster_t *c, const tether_addr_t *from,
                              const uint8_t *data, size_t len);
/* A record from `client` authenticated in one of our sessions, having come
 * through node `via` (0: straight to us). Only this changes where our
 * datagrams for `client` leave from: unauthenticated traffic never does. */
void tetherd_cluster_authenticated(tetherd_cluster_t *c, const tether_addr_t *client, uint8_t via);
/* A datagram our DTLS layer sends to `to`. Returns true when `to` talks to
 * another node, which got it to send (the caller drops it). */
bool tetherd_cluster_route_out(tetherd_cluster_t *c, const tether_addr_t *to,
                               const uint8_t *data, size_t len);

const tetherd_cluster_stats_t *tetherd_cluster_stats(const tetherd_cluster_t *c);

/* Wall-clock milliseconds (Unix epoch), for what must agree between hosts:
 * message timestamps, cookie-secret epochs. */
uint64_t tetherd_wall_ms(void);

#endif
