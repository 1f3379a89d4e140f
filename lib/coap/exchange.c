/* CoAP message layer: MIDs, duplicate detection, CON retransmission. */
#include <stdlib.h>
#include <string.h>

#include "coap/exchange.h"
#include "util/heap.h"
#include "util/hmap.h"
#include "util/list.h"

#include "util/container.h"

typedef struct tx tx_t;

/* The MID budget toward one peer (RFC 7252 §4.4: a MID is not reused
 * within EXCHANGE_LIFETIME). MIDs are taken in sequence, so the MID about
 * to be taken was last used 65536 MIDs ago, and reusing it is safe while
 * fewer than 65535 MIDs were taken in the last lifetime. A peer that takes
 * few MIDs is counted in two windows of a lifetime (8 bytes); once it has
 * taken MID_AGES_AFTER of them it gets `mid_ages_t`: how many MIDs each
 * slot of lifetime/MID_SLOTS took, over the last MID_SLOTS + 1 slots, so
 * the budget is a sliding window with a slot's granularity (sustained:
 * 65535 per lifetime, about 265/s at 247 s, instead of half that). */
#define MID_BUDGET 65535u
#define MID_SLOTS 32u
#define MID_AGES_AFTER 1024u

typedef struct {
    uint64_t slot;               /* absolute index (now / width) of cnt[slot % ...] */
    uint32_t width;              /* ms per slot: ceil(lifetime / MID_SLOTS) */
    uint32_t sum;                /* of cnt[] */
    uint16_t cnt[MID_SLOTS + 1]; /* MIDs taken per slot, a ring */
} mid_ages_t;

/* What tether keeps of a peer it sends to: its MID budget and its CONs
 * in flight. Made with the first MID taken or CON sent toward the peer
 * and kept as long as the peer (the budget counts a whole lifetime). */
typedef struct {
    tether_list_t txs;          /* outstanding CONs toward this peer, newest first */
    tether_time_t win_start;    /* MID-rate windows of EXCHANGE_LIFETIME (no `ages` yet) */
    mid_ages_t *ages;           /* NULL until the peer took MID_AGES_AFTER MIDs */
    uint32_t win_cnt, win_prev; /* MIDs taken in the current / previous window */
    uint16_t next_mid;
} peer_snd_t;

/* What tether remembers of one peer (link): the MIDs received from it
 * that are remembered, and what it sends there (`snd`). Every registered
 * device has one for an EXCHANGE_LIFETIME after its last message (its
 * registration's duplicate detection), and an idle device is sent
 * nothing, so it is kept small (SPEC S9): no copy of the link (a CON in
 * flight keeps its own), no send state until tether sends, fields ordered
 * so none pads. */
typedef struct peer {
    tether_hnode_t hn;  /* key: link key */
    tether_lnode_t lru; /* by last_used */
    tether_list_t seen; /* MIDs received from it that are remembered, oldest first */
    tether_time_t last_used;
    peer_snd_t *snd; /* NULL until tether takes a MID or sends a CON toward it */
    uint32_t nseen;
} peer_t;

struct tx {
    tether_hnode_t hn; /* key: link key + MID */
    tether_timer_t timer;
    peer_t *peer;
    tether_lnode_t in_peer; /* peer->txs */
    tether_link_t link;     /* where it goes (a DTLS link by session id) */
    tether_cx_waiter_t *w;  /* NULL: nobody waits */
    uint32_t timeout_ms;
    uint16_t mid;
    uint16_t len;
    uint8_t attempts;
    uint8_t data[];
};

/* A received MID remembered for duplicate detection (RFC 7252 §4.5), with
 * the reply sent for it (an ACK, RST or piggybacked response) in the same
 * allocation: it moves to a larger one when the reply is known. Every
 * registered device has one (its registration's) for EXCHANGE_LIFETIME,
 * so it keeps no pointer to its peer (the peer's key is its own key
 * without the MID) and is allocated without the struct's tail padding
 * (SEEN_HEAD): a registration's reply (13 bytes) then fits a 96-byte
 * malloc chunk. */
