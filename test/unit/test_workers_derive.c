/* Unit tests for server/workers/derive.c: worker k's configuration from
 * the host's (node id node_id + k, channel and admin ports + k, every
 * sibling in the static node list at its own channel port, listeners
 * unchanged) and the checks --check-config makes for workers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../server/workers/workers.h"

static tetherd_config_t base_cfg(void)
{
    tetherd_config_t c;
    memset(&c, 0, sizeof c);
    c.node_id = 10;
    c.workers = 3;
    snprintf(c.admin, sizeof c.admin, "127.0.0.1:8080");
    snprintf(c.cluster_listen, sizeof c.cluster_listen, "0.0.0.0:7000");
    snprintf(c.cluster_advertise, sizeof c.cluster_advertise, "[fd00::1]:7100");
    c.ncluster_nodes = 2; /* another host's node, and this host's worker 1 as it derives it */
    c.cluster_nodes[0].id = 40;
    snprintf(c.cluster_nodes[0].addr, sizeof c.cluster_nodes[0].addr, "10.0.0.4:7000");
    c.cluster_nodes[1].id = 11;
    snprintf(c.cluster_nodes[1].addr, sizeof c.cluster_nodes[1].addr, "[fd00::1]:7101");
    return c;
}

static const char *node_addr(const tetherd_config_t *c, uint8_t id)
{
    for (size_t i = 0; i < c->ncluster_nodes; i++)
        if (c->cluster_nodes[i].id == id)
            return c->cluster_nodes[i].addr;
    return NULL;
}

static void test_worker_k(void **state)
{
    (void)state;
    char err[256];
    tetherd_config_t c = base_cfg();
    assert_int_equal(tetherd_workers_count(&c), 3);
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), 0);
    assert_int_equal(tetherd_workers_derive(&c, 2, 3, err, sizeof err), 0);
    assert_int_equal(c.node_id, 12);
    assert_string_equal(c.cluster_listen, "0.0.0.0:7002");
    assert_string_equal(c.cluster_advertise, "[fd00::1]:7102");
    assert_string_equal(c.admin, "127.0.0.1:8082");
    assert_int_equal(c.ncluster_nodes, 4); /* 40, 11 (the same entry, kept), 10, 12 */
    assert_string_equal(node_addr(&c, 40), "10.0.0.4:7000");
    assert_string_equal(node_addr(&c, 10), "[fd00::1]:7100");
    assert_string_equal(node_addr(&c, 11), "[fd00::1]:7101");
    assert_string_equal(node_addr(&c, 12), "[fd00::1]:7102");
}

static void test_port_zero_and_worker_zero(void **state)
{
    (void)state;
    char err[256];
    tetherd_config_t c = base_cfg();
    snprintf(c.admin, sizeof c.admin, "127.0.0.1:0");
    c.cluster_advertise[0] = 0;
    c.ncluster_nodes = 1; /* entry 11 named the advertised address */
    assert_int_equal(tetherd_workers_derive(&c, 1, 3, err, sizeof err), 0);
    assert_string_equal(c.admin, "127.0.0.1:0"); /* each worker picks a free port */
    assert_string_equal(c.cluster_advertise, "");
    assert_string_equal(node_addr(&c, 12), "0.0.0.0:7002"); /* from cluster.listen */
    c = base_cfg();
    assert_int_equal(tetherd_workers_derive(&c, 0, 3, err, sizeof err), 0);
    assert_int_equal(c.node_id, 10);
    assert_string_equal(c.admin, "127.0.0.1:8080");
}

static void test_checks(void **state)
{
    (void)state;
    char err[256];
    tetherd_config_t c = base_cfg();
    c.node_id = 254; /* 254, 255, 256 */
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "past 255"));
    c = base_cfg();
    c.cluster_listen[0] = 0;
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "cluster.listen"));
    c = base_cfg();
    snprintf(c.admin, sizeof c.admin, "127.0.0.1:65534");
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "65535"));
    c = base_cfg();
    c.ncluster_nodes = sizeof c.cluster_nodes / sizeof c.cluster_nodes[0];
    for (size_t i = 0; i < c.ncluster_nodes; i++)
        c.cluster_nodes[i].id = (uint8_t)(100 + i);
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "no room"));
    c = base_cfg();
    c.workers = 1; /* one worker: nothing derived, nothing needed */
    c.cluster_listen[0] = 0;
    c.node_id = 255;
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), 0);
    c.workers = 0; /* one per core: at least one */
    assert_true(tetherd_workers_count(&c) >= 1);
}

