/* Worker k's configuration from the host's (workers.h): node id, channel
 * and admin ports, the siblings in the static node list, and each worker's
 * share of the host's bounds. Pure functions of the configuration, so
 * --check-config and the unit test see exactly what the workers will run
 * with.
 *
 * Bounds: the configured value of a bound is the host's, whatever the
 * number of workers (an operator sizes dtls.max_sessions by the host's
 * memory, a per-source cap by what one address may take of the host).
 * Each worker is a whole node enforcing its own copy, so a bound given
 * whole to each of n workers would allow n times the configured value.
 * The rule, per key (shared_bounds below):
 *   - host-wide budgets (sessions, handshakes, hello rate, devices,
 *     pending, observers, cache bytes, transfers, dedup, group requests,
 *     Redis backlog, admin connections) are divided: ceil(v / n), at least
 *     the key's minimum and at least 1; 0 ("off", "no cap") stays 0;
 *   - per-source, per-prefix, per-identity and per-client caps are divided
 *     too: what carries no CID (a ClientHello, a new session of an
 *     identity) reaches a worker by the kernel's hash of the 4-tuple, so
 *     one address picks its worker by its source port and one identity
 *     spreads its sessions over all workers; an admin client can connect
 *     to every worker's admin port. With the ceil, n workers together
 *     allow at most the bound rounded up to a multiple of n;
 *   - per-device and per-session bounds stay (queue_max, nstart,
 *     nstart_queue_max, uploads_per_device, max_observations_per_device,
 *     max_observers_per_resource, dedup_per_peer), as do sizes of one
 *     thing (block_max_bytes, upload_max_bytes, group_max_members) and
 *     definitions every worker holds (max_groups): the steering program
 *     (steer.h) puts a device's session, and so everything charged to the
 *     device or the session, on one worker. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../config/keys.h"
#include "tether/hostport.h"
#include "workers.h"

unsigned tetherd_workers_count(const tetherd_config_t *cfg)
{
    if (cfg->workers)
        return cfg->workers;
    /* The CPUs this process may run on (taskset, cgroup cpusets), not all
     * the host has. */
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                        : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > TETHERD_MAX_WORKERS ? TETHERD_MAX_WORKERS : (unsigned)n;
}

/* The keys whose bound is the host's, divided among the workers (the
 * header's rule). */
static const char *const shared_bounds[] = {
    "dtls.max_sessions",
    "dtls.max_handshakes",
    "dtls.hello_rate",
    "dtls.handshake_rate_per_source",
    "dtls.handshake_burst_per_source",
    "dtls.max_handshakes_per_source",
    "dtls.max_handshakes_per_prefix",
    "dtls.max_sessions_per_identity",
    "proxy.max_devices",
    "proxy.max_pending",
    "proxy.cache_bytes",
    "proxy.max_observers",
    "proxy.block_max_transfers",
    "proxy.max_pending_per_client",
    "proxy.max_observers_per_client",
    "proxy.dedup_max",
    "proxy.group_max_requests",
    "redis_backlog_max",
    "admin_max_connections",
    "admin_max_connections_per_address",
    "admin_coap_streams_per_identity",
    "admin_coap_waiting_per_identity",
};

/* Worker's share of every shared bound: ceil(v / n), at least the key's
 * minimum and 1; 0 stays 0 (off or no cap). */
static void share_bounds(tetherd_config_t *cfg, unsigned n)
{
    for (size_t i = 0; i < sizeof shared_bounds / sizeof shared_bounds[0]; i++) {
        const tetherd_key_t *k = tetherd_config_key(shared_bounds[i]);
        uint64_t v = k ? tetherd_config_uint(cfg, k) : 0;
        if (!v)
            continue;
        uint64_t share = (v + n - 1) / n, min = k->min > 1 ? (uint64_t)k->min : 1;
        tetherd_config_set_uint(cfg, k, share < min ? min : share);
    }
}

/* "HOST:PORT" with the port moved up by k ("" and port 0 stay). */
static int port_plus(const char *hp, unsigned k, char *out, size_t cap)
{
    char host[160];
    uint16_t port;
    if (!hp[0] || k == 0) {
        snprintf(out, cap, "%s", hp);
        return 0;
    }
    if (tether_hostport_split(hp, host, sizeof host, &port) < 0 || port + k > 65535)
        return TETHER_ECONFIG;
    if (port == 0) {
        snprintf(out, cap, "%s", hp);
        return 0;
    }
    bool v6 = strchr(host, ':') != NULL;
    int n = snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port + k);
    return n > 0 && (size_t)n < cap ? 0 : TETHER_ECONFIG;
}