typedef struct seen {
    tether_hnode_t hn;      /* key: link key + MID */
    tether_lnode_t fifo;    /* by arrival = by expiry */
    tether_lnode_t in_peer; /* its peer's seen */
    tether_time_t expires;
    uint16_t len; /* of reply, 0: none */
    uint8_t reply[];
} seen_t;

#define SEEN_HEAD offsetof(seen_t, reply)

struct tether_cx {
    tether_cx_conf_t conf;
    uint64_t rng;
    tether_hmap_t peers, txs, seen;
    tether_list_t lru;
    tether_list_t seen_fifo;
    tether_heap_t timers;
    tether_out_t *out;
    size_t nout, out_cap;
    tether_cx_stats_t stats;
};

void tether_cx_conf_defaults(tether_cx_conf_t *c)
{
    c->ack_timeout_ms = 2000;
    c->ack_random_permille = 1500;
    c->max_retransmit = 4;
    c->exchange_lifetime_ms = 247000;
    c->dedup_max = 262144;
    c->dedup_per_peer = 0; /* no quota (tetherd's node sets one) */
    c->seed = 0x2545f4914f6cdd1dull;
}

static uint64_t rnd(tether_cx_t *cx)
{
    uint64_t x = cx->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return cx->rng = x;
}

int tether_cx_create(const tether_cx_conf_t *conf, tether_cx_t **out)
{
    int rc = TETHER_ENOMEM;
    tether_cx_t *cx = calloc(1, sizeof *cx);
    if (!cx)
        return rc;
    cx->conf = *conf;
    cx->rng = conf->seed ? conf->seed : 88172645463325252ull;
    if ((rc = tether_hmap_init(&cx->peers, 256, rnd(cx))) < 0)
        goto fail_peers;
    if ((rc = tether_hmap_init(&cx->txs, 256, rnd(cx))) < 0)
        goto fail_txs;
    if ((rc = tether_hmap_init(&cx->seen, 1024, rnd(cx))) < 0)
        goto fail_seen;
    *out = cx;
    return 0;
fail_seen:
    tether_hmap_free(&cx->txs);
fail_txs:
    tether_hmap_free(&cx->peers);
fail_peers:
    free(cx);
    return rc;
}

#define seen_first(cx)                                                                             \
    ((cx)->seen_fifo.head ? container_of((cx)->seen_fifo.head, seen_t, fifo) : NULL)

/* The peer that sent the MID of `s` (it outlives its remembered MIDs:
 * each one refreshed its last_used, and link down frees them with it). */
static peer_t *seen_peer(const tether_cx_t *cx, const seen_t *s)
{
    tether_hnode_t *n = tether_hmap_find(&cx->peers, s->hn.key, s->hn.klen - 2u);
    return container_of(n, peer_t, hn);
}

/* Forgets `s`, a MID from peer `p`. */
static void seen_free_of(tether_cx_t *cx, peer_t *p, seen_t *s)
{
    tether_list_del(&p->seen, &s->in_peer);
    p->nseen--;
    tether_list_del(&cx->seen_fifo, &s->fifo);
    tether_hmap_remove(&cx->seen, &s->hn);
    free(s);
    cx->stats.dedup_entries--;
}

static void seen_free(tether_cx_t *cx, seen_t *s)
{
    seen_free_of(cx, seen_peer(cx, s), s);
}

static void tx_free(tether_cx_t *cx, tx_t *t)
{
    tether_heap_disarm(&cx->timers, &t->timer);
    tether_hmap_remove(&cx->txs, &t->hn);
    tether_list_del(&t->peer->snd->txs, &t->in_peer);
    cx->stats.outstanding--;
    free(t);
}

#define lru_first(cx) ((cx)->lru.head ? container_of((cx)->lru.head, peer_t, lru) : NULL)
#define tx_first(p)                                                                                \
    ((p)->snd && (p)->snd->txs.head ? container_of((p)->snd->txs.head, tx_t, in_peer) : NULL)