/* A configured node with a worker's id elsewhere is another node: two
 * nodes would share that id (its CIDs, its leases), so the configuration
 * is refused rather than the entry replaced. */
static void test_sibling_id_taken(void **state)
{
    (void)state;
    char err[256];
    tetherd_config_t c = base_cfg();
    snprintf(c.cluster_nodes[1].addr, sizeof c.cluster_nodes[1].addr, "10.9.9.9:1");
    assert_int_equal(tetherd_workers_check(&c, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "cluster.nodes"));
    assert_non_null(strstr(err, "node id 11"));
    assert_non_null(strstr(err, "10.9.9.9:1"));
    c = base_cfg();
    assert_int_equal(tetherd_workers_derive(&c, 0, 3, err, sizeof err), 0);
    c = base_cfg();
    snprintf(c.cluster_nodes[1].addr, sizeof c.cluster_nodes[1].addr, "10.9.9.9:1");
    assert_int_equal(tetherd_workers_derive(&c, 0, 3, err, sizeof err), TETHER_ECONFIG);
}

/* The host's bounds are shared among the workers (derive.c's rule): n
 * workers together allow the configured bound (rounded up to a multiple
 * of n), not n times it; per-device bounds stay; 0 (off) stays 0. */
static void test_bounds_shared(void **state)
{
    (void)state;
    char err[256];
    tetherd_config_t c = base_cfg();
    c.dtls_max_sessions = 100000;
    c.dtls_max_handshakes = 10;
    c.dtls_hs_inflight = 4;
    c.dtls_hs_rate = 0; /* off */
    c.dtls_hs_burst = 1;
    c.dtls_sessions_per_id = 2;
    c.dtls_hello_rate = 3000;
    c.admin_max_connections = 64;
    c.admin_max_connections_per_address = 16;
    c.proxy_max_pending = 4096;
    c.proxy_max_pending_per_client = 1024;
    c.proxy_cache_bytes = 1000;
    c.proxy_dedup_max = 20; /* key minimum 16 */
    c.redis_backlog_max = 100000;
    c.proxy_queue_max = 8; /* per device: stays */
    c.proxy_nstart = 1;
    c.proxy_dedup_per_peer = 64;
    c.proxy_max_observations_per_device = 4;
    assert_int_equal(tetherd_workers_derive(&c, 1, 3, err, sizeof err), 0);
    assert_int_equal(c.dtls_max_sessions, 33334);
    assert_int_equal(c.dtls_max_handshakes, 4);
    assert_int_equal(c.dtls_hs_inflight, 2);
    assert_int_equal(c.dtls_hs_rate, 0);
    assert_int_equal(c.dtls_hs_burst, 1);
    assert_int_equal(c.dtls_sessions_per_id, 1);
    assert_int_equal(c.dtls_hello_rate, 1000);
    assert_int_equal(c.admin_max_connections, 22);
    assert_int_equal(c.admin_max_connections_per_address, 6);
    assert_int_equal(c.proxy_max_pending, 1366);
    assert_int_equal(c.proxy_max_pending_per_client, 342);
    assert_int_equal(c.proxy_cache_bytes, 334);
    assert_int_equal(c.proxy_dedup_max, 16);
    assert_int_equal(c.redis_backlog_max, 33334);
    assert_int_equal(c.proxy_queue_max, 8);
    assert_int_equal(c.proxy_nstart, 1);
    assert_int_equal(c.proxy_dedup_per_peer, 64);
    assert_int_equal(c.proxy_max_observations_per_device, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_k),      cmocka_unit_test(test_port_zero_and_worker_zero),
        cmocka_unit_test(test_checks),        cmocka_unit_test(test_sibling_id_taken),
        cmocka_unit_test(test_bounds_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
