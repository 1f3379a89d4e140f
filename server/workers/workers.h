/* tetherd — the workers of one host (config key `workers`; SPEC S5, S9).
 *
 * One tetherd serves a host's cores with `workers` processes on the same
 * UDP ports. Process per worker (fork): each worker is a whole node of the
 * cluster as S5 describes, with its own event loop, sessions, store
 * replica and admin endpoint, so nothing is shared between cores and no
 * lock is taken on the request path; a crashed worker costs only its own
 * sessions. workers = 1 is the single process tetherd always was (no
 * supervisor, no SO_REUSEPORT).
 *
 * Worker k of n (k = 0..n-1), derived from the configuration (derive.c):
 *   node_id           node_id + k (so hosts of a cluster take node ids n
 *                     apart: 1, 1+n, 1+2n, ...);
 *   cluster.listen    its port + k, cluster.advertise likewise;
 *   cluster.nodes     the configured list plus every sibling (node_id + j
 *                     at the sibling's advertised address), so the workers
 *                     reach each other with or without Redis;
 *   admin             its port + k (port 0: each worker picks a free one);
 *   bounds            its share of the host's: ceil(v / n) of host-wide,
 *                     per-source and per-identity bounds, per-device ones
 *                     whole (the rule: derive.c's header);
 *   listen            the same ports for every worker: the supervisor
 *                     opens each listener's n sockets (SO_REUSEPORT) and
 *                     steers DTLS records by CID (steer.h).
 * n > 1 needs cluster.listen (and so cluster_key): a record steered to the
 * wrong worker is forwarded over the channel like between hosts.
 *
 * The supervisor (supervisor.c) is the process started: it opens the
 * listener sockets, forks the workers, keeps every socket open (a
 * socket's reuseport slot is its bind order and must not move), restarts
 * a worker that dies after it was ready (1 s later, on the same sockets:
 * the same slot), passes SIGTERM, SIGINT and SIGHUP to every worker and
 * exits when they all have (0 when all exited 0); a worker still running
 * drain_timeout + 5 s after SIGTERM or SIGINT is killed (SIGKILL, exit
 * 1), so a stop is bounded. A worker that fails before it is ready stops
 * the whole tetherd (exit 1): a configuration that cannot start is not
 * retried. It logs "workers ready" once every worker logged "ready".
 */
#ifndef TETHERD_WORKERS_H
#define TETHERD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "../config.h"

#define TETHERD_MAX_WORKERS 64

/* What a worker gets from the supervisor. */
typedef struct {
    unsigned index, count;
    /* Listener i's socket, already bound (and steered), or -1: bind it as a
     * single process does. */
    int listen_fd[TETHERD_MAX_LISTEN];
    int ready_fd; /* tetherd_workers_ready writes here; -1 without workers */
} tetherd_worker_t;

/* `workers` resolved: 0 is the number of cores this process may run on. */
unsigned tetherd_workers_count(const tetherd_config_t *cfg);

/* Checks what workers need (node ids within 1..255, cluster.listen, room
 * in cluster.nodes); 0, or TETHER_ECONFIG with a message in err. */
int tetherd_workers_check(const tetherd_config_t *cfg, char *err, size_t cap);

/* Rewrites cfg (the supervisor's) into worker k's of n, as the header
 * says. 0, or TETHER_ECONFIG with a message in err. */
int tetherd_workers_derive(tetherd_config_t *cfg, unsigned k, unsigned n, char *err, size_t cap);

/* With one worker: fills *w (no sockets) and returns 0. Otherwise, before
 * any event loop exists: opens the listeners, forks the workers and
 * returns 0 in each worker with cfg rewritten and *w filled; the
 * supervisor never returns (it exits with 0 after a clean stop, 1 when a
 * worker could not start). A negative TETHER_E* (logged) when the
 * listeners cannot be opened. */
int tetherd_workers_start(tetherd_config_t *cfg, tetherd_worker_t *w);

/* Tells the supervisor this worker is serving (once per start). */
void tetherd_workers_ready(tetherd_worker_t *w);

#endif