static void peer_free(tether_cx_t *cx, peer_t *p)
{
    tx_t *t;
    while ((t = tx_first(p)))
        tx_free(cx, t);
    while (p->seen.head) /* at link down: a session's MIDs end with it */
        seen_free_of(cx, p, container_of(p->seen.head, seen_t, in_peer));
    tether_list_del(&cx->lru, &p->lru);
    tether_hmap_remove(&cx->peers, &p->hn);
    if (p->snd)
        free(p->snd->ages);
    free(p->snd);
    free(p);
}

void tether_cx_destroy(tether_cx_t *cx)
{
    if (!cx)
        return;
    while (cx->lru.head) /* with their remembered MIDs */
        peer_free(cx, lru_first(cx));
    tether_hmap_free(&cx->peers);
    tether_hmap_free(&cx->txs);
    tether_hmap_free(&cx->seen);
    tether_heap_free(&cx->timers);
    free(cx->out);
    free(cx);
}

/* The per-peer record for `link`, created when `create` is set. */
static peer_t *peer_get(tether_cx_t *cx, const tether_link_t *link, tether_time_t now, bool create)
{
    uint8_t key[20];
    size_t kl = tether_link_key(link, key);
    tether_hnode_t *n = tether_hmap_find(&cx->peers, key, kl);
    peer_t *p;
    if (n) {
        p = container_of(n, peer_t, hn);
        tether_list_del(&cx->lru, &p->lru);
    } else {
        if (!create || !(p = calloc(1, sizeof *p)))
            return NULL;
        tether_hmap_insert(&cx->peers, &p->hn, key, kl);
    }
    p->last_used = now;
    tether_list_push(&cx->lru, &p->lru);
    return p;
}

/* The send state of the peer of `link` (created, with the peer, when
 * missing); NULL on TETHER_ENOMEM. */
static peer_snd_t *snd_get(tether_cx_t *cx, const tether_link_t *link, tether_time_t now,
                           peer_t **peer)
{
    peer_t *p = *peer = peer_get(cx, link, now, true);
    if (!p)
        return NULL;
    if (!p->snd && (p->snd = calloc(1, sizeof *p->snd))) {
        p->snd->next_mid = (uint16_t)rnd(cx);
        p->snd->win_start = now;
    }
    return p->snd;
}

/* Moves the ring of `a` to the slot of `now` and forgets every slot that
 * ended at least a lifetime ago: `sum` is then what the slots overlapping
 * the last lifetime took. */
static void ages_advance(mid_ages_t *a, tether_time_t life, tether_time_t now)
{
    uint64_t slot = now / a->width;
    for (uint64_t i = 0; a->slot < slot && i <= MID_SLOTS; i++) {
        a->slot++; /* entering a slot reuses the ring entry of one 33 slots older */
        uint16_t *c = &a->cnt[a->slot % (MID_SLOTS + 1)];
        a->sum -= *c;
        *c = 0;
    }
    a->slot = slot;
    for (uint64_t k = slot > MID_SLOTS ? slot - MID_SLOTS : 0; k < slot; k++) {
        if ((k + 1) * a->width + life > now)
            break;
        uint16_t *c = &a->cnt[k % (MID_SLOTS + 1)];
        a->sum -= *c;
        *c = 0;
    }
}

/* Rolls the two windows of a peer without `ages` forward to `now`. */
static void windows_advance(peer_snd_t *p, tether_time_t life, tether_time_t now)
{
    if (now >= p->win_start + 2 * life) {
        p->win_start = now;
        p->win_cnt = p->win_prev = 0;
    } else if (now >= p->win_start + life) {
        p->win_start += life;
        p->win_prev = p->win_cnt;
        p->win_cnt = 0;
    }
}

/* Gives `p` its slot ring. The MIDs its windows counted are put in the
 * current slot: later than they were taken, which only delays their
 * reuse (never allows it early). Without memory the windows go on. */
static void ages_start(tether_cx_t *cx, peer_snd_t *p, tether_time_t now)
{
    mid_ages_t *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->width = (uint32_t)((cx->conf.exchange_lifetime_ms + MID_SLOTS - 1) / MID_SLOTS);
    if (!a->width)
        a->width = 1;
    a->slot = now / a->width;
    a->sum = p->win_prev + p->win_cnt;
    a->cnt[a->slot % (MID_SLOTS + 1)] = (uint16_t)a->sum;
    p->ages = a;
}

