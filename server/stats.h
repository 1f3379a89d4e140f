/* tetherd's /stats and /metrics tree (SPEC S11), from the pipeline's parts
 * and tetherd's own counters. */
#ifndef TETHERD_STATS_H
#define TETHERD_STATS_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "latency.h"
#include "tether/hist.h"
#include "tether/pipeline.h"
#include "udp.h"

/* What the tree is read from; all borrowed for the call. */
typedef struct {
    const tetherd_config_t *cfg;
    const tether_pipeline_t *pipe;
    const tetherd_txstats_t *tx;
    const tether_hist_t *service; /* receive batches' service time, us */
    const tetherd_lat_t *lat;     /* relayed requests' latency */
} tetherd_stats_src_t;

/* Sets every S11 path in `st` (through tetherd_admin_stat_set). Returns 0
 * or TETHER_ENOMEM. */
int tetherd_stats_fill(json_t *st, const tetherd_stats_src_t *src);

/* /ready's answer: true when every configured listener (`want`) is up
 * (`up`) and the node is not draining; `detail` says why not, and how
 * Redis is (`redis`: its state, NULL without it). A Redis outage does not
 * make a node unready (SPEC S5: it serves from its replica). */
bool tetherd_ready_fill(json_t *detail, size_t up, size_t want, const char *redis, bool draining);

#endif
