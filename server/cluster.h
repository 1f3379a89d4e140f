/* tetherd's end of the cluster's internal channel (SPEC S5): the UDP
 * socket around lib/cluster's sans-I/O channel, which runs inside the
 * pipeline (tether/pipeline.h; tether/channel.h:
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

/* The channel's configuration from tetherd's: node id, cluster key, and
 * clients routed through other nodes remembered at most the session limit
 * at once and for the session idle timeout. */
void tetherd_cluster_conf(const tetherd_config_t *cfg, tether_channel_conf_t *cc);

/* Resolves every configured node into `ch` (static membership), opens
 * the internal socket on cfg->cluster_listen (reading with recvmmsg where
 * libuv can, socket buffers as the listeners') and starts reading it with
 * alloc and recv, the handle's data set to `data`: the caller feeds what
 * arrives to the pipeline's cluster interface, a whole receive batch
 * before it sends (the replies it causes are bundled). Returns 0, or a
 * TETHER_E* code with a message in err. */
int tetherd_cluster_open(uv_loop_t *loop, const tetherd_config_t *cfg, tether_channel_t *ch,
                         uv_alloc_cb alloc, uv_udp_recv_cb recv, void *data,
                         tetherd_cluster_t **out, char *err, size_t errcap);
/* Closes the socket; frees the cluster after the loop ran. */
void tetherd_cluster_close(tetherd_cluster_t *c);
/* The internal socket, for what the pipeline's outbox sends on it. */
uv_udp_t *tetherd_cluster_sock(tetherd_cluster_t *c);

/* Wall-clock milliseconds (Unix epoch), for what must agree between hosts:
 * message timestamps, cookie-secret epochs. */
uint64_t tetherd_wall_ms(void);

#endif
