/* Unit tests for lib/coap/exchange.c: MID lifetime guard, duplicate
 * detection with cached replies, CON retransmission back-off and events. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "coap/exchange.h"

typedef struct {
    int acked, reset, timeout, down;
    uint64_t last_cookie;
} events_t;

/* A waiter naming its CON by number, as the exchange's users embed theirs. */
typedef struct {
    tether_cx_waiter_t w;
    uint64_t cookie;
} waiter_t;

static void on_event(tether_cx_waiter_t *w, tether_cx_event_t ev, tether_time_t now)
{
    (void)now;
    events_t *e = w->owner;
    e->last_cookie = ((waiter_t *)w)->cookie;
    switch (ev) {
    case TETHER_CX_ACKED: e->acked++; break;
    case TETHER_CX_RESET: e->reset++; break;
    case TETHER_CX_TIMEOUT: e->timeout++; break;
    case TETHER_CX_LINK_DOWN: e->down++; break;
    }
}

static tether_link_t link_n(uint64_t id)
{
    tether_link_t l;
    memset(&l, 0, sizeof l);
    l.kind = TETHER_LINK_DTLS;
    l.id = id;
    return l;
}

static tether_cx_t *make(events_t *e)
{
    tether_cx_conf_t c;
    tether_cx_conf_defaults(&c);
    c.dedup_max = 1000;
    tether_cx_t *cx;
    (void)e;
    assert_int_equal(tether_cx_create(&c, &cx), 0);
    return cx;
}

static waiter_t waiter(events_t *e, uint64_t cookie)
{
    waiter_t w = {.w = {.done = on_event, .owner = e}, .cookie = cookie};
    return w;
}

static void test_mid_guard(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1), b = link_n(2);
    uint16_t first, mid;
    assert_int_equal(tether_cx_next_mid(cx, &a, 0, &first), 0);
    for (int i = 1; i < 65535; i++) {
        assert_int_equal(tether_cx_next_mid(cx, &a, (tether_time_t)i, &mid), 0);
        assert_int_equal(mid, (uint16_t)(first + i));
    }
    /* the next MID would wrap onto one used less than EXCHANGE_LIFETIME ago */
    assert_int_equal(tether_cx_next_mid(cx, &a, 100000, &mid), TETHER_EAGAIN);
    /* another peer has its own space */
    assert_int_equal(tether_cx_next_mid(cx, &b, 100000, &mid), 0);
    /* two lifetimes later the space is free again */
    assert_int_equal(tether_cx_next_mid(cx, &a, 2 * 247000 + 1, &mid), 0);
    tether_cx_destroy(cx);
}

/* RFC 7252 §4.4 allows 65535 MIDs per EXCHANGE_LIFETIME toward one peer;
 * 200/s (49,400 per lifetime) must never run out, although two fixed
 * windows of a lifetime each would count up to 98,800. */
static void test_mid_budget_slides(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1);
    uint16_t mid, prev = 0;
    for (tether_time_t t = 0; t < 3 * 247000; t += 5) {
        assert_int_equal(tether_cx_next_mid(cx, &a, t, &mid), 0);
        if (t)
            assert_int_equal(mid, (uint16_t)(prev + 1));
        prev = mid;
    }
    assert_int_equal(tether_cx_stats(cx)->mid_throttled, 0);
    tether_cx_destroy(cx);
}

/* At 500/s the budget runs out; tether_cx_mid_available_at tells exactly
 * when the next MID can be taken, and no MID is reused within a lifetime. */
static void test_mid_budget_spent_tells_when(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1);
    static tether_time_t taken[65536]; /* when each MID value was last taken */
    static bool used[65536];
    uint16_t mid;
    tether_time_t t = 1000;
    int n = 0;
    while (tether_cx_next_mid(cx, &a, t, &mid) == 0) {
        used[mid] = true;
        taken[mid] = t;
        n++;
        t += 2;
    }
    assert_int_equal(n, 65535);
    tether_time_t at = tether_cx_mid_available_at(cx, &a, t);
    assert_true(at > t);
    assert_true(at <= 1000 + 247000 + 247000 / 32 + 1); /* the first slot's end + a lifetime */
    assert_int_equal(tether_cx_next_mid(cx, &a, at - 1, &mid), TETHER_EAGAIN);
    assert_int_equal(tether_cx_mid_available_at(cx, &a, at - 1), at);
    assert_int_equal(tether_cx_next_mid(cx, &a, at, &mid), 0);
    assert_false(used[mid]); /* the one value of the 65536 not taken yet */
    used[mid] = true;
    taken[mid] = at;
    int reused = 0;
    /* keep going at 500/s: every MID handed out was last used a lifetime ago */
    for (t = at + 2; t < at + 247000; t += 2) {
        if (tether_cx_next_mid(cx, &a, t, &mid) == 0) {
            assert_true(used[mid]);
            assert_true(t >= taken[mid] + 247000);
            taken[mid] = t;
            reused++;
        }
    }
    assert_true(reused > 60000); /* the budget comes back as the old MIDs age out */
    tether_cx_destroy(cx);
}