int tether_cx_next_mid(tether_cx_t *cx, const tether_link_t *link, tether_time_t now, uint16_t *mid)
{
    peer_t *peer;
    peer_snd_t *p = snd_get(cx, link, now, &peer);
    if (!p)
        return TETHER_ENOMEM;
    if (!p->ages) {
        windows_advance(p, cx->conf.exchange_lifetime_ms, now);
        if (p->win_prev + p->win_cnt >= MID_AGES_AFTER)
            ages_start(cx, p, now);
    }
    if (p->ages) {
        /* The slots kept overlap the last lifetime: their sum is at least
         * the MIDs taken in it. */
        ages_advance(p->ages, cx->conf.exchange_lifetime_ms, now);
        if (p->ages->sum >= MID_BUDGET) {
            cx->stats.mid_throttled++;
            return TETHER_EAGAIN;
        }
        p->ages->sum++;
        p->ages->cnt[p->ages->slot % (MID_SLOTS + 1)]++;
    } else {
        /* Any lifetime overlaps at most the previous and the current window. */
        if (p->win_prev + p->win_cnt >= MID_BUDGET) {
            cx->stats.mid_throttled++;
            return TETHER_EAGAIN;
        }
        p->win_cnt++;
    }
    *mid = p->next_mid++;
    return 0;
}

tether_time_t tether_cx_mid_available_at(tether_cx_t *cx, const tether_link_t *link,
                                         tether_time_t now)
{
    peer_t *peer = peer_get(cx, link, now, false);
    peer_snd_t *p = peer ? peer->snd : NULL;
    tether_time_t life = cx->conf.exchange_lifetime_ms;
    if (!p)
        return now; /* nothing taken toward it */
    if (!p->ages) {
        windows_advance(p, life, now);
        if (p->win_prev + p->win_cnt < MID_BUDGET)
            return now;
        /* the previous window's MIDs age out when the current one ends */
        return p->win_prev ? p->win_start + life : p->win_start + 2 * life;
    }
    mid_ages_t *a = p->ages;
    ages_advance(a, life, now);
    if (a->sum < MID_BUDGET)
        return now;
    /* The oldest slot that took a MID stops overlapping the lifetime
     * once that lifetime starts after the slot's end. */
    for (uint64_t k = a->slot > MID_SLOTS ? a->slot - MID_SLOTS : 0; k <= a->slot; k++)
        if (a->cnt[k % (MID_SLOTS + 1)])
            return (k + 1) * a->width + life;
    return now;
}

static size_t seen_key(const tether_link_t *link, uint16_t mid, uint8_t key[22])
{
    size_t kl = tether_link_key(link, key);
    key[kl] = (uint8_t)(mid >> 8);
    key[kl + 1] = (uint8_t)mid;
    return kl + 2;
}

int tether_cx_emit(tether_cx_t *cx, const tether_link_t *link, const uint8_t *buf, size_t len)
{
    if (len > TETHER_CX_MAX_MSG)
        return TETHER_EINVAL;
    if (cx->nout == cx->out_cap) {
        size_t cap = cx->out_cap ? cx->out_cap * 2 : 16;
        tether_out_t *o = realloc(cx->out, cap * sizeof *o);
        if (!o)
            return TETHER_ENOMEM;
        cx->out = o;
        cx->out_cap = cap;
    }
    tether_out_t *o = &cx->out[cx->nout++];
    o->link = *link;
    o->len = (uint16_t)len;
    memcpy(o->data, buf, len);
    return 0;
}

