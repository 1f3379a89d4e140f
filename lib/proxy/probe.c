/* Return-routability probes of moved sessions (see probe.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/probe.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "util/container.h"
#include "util/hash.h"

/* An identity that gave wrong answers (probe.h: its guess budget). */
typedef struct {
    tether_hnode_t node; /* in guessers, key: hash of name */
    tether_lnode_t ln;   /* in guessers_by_age, oldest window first */
    tether_time_t since; /* its window's start */
    uint8_t wrong;
    char name[TETHER_IDENTITY_MAX];
} guesser_t;

typedef struct {
    tether_hnode_t node; /* in by_sess, key: session id */
    tether_lnode_t ln;   /* in all */
    uint64_t sess;
    tether_addr_t to;
    uint16_t mid;
    bool armed;    /* an RST with `mid` would validate (not burnt by a wrong answer) */
    uint8_t tries; /* pings sent */
    tether_time_t next_at;
    char identity[TETHER_IDENTITY_MAX]; /* "" none */
} probe_t;

int tether_probes_init(tether_probes_t *t, const tether_probe_conf_t *conf, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->conf = *conf;
    t->seed = seed;
    int rc = tether_hmap_init(&t->by_sess, 16, seed);
    if (!rc && (rc = tether_hmap_init(&t->guessers, 16, seed ^ 0x2127599bf4325c37ull)) < 0)
        tether_hmap_free(&t->by_sess);
    return rc;
}

static void guesser_free(tether_probes_t *t, guesser_t *g)
{
    tether_hmap_remove(&t->guessers, &g->node);
    tether_list_del(&t->guessers_by_age, &g->ln);
    free(g);
}

/* The guess budget of `identity` ("" none: NULL), its window expired ones
 * gone first; created when `create`. */
static guesser_t *guesser(tether_probes_t *t, const char *identity, bool create, tether_time_t now)
{
    while (t->guessers_by_age.head) {
        guesser_t *g = container_of(t->guessers_by_age.head, guesser_t, ln);
        if (now < g->since + TETHER_PROBE_GUESS_WINDOW_MS)
            break;
        guesser_free(t, g);
    }
    if (!identity[0])
        return NULL;
    uint64_t k = tether_hash64(t->seed, identity, strlen(identity));
    tether_hnode_t *h = tether_hmap_find(&t->guessers, &k, sizeof k);
    guesser_t *g = h ? container_of(h, guesser_t, node) : NULL;
    if (g && strcmp(g->name, identity) != 0)
        return NULL; /* a hash collision: uncounted */
    if (g || !create || !(g = calloc(1, sizeof *g)))
        return g;
    snprintf(g->name, sizeof g->name, "%s", identity);
    g->since = now;
    tether_hmap_insert(&t->guessers, &g->node, &k, sizeof k);
    tether_list_push(&t->guessers_by_age, &g->ln);
    return g;
}

/* Whether `identity` spent its guesses (probe.h). */
static bool spent(tether_probes_t *t, const char *identity, tether_time_t now)
{
    const guesser_t *g = guesser(t, identity, false, now);
    return g && g->wrong >= TETHER_PROBE_GUESSES;
}

static void probe_free(tether_probes_t *t, probe_t *p)
{
    tether_hmap_remove(&t->by_sess, &p->node);
    tether_list_del(&t->all, &p->ln);
    free(p);
}

void tether_probes_free(tether_probes_t *t)
{
    while (t->all.head)
        probe_free(t, container_of(t->all.head, probe_t, ln));
    while (t->guessers_by_age.head)
        guesser_free(t, container_of(t->guessers_by_age.head, guesser_t, ln));
    tether_hmap_free(&t->by_sess);
    tether_hmap_free(&t->guessers);
}

static probe_t *probe_find(const tether_probes_t *t, uint64_t sess)
{
    tether_hnode_t *h = tether_hmap_find(&t->by_sess, &sess, sizeof sess);
    return h ? container_of(h, probe_t, node) : NULL;
}

/* One ping of `p` with a fresh MID; the next try after 2, 4, 8 s.
 * ECRYPTO when no random MID could be had. */
static int probe_send(tether_probes_t *t, probe_t *p, tether_time_t now)
{
    if (t->conf.random(t->conf.ctx, &p->mid, sizeof p->mid) < 0)
        return TETHER_ECRYPTO;
    p->armed = true;
    uint8_t ping[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_CON << 4), 0,
                       (uint8_t)(p->mid >> 8), (uint8_t)p->mid};
    p->next_at = now + ((tether_time_t)TETHER_PROBE_FIRST_MS << p->tries);
    p->tries++;
    t->stats.probes_sent++;
    t->conf.send(t->conf.ctx, p->sess, ping);
    return 0;
}

int tether_probe_start(tether_probes_t *t, uint64_t sess, const char *identity,
                       const tether_addr_t *to, tether_time_t now)
{
    identity = identity ? identity : "";
    probe_t *p = probe_find(t, sess);
    if (spent(t, identity, now)) {
        if (p)
            probe_free(t, p); /* its MID must not validate either */
        return TETHER_ELIMIT;
    }
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            return TETHER_ENOMEM;
        p->sess = sess;
        tether_hmap_insert(&t->by_sess, &p->node, &p->sess, sizeof p->sess);
        tether_list_push(&t->all, &p->ln);
    }
    p->to = *to;
    snprintf(p->identity, sizeof p->identity, "%s", identity);
    p->tries = 0;
    int rc = probe_send(t, p, now);
    if (rc < 0)
        probe_free(t, p);
    return rc;
}

bool tether_probe_answer(tether_probes_t *t, uint64_t sess, const tether_addr_t *from,
                         const uint8_t *msg, size_t len, tether_time_t now)
{
    probe_t *p;
    /* An empty RST (RFC 7252 §4.2): header only, code 0.00. */
    if (len != 4 || msg[0] != (TETHER_COAP_VERSION << 6 | TETHER_COAP_RST << 4) || msg[1] != 0 ||
        !(p = probe_find(t, sess)) || !tether_addr_equal(from, &p->to))
        return false;
    uint16_t mid = (uint16_t)(msg[2] << 8 | msg[3]);
    if (!p->armed || mid != p->mid || spent(t, p->identity, now)) {
        p->armed = false; /* a guess: this MID can no longer validate */
        t->stats.wrong_answers++;
        guesser_t *g = guesser(t, p->identity, true, now);
        if (g && g->wrong < TETHER_PROBE_GUESSES)
            g->wrong++;
        return false;
    }
    t->stats.validated++;
    probe_free(t, p);
    return true;
}

void tether_probe_forget(tether_probes_t *t, uint64_t sess)
{
    probe_t *p = probe_find(t, sess);
    if (p)
        probe_free(t, p);
}

void tether_probe_tick(tether_probes_t *t, tether_time_t now)
{
    for (tether_lnode_t *l = t->all.head, *next; l; l = next) {
        next = l->next;
        probe_t *p = container_of(l, probe_t, ln);
        if (now < p->next_at)
            continue;
        if (p->tries >= TETHER_PROBE_TRIES || spent(t, p->identity, now) ||
            probe_send(t, p, now) < 0) {
            t->stats.gave_up++;
            probe_free(t, p);
        }
    }
}

tether_time_t tether_probe_next_deadline(const tether_probes_t *t)
{
    tether_time_t at = UINT64_MAX;
    for (const tether_lnode_t *l = t->all.head; l; l = l->next) {
        const probe_t *p = container_of(l, probe_t, ln);
        at = p->next_at < at ? p->next_at : at;
    }
    return at;
}
