/* tetherd — the Redis connection's state machine (SPEC S5, S10), apart
 * from the socket so it is tested with the clock stepped
 * (test/unit/test_rconn.c). hiredis 0.14 (Debian bookworm) has no async
 * timeouts and no reconnect, and its libuv adapter no timer: this is what
 * supplies them. The caller (rcmd.c) owns the hiredis context and a
 * libuv timer armed at tetherd_rconn_deadline().
 *
 *   DOWN --(due)--> CONNECTING --connected--> UP
 *    ^                  |                      |
 *    +---- failed ------+------ failed --------+   (backoff re-armed)
 *
 * CONNECTING fails after connect_timeout_ms. UP fails when the oldest
 * command without a reply is older than command_timeout_ms: replies come
 * in the order commands were sent (RESP2 has no out-of-band replies), so
 * the oldest pending one is the only one worth a timer. After a failure
 * the next attempt waits a back-off that doubles from backoff_min_ms to
 * backoff_max_ms, each wait drawn uniformly from [d/2, d] so that the
 * nodes of a cluster do not reconnect in step after a Redis restart.
 * `inflight_max` bounds the pipeline: tetherd_rconn_can_send says false
 * at the bound (commands then wait in the caller's queue or backlog).
 *
 * Pure: `now` is passed in; randomness from `seed`. */
#ifndef TETHERD_STORE_RCONN_H
#define TETHERD_STORE_RCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

typedef enum {
    TETHERD_RCONN_DOWN = 0, /* not connected; a connect is due at `retry_at` */
    TETHERD_RCONN_CONNECTING,
    TETHERD_RCONN_UP,
} tetherd_rconn_state_t;

typedef struct {
    uint32_t connect_timeout_ms;
    uint32_t command_timeout_ms;
    uint32_t backoff_min_ms, backoff_max_ms;
    uint32_t inflight_max;
} tetherd_rconn_conf_t;

typedef struct {
    tetherd_rconn_conf_t conf;
    tetherd_rconn_state_t state;
    tether_time_t since;    /* CONNECTING: when the attempt started */
    tether_time_t retry_at; /* DOWN: when to connect */
    uint32_t backoff_ms;    /* the next failure's upper bound */
    tether_time_t *sent;    /* ring of send times of commands awaiting replies */
    uint32_t head, count;
    uint64_t rng;
    uint64_t reconnects; /* successful connects after the first */
    uint64_t connects, failures;
} tetherd_rconn_t;

void tetherd_rconn_conf_defaults(tetherd_rconn_conf_t *c);
/* DOWN with a connect due at `now`. 0 or TETHER_ENOMEM. */
int tetherd_rconn_init(tetherd_rconn_t *c, const tetherd_rconn_conf_t *conf, uint64_t seed,
                       tether_time_t now);
void tetherd_rconn_free(tetherd_rconn_t *c);

/* DOWN and the back-off is over: the caller should connect now and call
 * tetherd_rconn_connecting. */
bool tetherd_rconn_connect_due(const tetherd_rconn_t *c, tether_time_t now);
void tetherd_rconn_connecting(tetherd_rconn_t *c, tether_time_t now);
void tetherd_rconn_connected(tetherd_rconn_t *c, tether_time_t now);
/* The connection failed or was lost: DOWN, every pending command is
 * forgotten (the caller fails them), back-off armed. */
void tetherd_rconn_failed(tetherd_rconn_t *c, tether_time_t now);

/* UP and the pipeline has room. */
bool tetherd_rconn_can_send(const tetherd_rconn_t *c);
/* A command went out (call only when can_send) / its reply came. */
void tetherd_rconn_sent(tetherd_rconn_t *c, tether_time_t now);
void tetherd_rconn_replied(tetherd_rconn_t *c);
uint32_t tetherd_rconn_pending(const tetherd_rconn_t *c);

/* True when a timeout has passed at `now` (connect or oldest command): the
 * caller then drops the connection and calls tetherd_rconn_failed. */
bool tetherd_rconn_timed_out(const tetherd_rconn_t *c, tether_time_t now);
/* When something is next due (connect, a timeout); UINT64_MAX: nothing. */
tether_time_t tetherd_rconn_deadline(const tetherd_rconn_t *c);

/* "up", "down" ("connecting" reads as down: nothing can be sent). */
const char *tetherd_rconn_state_str(const tetherd_rconn_t *c);

#endif