bool tether_cx_seen(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, tether_time_t now)
{
    uint8_t key[22];
    size_t kl = seen_key(link, mid, key);
    tether_hnode_t *n = tether_hmap_find(&cx->seen, key, kl);
    if (n) {
        seen_t *s = container_of(n, seen_t, hn);
        cx->stats.duplicates++;
        if (s->len)
            tether_cx_emit(cx, link, s->reply, s->len);
        return true;
    }
    peer_t *p = peer_get(cx, link, now, true);
    if (!p)
        return false; /* cannot remember it: process it (at-least-once) */
    if (cx->conf.dedup_per_peer && p->nseen >= cx->conf.dedup_per_peer) {
        cx->stats.dedup_quota_dropped++;
        seen_free_of(cx, p, container_of(p->seen.head, seen_t, in_peer));
    }
    while (cx->seen_fifo.head && cx->stats.dedup_entries >= cx->conf.dedup_max)
        seen_free(cx, seen_first(cx));
    seen_t *s = malloc(sizeof *s);
    if (!s)
        return false; /* cannot remember it: process it (at-least-once) */
    s->expires = now + cx->conf.exchange_lifetime_ms;
    s->len = 0;
    tether_hmap_insert(&cx->seen, &s->hn, key, kl);
    tether_list_push(&cx->seen_fifo, &s->fifo);
    tether_list_push(&p->seen, &s->in_peer);
    p->nseen++;
    cx->stats.dedup_entries++;
    return false;
}

void tether_cx_reply(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, const uint8_t *buf,
                     size_t len)
{
    uint8_t key[22];
    size_t kl = seen_key(link, mid, key);
    tether_hnode_t *n = tether_hmap_find(&cx->seen, key, kl);
    seen_t *s = n ? container_of(n, seen_t, hn) : NULL, *r;
    /* Without memory the entry stays, with its old reply (or none). */
    if (s && len <= TETHER_CX_MAX_MSG && (r = malloc(SEEN_HEAD + len))) {
        peer_t *p = seen_peer(cx, s);
        memcpy(r, s, SEEN_HEAD);
        r->len = (uint16_t)len;
        memcpy(r->reply, buf, len);
        tether_hmap_remove(&cx->seen, &s->hn);
        tether_hmap_insert(&cx->seen, &r->hn, key, kl); /* was there: cannot fail */
        tether_list_replace(&cx->seen_fifo, &s->fifo, &r->fifo);
        tether_list_replace(&p->seen, &s->in_peer, &r->in_peer);
        free(s);
    }
    tether_cx_emit(cx, link, buf, len);
}

static uint32_t first_timeout(tether_cx_t *cx)
{
    uint32_t base = cx->conf.ack_timeout_ms;
    uint32_t span = (uint32_t)((uint64_t)base * (cx->conf.ack_random_permille - 1000) / 1000);
    return base + (span ? (uint32_t)(rnd(cx) % (span + 1)) : 0);
}

int tether_cx_send_con(tether_cx_t *cx, const tether_link_t *link, const uint8_t *buf, size_t len,
                       tether_cx_waiter_t *w, tether_time_t now)
{
    if (len < 4 || len > TETHER_CX_MAX_MSG)
        return TETHER_EINVAL;
    peer_t *p;
    tx_t *t = snd_get(cx, link, now, &p) ? calloc(1, sizeof *t + len) : NULL;
    if (!t)
        return TETHER_ENOMEM;
    uint8_t key[22];
    t->mid = (uint16_t)(buf[2] << 8 | buf[3]);
    size_t kl = seen_key(link, t->mid, key);
    if (tether_hmap_insert(&cx->txs, &t->hn, key, kl) < 0) {
        free(t);
        return TETHER_EEXIST;
    }
    t->peer = p;
    t->link = *link;
    tether_list_push_front(&p->snd->txs, &t->in_peer);
    t->w = w;
    t->len = (uint16_t)len;
    memcpy(t->data, buf, len);
    t->timeout_ms = first_timeout(cx);
    tether_timer_init(&t->timer);
    cx->stats.outstanding++;
    int rc;
    if ((rc = tether_heap_arm(&cx->timers, &t->timer, now + t->timeout_ms)) < 0 ||
        (rc = tether_cx_emit(cx, link, buf, len)) < 0) {
        tx_free(cx, t); /* a CON without its timer would never time out */
        return rc;
    }
    return 0;
}

