/* The Redis connection's state machine (see rconn.h). */
#include <stdlib.h>
#include <string.h>

#include "rconn.h"

void tetherd_rconn_conf_defaults(tetherd_rconn_conf_t *c)
{
    c->connect_timeout_ms = 1000;
    c->command_timeout_ms = 2000;
    c->backoff_min_ms = 100;
    c->backoff_max_ms = 5000;
    c->inflight_max = 4096;
}

int tetherd_rconn_init(tetherd_rconn_t *c, const tetherd_rconn_conf_t *conf, uint64_t seed,
                       tether_time_t now)
{
    memset(c, 0, sizeof *c);
    c->conf = *conf;
    if (!c->conf.inflight_max)
        c->conf.inflight_max = 1;
    if (c->conf.backoff_min_ms < 2)
        c->conf.backoff_min_ms = 2;
    if (c->conf.backoff_max_ms < c->conf.backoff_min_ms)
        c->conf.backoff_max_ms = c->conf.backoff_min_ms;
    if (!(c->sent = calloc(c->conf.inflight_max, sizeof *c->sent)))
        return TETHER_ENOMEM;
    c->rng = seed | 1;
    c->state = TETHERD_RCONN_DOWN;
    c->retry_at = now;
    c->backoff_ms = c->conf.backoff_min_ms;
    return 0;
}

void tetherd_rconn_free(tetherd_rconn_t *c)
{
    free(c->sent);
    c->sent = NULL;
}

static uint64_t rnd(tetherd_rconn_t *c)
{
    c->rng ^= c->rng << 13; /* xorshift64 */
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

bool tetherd_rconn_connect_due(const tetherd_rconn_t *c, tether_time_t now)
{
    return c->state == TETHERD_RCONN_DOWN && now >= c->retry_at;
}

void tetherd_rconn_connecting(tetherd_rconn_t *c, tether_time_t now)
{
    c->state = TETHERD_RCONN_CONNECTING;
    c->since = now;
}

void tetherd_rconn_connected(tetherd_rconn_t *c, tether_time_t now)
{
    (void)now;
    if (c->connects++)
        c->reconnects++;
    c->state = TETHERD_RCONN_UP;
    c->backoff_ms = c->conf.backoff_min_ms;
    c->head = c->count = 0;
}

void tetherd_rconn_failed(tetherd_rconn_t *c, tether_time_t now)
{
    uint32_t d = c->backoff_ms;
    c->failures++;
    c->state = TETHERD_RCONN_DOWN;
    c->head = c->count = 0;
    c->retry_at = now + d / 2 + rnd(c) % (d - d / 2 + 1);
    c->backoff_ms = d >= c->conf.backoff_max_ms / 2 ? c->conf.backoff_max_ms : d * 2;
}

bool tetherd_rconn_can_send(const tetherd_rconn_t *c)
{
    return c->state == TETHERD_RCONN_UP && c->count < c->conf.inflight_max;
}

void tetherd_rconn_sent(tetherd_rconn_t *c, tether_time_t now)
{
    if (c->count == c->conf.inflight_max)
        return; /* a caller bug; the bound holds */
    c->sent[(c->head + c->count) % c->conf.inflight_max] = now;
    c->count++;
}

void tetherd_rconn_replied(tetherd_rconn_t *c)
{
    if (!c->count)
        return;
    c->head = (c->head + 1) % c->conf.inflight_max;
    c->count--;
}

uint32_t tetherd_rconn_pending(const tetherd_rconn_t *c) { return c->count; }

tether_time_t tetherd_rconn_deadline(const tetherd_rconn_t *c)
{
    switch (c->state) {
    case TETHERD_RCONN_DOWN: return c->retry_at;
    case TETHERD_RCONN_CONNECTING: return c->since + c->conf.connect_timeout_ms;
    case TETHERD_RCONN_UP:
        return c->count ? c->sent[c->head] + c->conf.command_timeout_ms : UINT64_MAX;
    }
    return UINT64_MAX;
}

bool tetherd_rconn_timed_out(const tetherd_rconn_t *c, tether_time_t now)
{
    return c->state != TETHERD_RCONN_DOWN && now >= tetherd_rconn_deadline(c);
}

const char *tetherd_rconn_state_str(const tetherd_rconn_t *c)
{
    return c->state == TETHERD_RCONN_UP ? "up" : "down";
}
