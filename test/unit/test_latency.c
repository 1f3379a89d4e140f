/* Unit tests for server/latency.c: both crossings of a relayed request are
 * summed once, matched by the device-side token; what cannot be matched is
 * not recorded; the pending table is bounded. Times are given in ns. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "../../server/latency.h"

#define CLIENT 7
#define DEVICE 9
#define US 1000ull

/* A CoAP message (RFC 7252 §3): CON, code, MID 1, 4-byte token. */
static size_t msg(uint8_t code, uint32_t token, uint8_t *out)
{
    out[0] = 0x44; /* version 1, CON, TKL 4 */
    out[1] = code;
    out[2] = 0;
    out[3] = 1;
    memcpy(out + 4, &token, 4);
    return 8;
}

/* First crossing: the client's request read at t, the request to the
 * device (token dev_token) sent at t + leg. */
static void request_leg(tetherd_lat_t *l, uint32_t dev_token, uint64_t t, uint64_t leg)
{
    uint8_t b[16];
    tetherd_lat_read(l, t);
    tetherd_lat_in(l, CLIENT, b, msg(0x01, 0xc11e, b));     /* GET */
    tetherd_lat_out(l, DEVICE, b, msg(0x01, dev_token, b)); /* GET to the device */
    tetherd_lat_sent(l, t + leg, true);
}

/* Second crossing: the device's 2.05 with dev_token read at t, the
 * client's 2.05 sent at t + leg. */
static void answer_leg(tetherd_lat_t *l, uint32_t dev_token, uint64_t t, uint64_t leg)
{
    uint8_t b[16];
    tetherd_lat_read(l, t);
    tetherd_lat_in(l, DEVICE, b, msg(0x45, dev_token, b));
    tetherd_lat_out(l, CLIENT, b, msg(0x45, 0xc11e, b));
    tetherd_lat_sent(l, t + leg, true);
}

static void relay(tetherd_lat_t *l, uint32_t dev_token, uint64_t t0, uint64_t leg1, uint64_t t1,
                  uint64_t leg2)
{
    request_leg(l, dev_token, t0, leg1);
    answer_leg(l, dev_token, t1, leg2);
}

static void test_both_crossings_summed_once(void **state)
{
    (void)state;
    tetherd_lat_t l;
    assert_int_equal(tetherd_lat_init(&l), 0);
    relay(&l, 0xd0d0, 1000 * US, 30 * US, 5000 * US, 12 * US);
    assert_int_equal(l.relayed.count, 1);
    assert_int_equal(l.relayed.max, 42); /* us: 30 + 12, not the device's time */
    relay(&l, 0xd0d1, 9000 * US, 10 * US, 9500 * US, 10 * US);
    assert_int_equal(l.relayed.count, 2);
    tetherd_lat_free(&l);
}

static void test_unmatched_answers_are_not_recorded(void **state)
{
    (void)state;
    tetherd_lat_t l;
    uint8_t b[16];
    assert_int_equal(tetherd_lat_init(&l), 0);
    /* An answer whose token tetherd never sent, and a second copy of a
     * matched answer (a retransmission): neither is a relayed request. */
    answer_leg(&l, 0xbeef, 1000 * US, 10 * US);
    assert_int_equal(l.relayed.count, 0);
    relay(&l, 0xd0d0, 2000 * US, 5 * US, 3000 * US, 5 * US);
    answer_leg(&l, 0xd0d0, 4000 * US, 10 * US);
    assert_int_equal(l.relayed.count, 1);
    /* Output outside a batch (a timer's retransmission) is not attributed. */
    tetherd_lat_out(&l, DEVICE, b, msg(0x01, 0xd0d2, b));
    tetherd_lat_sent(&l, 5000 * US, true);
    answer_leg(&l, 0xd0d2, 6000 * US, 10 * US);
    assert_int_equal(l.relayed.count, 1);
    tetherd_lat_free(&l);
}

/* A read's output that leaves before the read ends (main.c: what waited
 * TX_WAIT_US) is timed when it left; what the rest of the read sends is
 * still timed from the read, not from the earlier send. */
static void test_output_leaving_mid_read(void **state)
{
    (void)state;
    tetherd_lat_t l;
    uint8_t b[16];
    assert_int_equal(tetherd_lat_init(&l), 0);
    tetherd_lat_read(&l, 1000 * US);
    tetherd_lat_in(&l, CLIENT, b, msg(0x01, 0xc11e, b));
    tetherd_lat_out(&l, DEVICE, b, msg(0x01, 0xd0d0, b));
    tetherd_lat_sent(&l, 1010 * US, false); /* first request's device GET: 10 us */
    tetherd_lat_in(&l, CLIENT, b, msg(0x01, 0xc11f, b));
    tetherd_lat_out(&l, DEVICE, b, msg(0x01, 0xd0d1, b));
    tetherd_lat_sent(&l, 1050 * US, true); /* second one's: 50 us after the read */
    answer_leg(&l, 0xd0d0, 2000 * US, 5 * US);
    assert_int_equal(l.relayed.count, 1);
    assert_int_equal(l.relayed.max, 15);
    answer_leg(&l, 0xd0d1, 3000 * US, 5 * US);
    assert_int_equal(l.relayed.count, 2);
    assert_int_equal(l.relayed.max, 55);
    tetherd_lat_free(&l);
}

static void test_pending_is_bounded(void **state)
{
    (void)state;
    tetherd_lat_t l;
    assert_int_equal(tetherd_lat_init(&l), 0);
    /* More device requests than the table holds, none answered: the
     * oldest are forgotten and counted, the newest still match. */
    for (uint32_t k = 0; k < TETHERD_LAT_PENDING + 10; k++)
        request_leg(&l, k, (1000 + k) * US, 3 * US);
    assert_int_equal(l.unmatched, 10);
    answer_leg(&l, 0, 90000 * US, 1 * US); /* the oldest: forgotten */
    assert_int_equal(l.relayed.count, 0);
    answer_leg(&l, TETHERD_LAT_PENDING + 9, 91000 * US, 2 * US); /* the newest */
    assert_int_equal(l.relayed.count, 1);
    assert_int_equal(l.relayed.max, 5);
    tetherd_lat_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_crossings_summed_once),
        cmocka_unit_test(test_unmatched_answers_are_not_recorded),
        cmocka_unit_test(test_output_leaving_mid_read),
        cmocka_unit_test(test_pending_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