static tx_t *tx_find(tether_cx_t *cx, const tether_link_t *link, uint16_t mid)
{
    uint8_t key[22];
    size_t kl = seen_key(link, mid, key);
    tether_hnode_t *n = tether_hmap_find(&cx->txs, key, kl);
    return n ? container_of(n, tx_t, hn) : NULL;
}

void tether_cx_cancel(tether_cx_t *cx, const tether_link_t *link, uint16_t mid)
{
    tx_t *t = tx_find(cx, link, mid);
    if (t)
        tx_free(cx, t);
}

bool tether_cx_on_ack(tether_cx_t *cx, const tether_link_t *link, uint16_t mid, bool rst,
                      tether_time_t now)
{
    tx_t *t = tx_find(cx, link, mid);
    if (!t)
        return false;
    tether_cx_waiter_t *w = t->w;
    tx_free(cx, t);
    if (w)
        w->done(w, rst ? TETHER_CX_RESET : TETHER_CX_ACKED, now);
    return true;
}

void tether_cx_link_down(tether_cx_t *cx, const tether_link_t *link, tether_time_t now)
{
    peer_t *p = peer_get(cx, link, now, false);
    if (!p)
        return;
    /* One at a time, the transmission freed before its waiter hears: a
     * waiter may send again, and must not see a half-freed peer. */
    tx_t *t;
    while ((t = tx_first(p))) {
        tether_cx_waiter_t *w = t->w;
        tx_free(cx, t);
        if (w)
            w->done(w, TETHER_CX_LINK_DOWN, now);
        if (!(p = peer_get(cx, link, now, false)))
            return;
    }
    peer_free(cx, p);
}

void tether_cx_tick(tether_cx_t *cx, tether_time_t now)
{
    tether_timer_t *tm;
    while ((tm = tether_heap_pop_due(&cx->timers, now))) {
        tx_t *t = container_of(tm, tx_t, timer);
        if (t->attempts >= cx->conf.max_retransmit) {
            tether_cx_waiter_t *w = t->w;
            cx->stats.timeouts++;
            tx_free(cx, t);
            if (w)
                w->done(w, TETHER_CX_TIMEOUT, now);
            continue;
        }
        t->attempts++;
        t->timeout_ms *= 2;
        cx->stats.retransmissions++;
        tether_cx_emit(cx, &t->link, t->data, t->len);
        /* Cannot fail: popping the timer freed the heap slot it takes again. */
        tether_heap_arm(&cx->timers, &t->timer, now + t->timeout_ms);
    }
    while (cx->seen_fifo.head && seen_first(cx)->expires <= now)
        seen_free(cx, seen_first(cx));
    tether_time_t life = cx->conf.exchange_lifetime_ms;
    peer_t *p;
    while ((p = lru_first(cx)) && p->last_used + life <= now) {
        if (!p->snd || !p->snd->txs.head) {
            peer_free(cx, p);
            continue;
        }
        tether_list_del(&cx->lru, &p->lru); /* still busy: keep it, look again a lifetime later */
        p->last_used = now;
        tether_list_push(&cx->lru, &p->lru);
    }
}

tether_time_t tether_cx_next_deadline(const tether_cx_t *cx)
{
    tether_time_t d = UINT64_MAX;
    const tether_timer_t *t = tether_heap_top(&cx->timers);
    if (t)
        d = t->at;
    const seen_t *s = seen_first(cx);
    if (s && s->expires < d)
        d = s->expires;
    const peer_t *p = lru_first(cx);
    if (p && p->last_used + cx->conf.exchange_lifetime_ms < d)
        d = p->last_used + cx->conf.exchange_lifetime_ms;
    return d;
}

size_t tether_cx_out_count(const tether_cx_t *cx)
{
    return cx->nout;
}
const tether_out_t *tether_cx_out_get(const tether_cx_t *cx, size_t i)
{
    return &cx->out[i];
}
void tether_cx_out_clear(tether_cx_t *cx)
{
    cx->nout = 0;
}
const tether_cx_stats_t *tether_cx_stats(const tether_cx_t *cx)
{
    return &cx->stats;
}
