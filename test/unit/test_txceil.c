/* Unit tests for lib/dtls/txceil.c: a session model sends records through
 * the transmit-sequence ceiling, raising it with SESSION record puts to a
 * state store: the in-memory store (completes inside the put) and a
 * deferring store over it whose puts complete only when the test says
 * (like a networked store), or fail. The invariant checked on every send:
 * the record's sequence number is below the ceiling the store holds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "dtls/txceil.h"
#include "state/store_impl.h"

/* ---- a store whose puts complete later ------------------------------------ */

#define DEFER_MAX 8
typedef struct {
    tether_store_t base;
    tether_store_t *inner; /* where completed puts land */
    struct {
        tether_store_rec_t rec;
        uint64_t expect;
        tether_store_cb cb;
        void *user;
    } q[DEFER_MAX];
    size_t n;
} defer_t;

static int d_put(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect, uint32_t ttl_ms,
                 tether_time_t now, tether_store_cb cb, void *user)
{
    defer_t *d = (defer_t *)s;
    if (rec->kind != TETHER_STORE_SESSION || rec->u.session.blob_len || d->n == DEFER_MAX)
        return TETHER_EINVAL; /* this test stores no blobs */
    d->q[d->n].rec = *rec;
    d->q[d->n].expect = expect;
    d->q[d->n].cb = cb;
    d->q[d->n].user = user;
    d->n++;
    return 0;
}

static tether_store_ops_t defer_ops = {.put = d_put};

/* Completes the oldest put: into the inner store, or with `fail`. */
static void defer_complete(defer_t *d, int fail, tether_time_t now)
{
    assert_true(d->n > 0);
    tether_store_rec_t rec = d->q[0].rec;
    uint64_t expect = d->q[0].expect;
    tether_store_cb cb = d->q[0].cb;
    void *user = d->q[0].user;
    memmove(&d->q[0], &d->q[1], (d->n - 1) * sizeof d->q[0]);
    d->n--;
    if (fail) {
        tether_store_result_t res = {.rc = fail, .kind = TETHER_STORE_SESSION};
        cb(user, &res);
        return;
    }
    assert_int_equal(tether_store_put(d->inner, &rec, expect, 0, now, cb, user), 0);
}

/* ---- the session model ---------------------------------------------------- */

static const uint8_t cid[8] = {5, 9, 9, 9, 9, 9, 9, 9};

typedef struct {
    tether_txceil_t t;
    tether_store_t *store; /* where raises go */
    tether_store_t *truth; /* what is durable */
    uint64_t next;         /* next sequence number */
    uint64_t version;      /* last SESSION record version seen */
    uint64_t sent, dropped, raises, failures;
    tether_time_t now;
} sess_t;

static uint64_t stored_ceiling(sess_t *s);

static void check_sent(sess_t *s, uint64_t seq)
{
    assert_true(seq < stored_ceiling(s)); /* never beyond what the store holds */
    s->sent++;
}

static void drain(sess_t *s);

static void on_put(void *user, const tether_store_result_t *res)
{
    sess_t *s = user;
    if (res->rc < 0) {
        s->failures++;
        tether_txceil_failed(&s->t, s->now);
        return;
    }
    s->version = res->version;
    tether_txceil_acked(&s->t, s->t.pending);
    drain(s);
}

static void maybe_raise(sess_t *s)
{
    uint64_t c;
    if (!tether_txceil_want(&s->t, s->next, s->now, &c))
        return;
    tether_store_rec_t rec = {.kind = TETHER_STORE_SESSION};
    rec.u.session.cid_len = sizeof cid;
    memcpy(rec.u.session.cid, cid, sizeof cid);
    rec.u.session.node_id = 5;
    rec.u.session.seq_ceiling = c;
    s->raises++;
    tether_txceil_started(&s->t, c);
    if (tether_store_put(s->store, &rec, s->version, 0, s->now, on_put, s) < 0)
        tether_txceil_failed(&s->t, s->now);
}

static void drain(sess_t *s)
{
    uint8_t type, buf[64];
    size_t len;
    while (tether_txceil_pop(&s->t, s->next, &type, buf, sizeof buf, &len) == 0)
        check_sent(s, s->next++);
    maybe_raise(s);
}

