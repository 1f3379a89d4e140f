/* Transmit-sequence ceiling state machine (see txceil.h). */
#include <stdlib.h>
#include <string.h>

#include "dtls/txceil.h"
#include "util/container.h"

typedef struct {
    tether_lnode_t ln;
    uint8_t type;
    size_t len;
    uint8_t data[];
} held_t;

void tether_txceil_conf_defaults(tether_txceil_conf_t *c)
{
    c->block = 1024;
    c->hold_max = 16;
    c->retry_ms = 500;
    c->margin = TETHER_TXCEIL_MARGIN;
}

void tether_txceil_init(tether_txceil_t *t, const tether_txceil_conf_t *conf, uint64_t next)
{
    memset(t, 0, sizeof *t);
    t->conf = *conf;
    if (t->conf.block < 2)
        t->conf.block = 2; /* a half-block must exist to raise ahead of need */
    t->acked = next < TETHER_TXCEIL_SEQ_LIMIT ? next : TETHER_TXCEIL_SEQ_LIMIT;
}

void tether_txceil_destroy(tether_txceil_t *t)
{
    while (t->held.head) {
        held_t *h = container_of(t->held.head, held_t, ln);
        tether_list_del(&t->held, &h->ln);
        memset(h->data, 0, h->len); /* plaintext */
        free(h);
    }
    t->nheld = 0;
}

uint64_t tether_txceil_adopt_start(uint64_t stored, uint64_t margin)
{
    if (stored >= TETHER_TXCEIL_SEQ_LIMIT || margin >= TETHER_TXCEIL_SEQ_LIMIT - stored)
        return TETHER_TXCEIL_SEQ_LIMIT;
    return stored + margin;
}

static int covered(const tether_txceil_t *t, uint64_t seq)
{
    if (seq >= TETHER_TXCEIL_SEQ_LIMIT)
        return TETHER_ELIMIT;
    return seq < t->acked ? 0 : TETHER_EAGAIN;
}

int tether_txceil_check(const tether_txceil_t *t, uint64_t seq)
{
    int rc = covered(t, seq);
    if (rc == 0 && t->nheld) /* keep the order: held records go first */
        return TETHER_EAGAIN;
    return rc;
}

bool tether_txceil_want(const tether_txceil_t *t, uint64_t next, tether_time_t now,
                        uint64_t *ceiling)
{
    if (t->pending || now < t->retry_at || next >= TETHER_TXCEIL_SEQ_LIMIT)
        return false;
    if (t->acked >= TETHER_TXCEIL_SEQ_LIMIT)
        return false; /* everything is reserved already */
    /* Raise once half the block below the ceiling is used. */
    if (t->acked > next && t->acked - next > t->conf.block / 2)
        return false;
    uint64_t base = next > t->acked ? next : t->acked;
    uint64_t c = base + t->conf.block;
    *ceiling = c < TETHER_TXCEIL_SEQ_LIMIT ? c : TETHER_TXCEIL_SEQ_LIMIT;
    return true;
}

void tether_txceil_started(tether_txceil_t *t, uint64_t ceiling)
{
    t->pending = ceiling;
}

void tether_txceil_acked(tether_txceil_t *t, uint64_t ceiling)
{
    if (ceiling > TETHER_TXCEIL_SEQ_LIMIT)
        ceiling = TETHER_TXCEIL_SEQ_LIMIT;
    if (ceiling > t->acked)
        t->acked = ceiling;
    if (ceiling >= t->pending)
        t->pending = 0;
    t->retry_at = 0;
}

void tether_txceil_failed(tether_txceil_t *t, tether_time_t now)
{
    t->pending = 0;
    t->retry_at = now + t->conf.retry_ms;
}

tether_time_t tether_txceil_next_deadline(const tether_txceil_t *t)
{
    return t->retry_at && !t->pending ? t->retry_at : UINT64_MAX;
}

int tether_txceil_hold(tether_txceil_t *t, uint8_t type, const uint8_t *data, size_t len)
{
    if (t->nheld >= t->conf.hold_max)
        return TETHER_ELIMIT;
    held_t *h = malloc(sizeof *h + len);
    if (!h)
        return TETHER_ENOMEM;
    h->type = type;
    h->len = len;
    memcpy(h->data, data, len);
    tether_list_push(&t->held, &h->ln);
    t->nheld++;
    return 0;
}

size_t tether_txceil_held(const tether_txceil_t *t)
{
    return t->nheld;
}

int tether_txceil_pop(tether_txceil_t *t, uint64_t seq, uint8_t *type, uint8_t *out, size_t cap,
                      size_t *len)
{
    if (!t->held.head || covered(t, seq) != 0)
        return TETHER_ENOTFOUND;
    held_t *h = container_of(t->held.head, held_t, ln);
    if (h->len > cap)
        return TETHER_ENOSPC;
    memcpy(out, h->data, h->len);
    *type = h->type;
    *len = h->len;
    tether_list_del(&t->held, &h->ln);
    t->nheld--;
    memset(h->data, 0, h->len);
    free(h);
    return 0;
}