static void test_dedup_replays_cached_reply(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1), b = link_n(2);
    assert_false(tether_cx_seen(cx, &a, 77, 0));
    const uint8_t reply[] = {0x60, 0x45, 0, 77, 0xff, 'x'};
    tether_cx_reply(cx, &a, 77, reply, sizeof reply);
    assert_int_equal(tether_cx_out_count(cx), 1);
    tether_cx_out_clear(cx);
    assert_true(tether_cx_seen(cx, &a, 77, 1000));
    assert_int_equal(tether_cx_out_count(cx), 1);
    assert_memory_equal(tether_cx_out_get(cx, 0)->data, reply, sizeof reply);
    assert_false(tether_cx_seen(cx, &b, 77, 1000)); /* per peer */
    /* forgotten after EXCHANGE_LIFETIME */
    tether_cx_tick(cx, 248000);
    tether_cx_out_clear(cx);
    assert_false(tether_cx_seen(cx, &a, 77, 248000));
    tether_cx_destroy(cx);
}

static void test_retransmit_backoff_and_timeout(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1);
    const uint8_t con[] = {0x41, 0x01, 0x12, 0x34, 0xaa};
    waiter_t w = waiter(&e, 42);
    assert_int_equal(tether_cx_send_con(cx, &a, con, sizeof con, &w.w, 0), 0);
    tether_cx_out_clear(cx);
    /* sends at 0, then after t, 2t, 4t, 8t with t in [2 s, 3 s] */
    tether_time_t now = 0, sends[5] = {0};
    int n = 1;
    while (!e.timeout && now < 100000) {
        now = tether_cx_next_deadline(cx);
        tether_cx_tick(cx, now);
        if (tether_cx_out_count(cx)) {
            assert_memory_equal(tether_cx_out_get(cx, 0)->data, con, sizeof con);
            sends[n++] = now;
            tether_cx_out_clear(cx);
        }
    }
    assert_int_equal(n, 5);
    assert_int_equal(e.timeout, 1);
    assert_int_equal(e.last_cookie, 42);
    tether_time_t t = sends[1];
    assert_true(t >= 2000 && t <= 3000);
    assert_int_equal(sends[2] - sends[1], 2 * t);
    assert_int_equal(sends[4] - sends[3], 8 * t);
    assert_int_equal(now - sends[4], 16 * t); /* gives up after the last wait */
    tether_cx_destroy(cx);
}

static void test_ack_rst_and_link_down(void **state)
{
    (void)state;
    events_t e = {0};
    tether_cx_t *cx = make(&e);
    tether_link_t a = link_n(1);
    uint8_t con[] = {0x40, 0x01, 0x00, 0x01};
    waiter_t w[3] = {waiter(&e, 1), waiter(&e, 2), waiter(&e, 3)};
    assert_int_equal(tether_cx_send_con(cx, &a, con, sizeof con, &w[0].w, 0), 0);
    con[3] = 2;
    assert_int_equal(tether_cx_send_con(cx, &a, con, sizeof con, &w[1].w, 0), 0);
    con[3] = 3;
    assert_int_equal(tether_cx_send_con(cx, &a, con, sizeof con, &w[2].w, 0), 0);
    assert_true(tether_cx_on_ack(cx, &a, 1, false, 10));
    assert_int_equal(e.acked, 1);
    assert_false(tether_cx_on_ack(cx, &a, 1, false, 10)); /* already done */
    assert_true(tether_cx_on_ack(cx, &a, 2, true, 10));
    assert_int_equal(e.reset, 1);
    tether_cx_link_down(cx, &a, 20);
    assert_int_equal(e.down, 1);
    assert_int_equal(e.last_cookie, 3);
    assert_int_equal(tether_cx_stats(cx)->outstanding, 0);
    tether_cx_destroy(cx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mid_guard),
        cmocka_unit_test(test_mid_budget_slides),
        cmocka_unit_test(test_mid_budget_spent_tells_when),
        cmocka_unit_test(test_dedup_replays_cached_reply),
        cmocka_unit_test(test_retransmit_backoff_and_timeout),
        cmocka_unit_test(test_ack_rst_and_link_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
