/* tether-bench suite: the stages with several tetherd processes (two
 * cluster nodes, or one tetherd's workers) and a redis-server where they
 * share state. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "suite_int.h"
#include "tether/common.h"

/* Cross-node CID forwarding (SPEC S5, S9): two tetherd nodes, both on the
 * server CPU. Devices and every load session handshake with node 1; the
 * same workload is measured twice, its records sent to node 1 directly and
 * then to node 2, which forwards them by CID to node 1 (whose answers go
 * back through node 2). The row is the throughput lost. */
void stage_cross(suite_t *S)
{
    row_t *r = &rows[R_CROSS];
    int ports = free_port_pair();
    if (ports < 0)
        return;
    char path[400], text[1024];
    for (int id = 1; id <= 2; id++) {
        snprintf(path, sizeof path, "%s/cross%d.json", S->dir, id);
        snprintf(text, sizeof text,
                 "{\"node_id\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
                 "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
                 "\"credentials_file\": \"%s/creds.json\", \"log_level\": \"info\", "
                 "\"cluster_key\": \"bench-cluster-key-0123456789\", "
                 "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
                 "\"cluster\": {\"listen\": \"127.0.0.1:%d\", "
                 "\"nodes\": {\"1\": \"127.0.0.1:%d\", \"2\": \"127.0.0.1:%d\"}}}\n",
                 id, S->dir, ports + id - 1, ports, ports + 1);
        if (write_file(path, text) < 0)
            return;
    }
    server_t n1, n2 = {.pid = -1};
    if (tetherd_start(S, "cross1.json", "tetherd-cross1", &n1) < 0)
        return;
    if (tetherd_start(S, "cross2.json", "tetherd-cross2", &n2) < 0) {
        stop_pid(&n1.pid);
        return;
    }
    char server[32], via[32], target[32], conc[8];
    snprintf(server, sizeof server, "127.0.0.1:%s", n1.port);
    snprintf(via, sizeof via, "127.0.0.1:%s", n2.port);
    snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
    snprintf(conc, sizeof conc, "%d", CONC);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "cross-devices", &registered);
    if (registered) {
        char p1[16], p2[16]; /* --cpu-pid node 1, node 2: server_cpu_each in that order */
        snprintf(p1, sizeof p1, "%d", (int)n1.pid);
        snprintf(p2, sizeof p2, "%d", (int)n2.pid);
        say(S, "cross-node: relayed requests sent to node 1 directly, %s s", dur_s);
        json_t *a = run_bench(S, "cross-direct", -1, NULL, "load", "--server", server, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *s1 = tetherd_stats(&n1), *s2 = tetherd_stats(&n2);
        say(S, "cross-node: the same, records sent to node 2 and forwarded by CID, %s s", dur_s);
        json_t *b =
            run_bench(S, "cross-via", -1, NULL, "load", "--server", server, "--records-to", via,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--target", target,
                      "--concurrency", conc, "--duration", dur_s, "--warmup", warm_s, "--cipher",
                      CIPHER_PSK, "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *e1 = tetherd_stats(&n1), *e2 = tetherd_stats(&n2);
        double direct = a ? jnum(a, "throughput_rps") : -1,
               fwd = b ? jnum(b, "throughput_rps") : -1;
        /* CPU of both nodes over each window (--cpu-pid node 1, node 2). */
        json_t *ca = json_object_get(a, "server_cpu_each"),
               *cb = json_object_get(b, "server_cpu_each");
        double d1 = json_number_value(json_array_get(ca, 0)),
               d2 = json_number_value(json_array_get(ca, 1));
        double v1 = json_number_value(json_array_get(cb, 0)),
               v2 = json_number_value(json_array_get(cb, 1));
        /* Messages on the internal channel during the forwarded run (includes
         * its warm-up): node 2's records to node 1 and node 1's replies. */
        double msgs =
            (jnum(e2, "cluster.forwarded_records") - jnum(s2, "cluster.forwarded_records")) +
            (jnum(e1, "cluster.replies_out") - jnum(s1, "cluster.replies_out"));
        double secs_b = b ? jnum(b, "duration_s") + jnum(b, "warmup_s") : -1;
        if (direct > 0 && fwd >= 0) {
            /* Both runs are limited by the load generator, not by the
             * nodes' core, so their throughputs differ by its noise; the
             * row is the loss per busy core-second of both nodes (what the
             * shared core could do at saturation), the raw loss, not
             * clamped (negative: the forwarded run was faster), beside it. */
            double raw = 100.0 * (1.0 - fwd / direct);
            bool pc = d1 + d2 > 0.05 && v1 + v2 > 0.05 && fwd > 0;
            r->tether = pc ? 100.0 * (1.0 - (fwd / (v1 + v2)) / (direct / (d1 + d2))) : raw;
            row_detail(r, "direct_rps", direct);
            row_detail(r, "forwarded_rps", fwd);
            row_detail(r, "raw_loss_pct", raw);
            row_detail(r, "channel_messages", msgs);
            r->tether_cpu = v1 + v2;
            int used = snprintf(r->note, sizeof r->note,
                                "%s; relayed cache misses: %.0f req/s direct (node 1 %.0f%%, "
                                "node 2 %.0f%% busy), %.0f req/s with every client record "
                                "entering at node 2 (node 1 %.0f%%, node 2 %.0f%%): raw "
                                "throughput loss %.1f%%; both nodes share one core, so node 2's "
                                "forwarding work is taken from node 1",
                                pc ? "loss per busy core-second of both nodes"
                                   : "raw throughput loss (CPU shares unknown)",
                                direct, d1 * 100, d2 * 100, fwd, v1 * 100, v2 * 100, raw);
            if (used > 0 && (size_t)used < sizeof r->note && direct > 0 && fwd > 0 && msgs > 0 &&
                secs_b > 0 && d1 >= 0 && v1 >= 0) {
                /* core-seconds per request in each run; the difference over the
                 * internal-channel messages per request (from the counters over the
                 * whole forwarded run, warm-up included, at the window's rate) is
                 * what one forwarded message costs the cluster */
                double per_req_d = (d1 + d2) / direct, per_req_v = (v1 + v2) / fwd;
                double msgs_per_req = msgs / (fwd * secs_b);
                snprintf(r->note + used, sizeof r->note - used,
                         "; CPU per request %.1f us direct, %.1f us forwarded (both nodes); "
                         "%.2f internal-channel messages (records forwarded and replies) per "
                         "request: %.2f us of CPU per forwarded message",
                         per_req_d * 1e6, per_req_v * 1e6, msgs_per_req,
                         (per_req_v - per_req_d) / msgs_per_req * 1e6);
                row_detail(r, "cpu_us_per_message", (per_req_v - per_req_d) / msgs_per_req * 1e6);
            }
        }
        json_decref(a);
        json_decref(b);
        json_decref(s1);
        json_decref(s2);
        json_decref(e1);
        json_decref(e2);
    }
    stop_pid(&dev);
    stop_pid(&n2.pid);
    stop_pid(&n1.pid);
}

/* Cross-node relay (SPEC S5): the same relayed cache-miss workload twice
 * on one two-node cluster sharing a redis-server (the device directory),
 * both nodes on the server CPU: clients on node 1, where the devices'
 * tunnels are (the same-node relay, the reference), then clients on node
 * 2, which relays each request to node 1 over the internal channel
 * (lib/proxy/xrelay.h) and the answer back. The row is the cross-node
 * throughput; its ratio to the same-node run is per busy core-second of
 * both nodes when their CPU shares are known. */
void stage_xrelay(suite_t *S)
{
    row_t *r = &rows[R_XRELAY];
    int ports = free_port_pair(), rport;
    if (ports < 0)
        return;
    pid_t redis = redis_start(S, "xrelay", r, &rport);
    if (redis < 0)
        return;
    char path[400], text[1024];
    for (int id = 1; id <= 2; id++) {
        snprintf(path, sizeof path, "%s/xrelay%d.json", S->dir, id);
        snprintf(text, sizeof text,
                 "{\"node_id\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
                 "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
                 "\"credentials_file\": \"%s/creds.json\", \"log_level\": \"info\", "
                 "\"cluster_key\": \"bench-cluster-key-0123456789\", "
                 "\"redis_url\": \"redis://127.0.0.1:%d\", "
                 "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
                 "\"cluster\": {\"listen\": \"127.0.0.1:%d\"}}\n",
                 id, S->dir, rport, ports + id - 1);
        if (write_file(path, text) < 0) {
            stop_pid(&redis);
            return;
        }
    }
    server_t n1, n2 = {.pid = -1};
    if (tetherd_start(S, "xrelay1.json", "tetherd-xrelay1", &n1) < 0) {
        stop_pid(&redis);
        return;
    }
    if (tetherd_start(S, "xrelay2.json", "tetherd-xrelay2", &n2) < 0) {
        stop_pid(&n1.pid);
        stop_pid(&redis);
        return;
    }
    char s1[32], s2[32], target[32], conc[8], p1[16], p2[16];
    snprintf(s1, sizeof s1, "127.0.0.1:%s", n1.port);
    snprintf(s2, sizeof s2, "127.0.0.1:%s", n2.port);
    snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
    snprintf(conc, sizeof conc, "%d", CONC);
    snprintf(p1, sizeof p1, "%d", (int)n1.pid);
    snprintf(p2, sizeof p2, "%d", (int)n2.pid);
    bool registered;
    pid_t dev = devices_start(S, s1, N_DEVICES, 1000, "xrelay-devices", &registered);
    /* Node 2 must see node 1 alive (channel heartbeats, leases) and the
     * directory entries (the store's change log): poll its /stats. */
    bool ready = false;
    for (int i = 0; registered && !ready && i < 100; i++) {
        json_t *st = tetherd_stats(&n2);
        ready = st && jnum(st, "cluster.nodes_alive") >= 2;
        json_decref(st);
        if (!ready)
            usleep(100000);
    }
    if (ready) {
        usleep(1500000); /* a few change-log polls: every directory entry replicated */
        say(S, "cross-node relay: relayed requests on node 1 (the devices' node), %s s", dur_s);
        json_t *a = run_bench(S, "xrelay-same", -1, NULL, "load", "--server", s1, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        say(S, "cross-node relay: the same on node 2, relayed to node 1, %s s", dur_s);
        json_t *b = run_bench(S, "xrelay-cross", -1, NULL, "load", "--server", s2, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *e2 = tetherd_stats(&n2);
        double same = a ? jnum(a, "throughput_rps") : -1,
               cross = b ? jnum(b, "throughput_rps") : -1;
        json_t *ca = json_object_get(a, "server_cpu_each"),
               *cb = json_object_get(b, "server_cpu_each");
        double d =
            json_number_value(json_array_get(ca, 0)) + json_number_value(json_array_get(ca, 1));
        double v =
            json_number_value(json_array_get(cb, 0)) + json_number_value(json_array_get(cb, 1));
        if (same > 0 && cross >= 0) {
            r->tether = cross;
            r->ceiling = same;
            r->tether_cpu = ca && cb && v > 0.05 ? v : -1;
            r->ceiling_cpu = ca && cb && d > 0.05 ? d : -1;
            row_detail(r, "same_node_rps", same);
            row_detail(r, "cross_node_rps", cross);
            row_detail(r, "raw_ratio", cross / same);
            row_detail(r, "node2_relayed_out", e2 ? jnum(e2, "cluster.xrelay.sent") : -1);
            snprintf(r->note, sizeof r->note,
                     "GET dev[0-%d]/count (every request a cache miss), %d sessions; reference "
                     "column: the same workload on the devices' own node of the same cluster "
                     "(%.0f req/s, both nodes %.0f%% busy); cross-node: %.0f req/s (both nodes "
                     "%.0f%% busy), raw ratio %.2f; both nodes share one core, so node 2's "
                     "relaying work is taken from node 1",
                     N_DEVICES - 1, CONC, same, d * 100, cross, v * 100, cross / same);
        } else {
            snprintf(r->note, sizeof r->note, "not measured: a load run failed (see %s)", S->dir);
        }
        json_decref(a);
        json_decref(b);
        json_decref(e2);
    } else {
        snprintf(r->note, sizeof r->note, "not measured: %s",
                 registered ? "node 2 never saw node 1 alive" : "the devices did not register");
    }
    stop_pid(&dev);
    stop_pid(&n2.pid);
    stop_pid(&n1.pid);
    stop_pid(&redis);
}

/* The pids of the workers a tetherd with `workers` > 1 started, from
 * their "worker started" log lines; how many were found. */
static int worker_pids(const server_t *sv, char pids[][16], int max)
{
    FILE *f = fopen(sv->log, "r");
    char line[1024];
    int n = 0;
    while (f && n < max && fgets(line, sizeof line, f)) {
        char *p;
        if (strstr(line, "\"msg\":\"worker started\"") && (p = strstr(line, "\"pid\":\"")))
            snprintf(pids[n++], sizeof pids[0], "%.*s", (int)strcspn(p + 7, "\""), p + 7);
    }
    if (f)
        fclose(f);
    return n;
}

/* Relayed cache misses on one tetherd (workers.h) with `workers` workers,
 * all on the server CPU, sharing the redis-server on rport; req/s, and
 * the share of a core the workers used together in *cpu. */
static double workers_run(suite_t *S, int workers, int rport, double *cpu)
{
    int cport = free_port_pair();
    char conf[32], name[32], path[400], text[1024];
    snprintf(conf, sizeof conf, "workers%d.json", workers);
    snprintf(path, sizeof path, "%s/%s", S->dir, conf);
    snprintf(text, sizeof text,
             "{\"node_id\": 1, \"workers\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
             "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
             "\"credentials_file\": \"%s/creds.json\", "
             "\"cluster_key\": \"bench-cluster-key-0123456789\", "
             "\"redis_url\": \"redis://127.0.0.1:%d\", "
             "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
             "\"cluster\": {\"listen\": \"127.0.0.1:%d\"}}\n",
             workers, S->dir, rport, cport);
    *cpu = -1;
    server_t td;
    snprintf(name, sizeof name, "tetherd-workers%d", workers);
    if (cport < 0 || write_file(path, text) < 0 || tetherd_start(S, conf, name, &td) < 0)
        return -1;
    char pids[2][16] = {"", ""}, server[32], target[32], concs[8];
    int np = workers > 1 ? worker_pids(&td, pids, 2) : 0;
    if (workers == 1)
        snprintf(pids[np++], sizeof pids[0], "%d", (int)td.pid);
    double x = -1;
    bool registered = false;
    if (np == workers && (workers == 1 || wait_for(td.log, "\"msg\":\"workers ready\"", 15))) {
        snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
        pid_t dev = devices_start(S, server, N_DEVICES, 1000, name, &registered);
        if (registered) {
            usleep(1500000); /* leases seen, every directory entry replicated */
            snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
            snprintf(concs, sizeof concs, "%d", CONC);
            say(S, "relayed requests through %d worker(s) sharing the server core, %s s", workers,
                dur_s);
            snprintf(name, sizeof name, "load-workers%d", workers);
            json_t *j =
                run_bench(S, name, -1, NULL, "load", "--server", server, "--identity", "app1",
                          "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", concs,
                          "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json",
                          "--cpu-pid", pids[0], workers > 1 ? "--cpu-pid" : NULL, pids[1], NULL);
            if (j && jnum(j, "timeouts") + jnum(j, "classes.5xx") <= 0.01 * jnum(j, "sent")) {
                x = jnum(j, "throughput_rps");
                json_t *v = json_object_get(j, "server_cpu_each");
                *cpu = json_number_value(json_array_get(v, 0)) +
                       (workers > 1 ? json_number_value(json_array_get(v, 1)) : 0);
            }
            json_decref(j);
        }
        stop_pid(&dev);
    }
    stop_pid(&td.pid);
    return x;
}

/* Every core of one host (config key `workers`, SPEC S9): the relayed
 * cache-miss workload through one tetherd with 1 worker, then 2, both
 * with a redis-server (the workers' shared device directory). The row is
 * the 2-worker throughput; its reference the 1-worker run. SPEC S9 pins
 * tetherd to one core and the load generator takes the other, so here the
 * 2 workers share that core: the row shows what splitting a core into
 * workers costs (about half of the requests land on the worker without
 * the device's tunnel and cross to its sibling over the channel), never
 * scaling, which needs a core per worker beside the generator's. */
void stage_workers(suite_t *S)
{
    row_t *r = &rows[R_WORKERS];
    int rport;
    pid_t redis = redis_start(S, "workers", r, &rport);
    if (redis < 0)
        return;
    double c1, c2;
    double one = workers_run(S, 1, rport, &c1);
    double two = workers_run(S, 2, rport, &c2);
    stop_pid(&redis);
    if (one <= 0 || two < 0) {
        snprintf(r->note, sizeof r->note, "not measured: a run failed (see %s)", S->dir);
        return;
    }
    r->tether = two;
    r->ceiling = one;
    r->tether_cpu = c2 > 0.05 ? c2 : -1;
    r->ceiling_cpu = c1 > 0.05 ? c1 : -1;
    row_detail(r, "one_worker_rps", one);
    row_detail(r, "two_workers_rps", two);
    row_detail(r, "raw_ratio", two / one);
    snprintf(r->note, sizeof r->note,
             "GET dev[0-%d]/count, %d sessions, Redis; reference column: 1 worker (%.0f req/s, "
             "%.0f%% of a core); 2 workers: %.0f req/s (%.0f%% of a core together), raw ratio "
             "%.2f. Both runs have the one server core (the load generator has the other of this "
             "2-core machine): this shows the cost of splitting a core into workers (requests "
             "whose client and device hashed to different workers cross over the channel), not "
             "scaling, which needs a core per worker",
             N_DEVICES - 1, CONC, one, c1 * 100, two, c2 * 100, two / one);
}