static void send_one(sess_t *s)
{
    int rc = tether_txceil_check(&s->t, s->next);
    if (rc == 0)
        check_sent(s, s->next++);
    else if (rc == TETHER_EAGAIN && tether_txceil_hold(&s->t, 23, (const uint8_t *)"x", 1) < 0)
        s->dropped++;
    maybe_raise(s);
}

typedef struct {
    uint64_t ceiling;
    int rc;
} got_t;

static void on_get(void *user, const tether_store_result_t *res)
{
    got_t *g = user;
    g->rc = res->rc;
    if (res->rc == 0)
        g->ceiling = res->rec->u.session.seq_ceiling;
}

static uint64_t stored_ceiling(sess_t *s)
{
    got_t g = {0};
    assert_int_equal(
        tether_store_get(s->truth, TETHER_STORE_SESSION, cid, sizeof cid, s->now, on_get, &g), 0);
    return g.rc == 0 ? g.ceiling : 0;
}

static void sess_init(sess_t *s, tether_store_t *store, tether_store_t *truth, uint64_t next)
{
    memset(s, 0, sizeof *s);
    tether_txceil_conf_t conf;
    tether_txceil_conf_defaults(&conf);
    conf.block = 64;
    conf.hold_max = 4;
    tether_txceil_init(&s->t, &conf, next);
    s->store = store;
    s->truth = truth;
    s->next = next;
    s->now = 1000;
}

/* In-memory store: every raise completes inside its put, so only the very
 * first record waits (held, then released by the acknowledgement within the
 * same call); raises happen once per block. */
static void test_sync_store(void **state)
{
    (void)state;
    tether_store_t *mem;
    assert_int_equal(tether_store_mem_create(16, &mem), 0);
    sess_t s;
    sess_init(&s, mem, mem, 7);
    for (int i = 0; i < 1000; i++)
        send_one(&s);
    assert_int_equal(s.sent, 1000);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(tether_txceil_held(&s.t), 0);
    /* A new block each time half the previous one is used: 1000 / 32. */
    assert_true(s.raises >= 1000 / 64 && s.raises <= 1000 / 32 + 2);
    assert_true(stored_ceiling(&s) > s.next);
    assert_true(stored_ceiling(&s) <= s.next + 64 + 32);
    tether_txceil_destroy(&s.t);
    tether_store_destroy(mem);
}

/* Deferring store: nothing goes out before the first acknowledgement;
 * up to hold_max records wait, the rest are refused; the acknowledgement
 * releases them in order. Then, with acknowledgements arriving within half
 * a block, records never wait: the raise runs ahead of need. */
static void test_async_store(void **state)
{
    (void)state;
    tether_store_t *mem;
    assert_int_equal(tether_store_mem_create(16, &mem), 0);
    defer_t d = {.base.ops = &defer_ops, .inner = mem};
    sess_t s;
    sess_init(&s, &d.base, mem, 0);
    for (int i = 0; i < 6; i++)
        send_one(&s);
    assert_int_equal(s.sent, 0);
    assert_int_equal(tether_txceil_held(&s.t), 4);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(d.n, 1); /* one raise in flight, not one per record */
    defer_complete(&d, 0, s.now);
    assert_int_equal(s.sent, 4);
    assert_int_equal(tether_txceil_held(&s.t), 0);

    uint64_t waited = 0;
    for (int i = 0; i < 2000; i++) {
        size_t held = tether_txceil_held(&s.t);
        send_one(&s);
        waited += tether_txceil_held(&s.t) > held;
        if (d.n && i % 8 == 7) /* the store answers within 8 records */
            defer_complete(&d, 0, s.now);
    }
    assert_int_equal(waited, 0);
    assert_int_equal(s.sent, 2004);
    tether_txceil_destroy(&s.t);
    tether_store_destroy(mem);
}

/* A failed raise (store unreachable) is retried after retry_ms, not before;
 * meanwhile records wait (bounded) and nothing beyond the ceiling leaves. A
 * stale acknowledgement of a lower ceiling never lowers it. */