/* The HOST:PORT string field[cap] with its port moved up by k, in place. */
static int shift(char *field, size_t cap, unsigned k)
{
    char buf[160];
    if (cap > sizeof buf || port_plus(field, k, buf, cap) < 0)
        return TETHER_ECONFIG;
    memcpy(field, buf, strlen(buf) + 1);
    return 0;
}

int tetherd_workers_check(const tetherd_config_t *cfg, char *err, size_t cap)
{
    unsigned n = tetherd_workers_count(cfg);
    const char *src = cfg->file[0] ? cfg->file : "(defaults)";
    if (n <= 1)
        return 0;
    if (cfg->node_id + n - 1 > 255) {
        snprintf(err, cap, "%s: key 'workers': %u workers take node ids %u..%u, past 255", src, n,
                 cfg->node_id, cfg->node_id + n - 1);
        return TETHER_ECONFIG;
    }
    if (!cfg->cluster_listen[0]) {
        snprintf(err, cap,
                 "%s: key 'workers': %u workers need cluster.listen (and cluster_key): worker k "
                 "listens at its port + k",
                 src, n);
        return TETHER_ECONFIG;
    }
    /* Every worker's derived configuration must hold (ports, node list). */
    static tetherd_config_t w;
    for (unsigned k = 0; k < n; k++) {
        w = *cfg;
        if (tetherd_workers_derive(&w, k, n, err, cap) < 0)
            return TETHER_ECONFIG;
    }
    return 0;
}

int tetherd_workers_derive(tetherd_config_t *cfg, unsigned k, unsigned n, char *err, size_t cap)
{
    const char *src = cfg->file[0] ? cfg->file : "(defaults)";
    const size_t max = sizeof cfg->cluster_nodes / sizeof cfg->cluster_nodes[0];
    const char *adv = cfg->cluster_advertise[0] ? cfg->cluster_advertise : cfg->cluster_listen;
    char base_adv[sizeof cfg->cluster_advertise];
    snprintf(base_adv, sizeof base_adv, "%s", adv);
    /* Siblings first, from the host's addresses: node_id + j at port + j.
     * A configured entry with a sibling's id at another address is
     * refused: replacing it silently would send that id's traffic to a
     * worker while the operator's list names another node (two nodes, one
     * id). The same entry (one nodes list shared by every host) is kept. */
    for (unsigned j = 0; j < n; j++) {
        uint8_t id = (uint8_t)(cfg->node_id + j);
        char addr[sizeof cfg->cluster_nodes[0].addr];
        if (port_plus(base_adv, j, addr, sizeof addr) < 0) {
            snprintf(err, cap, "%s: key 'cluster': worker %u's channel port is past 65535", src, j);
            return TETHER_ECONFIG;
        }
        size_t e = 0;
        while (e < cfg->ncluster_nodes && cfg->cluster_nodes[e].id != id)
            e++;
        if (e < cfg->ncluster_nodes) {
            if (strcmp(cfg->cluster_nodes[e].addr, addr) == 0)
                continue;
            snprintf(err, cap,
                     "%s: key 'cluster.nodes': node id %u (%s) is worker %u's, at %s (node_id "
                     "%u + %u); give that node another id",
                     src, id, cfg->cluster_nodes[e].addr, j, addr, cfg->node_id, j);
            return TETHER_ECONFIG;
        }
        if (e == max) {
            snprintf(err, cap, "%s: key 'cluster.nodes': no room for worker %u (at most %zu)", src,
                     j, max);
            return TETHER_ECONFIG;
        }
        cfg->ncluster_nodes++;
        cfg->cluster_nodes[e].id = id;
        memcpy(cfg->cluster_nodes[e].addr, addr, sizeof addr);
    }
    if (shift(cfg->cluster_listen, sizeof cfg->cluster_listen, k) < 0 ||
        shift(cfg->cluster_advertise, sizeof cfg->cluster_advertise, k) < 0) {
        snprintf(err, cap, "%s: key 'cluster': worker %u's channel port is past 65535", src, k);
        return TETHER_ECONFIG;
    }
    if (shift(cfg->admin, sizeof cfg->admin, k) < 0) {
        snprintf(err, cap, "%s: key 'admin': worker %u's admin port is past 65535", src, k);
        return TETHER_ECONFIG;
    }
    share_bounds(cfg, n);
    cfg->node_id += k;
    cfg->workers = n;
    return 0;
}
