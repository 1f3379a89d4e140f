/* Worker k's configuration from the host's (workers.h): node id, channel
 * and admin ports, and the siblings in the static node list. Pure
 * functions of the configuration, so --check-config and the unit test see
 * exactly what the workers will run with. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
     * They replace entries of the same ids in the configured list. */
    for (unsigned j = 0; j < n; j++) {
        uint8_t id = (uint8_t)(cfg->node_id + j);
        size_t e = 0;
        while (e < cfg->ncluster_nodes && cfg->cluster_nodes[e].id != id)
            e++;
        if (e == cfg->ncluster_nodes) {
            if (e == max) {
                snprintf(err, cap, "%s: key 'cluster.nodes': no room for worker %u (at most %zu)",
                         src, j, max);
                return TETHER_ECONFIG;
            }
            cfg->ncluster_nodes++;
        }
        cfg->cluster_nodes[e].id = id;
        if (port_plus(base_adv, j, cfg->cluster_nodes[e].addr, sizeof cfg->cluster_nodes[e].addr) <
            0) {
            snprintf(err, cap, "%s: key 'cluster': worker %u's channel port is past 65535", src, j);
            return TETHER_ECONFIG;
        }
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
    cfg->node_id += k;
    cfg->workers = n;
    return 0;
}