static void test_failed_raise_retries(void **state)
{
    (void)state;
    tether_store_t *mem;
    assert_int_equal(tether_store_mem_create(16, &mem), 0);
    defer_t d = {.base.ops = &defer_ops, .inner = mem};
    sess_t s;
    sess_init(&s, &d.base, mem, 100);
    send_one(&s);
    defer_complete(&d, TETHER_EIO, s.now);
    assert_int_equal(s.failures, 1);
    assert_int_equal(tether_txceil_next_deadline(&s.t), s.now + 500);
    uint64_t c;
    assert_false(tether_txceil_want(&s.t, s.next, s.now + 499, &c));
    send_one(&s);
    assert_int_equal(d.n, 0);
    assert_int_equal(tether_txceil_held(&s.t), 2);
    s.now += 500;
    assert_true(tether_txceil_want(&s.t, s.next, s.now, &c));
    assert_int_equal(c, 100 + 64);
    send_one(&s);
    assert_int_equal(d.n, 1);
    defer_complete(&d, 0, s.now);
    assert_int_equal(s.sent, 3);
    assert_int_equal(tether_txceil_next_deadline(&s.t), UINT64_MAX);
    uint64_t acked = s.t.acked;
    tether_txceil_acked(&s.t, 50);
    assert_int_equal(s.t.acked, acked);
    assert_int_equal(tether_txceil_check(&s.t, acked - 1), 0);
    assert_int_equal(tether_txceil_check(&s.t, acked), TETHER_EAGAIN);
    tether_txceil_destroy(&s.t);
    tether_store_destroy(mem);
}

/* Where an adopter starts, and the end of the sequence space. */
static void test_adopt_start_and_limit(void **state)
{
    (void)state;
    assert_int_equal(tether_txceil_adopt_start(1000, 1 << 24), 1000 + (1 << 24));
    assert_int_equal(tether_txceil_adopt_start(TETHER_TXCEIL_SEQ_LIMIT - 10, 10),
                     TETHER_TXCEIL_SEQ_LIMIT);
    assert_int_equal(tether_txceil_adopt_start(TETHER_TXCEIL_SEQ_LIMIT - 11, 10),
                     TETHER_TXCEIL_SEQ_LIMIT - 1);
    assert_int_equal(tether_txceil_adopt_start(UINT64_MAX, 1), TETHER_TXCEIL_SEQ_LIMIT);
    tether_txceil_t t;
    tether_txceil_conf_t conf;
    tether_txceil_conf_defaults(&conf);
    tether_txceil_init(&t, &conf, TETHER_TXCEIL_SEQ_LIMIT - 8);
    uint64_t c;
    assert_true(tether_txceil_want(&t, TETHER_TXCEIL_SEQ_LIMIT - 8, 0, &c));
    assert_int_equal(c, TETHER_TXCEIL_SEQ_LIMIT); /* never past the space */
    tether_txceil_started(&t, c);
    tether_txceil_acked(&t, c);
    assert_int_equal(tether_txceil_check(&t, TETHER_TXCEIL_SEQ_LIMIT - 1), 0);
    assert_int_equal(tether_txceil_check(&t, TETHER_TXCEIL_SEQ_LIMIT), TETHER_ELIMIT);
    assert_false(tether_txceil_want(&t, TETHER_TXCEIL_SEQ_LIMIT - 1, 0, &c));
    /* Held records are freed with the state (run under ASan to see). */
    tether_txceil_init(&t, &conf, 0);
    assert_int_equal(tether_txceil_hold(&t, 23, (const uint8_t *)"abc", 3), 0);
    uint8_t small[2], type;
    size_t len;
    assert_int_equal(tether_txceil_pop(&t, 0, &type, small, sizeof small, &len),
                     TETHER_ENOTFOUND); /* not covered yet */
    tether_txceil_acked(&t, 10);
    assert_int_equal(tether_txceil_pop(&t, 0, &type, small, sizeof small, &len), TETHER_ENOSPC);
    tether_txceil_destroy(&t);
    assert_int_equal(tether_txceil_held(&t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_store),
        cmocka_unit_test(test_async_store),
        cmocka_unit_test(test_failed_raise_retries),
        cmocka_unit_test(test_adopt_start_and_limit),
    };
    return cmocka_run_group_tests_name("txceil", tests, NULL, NULL);
}
