/* Unit tests for lib/proxy/probe.c: the return-routability probe of a
 * moved session (security issue 11 item 3). A ping with a random MID goes
 * to the new address; only the matching empty RST from that address
 * validates; a wrong guess burns the MID; retries are bounded; a new move
 * restarts the probe for the new address. The clock is stepped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/probe.h"

#define T_NOW 5000 /* when the answers of the tests that do not step the clock come */

typedef struct {
    size_t n;          /* pings sent */
    uint64_t sess;     /* of the last one */
    uint8_t ping[4];   /* the last one */
    uint16_t next_mid; /* what `random` hands out next */
    int random_fails;
} fx_t;

static void fx_send(void *ctx, uint64_t sess, const uint8_t ping[4])
{
    fx_t *f = ctx;
    f->n++;
    f->sess = sess;
    memcpy(f->ping, ping, 4);
}

static int fx_random(void *ctx, void *buf, size_t n)
{
    fx_t *f = ctx;
    assert_int_equal(n, 2);
    if (f->random_fails)
        return -1;
    memcpy(buf, &f->next_mid, 2);
    f->next_mid += 0x1111;
    return 0;
}

static tether_addr_t v4(const char *ip, uint16_t port)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    a.len = sizeof *s;
    return a;
}

static void init(tether_probes_t *t, fx_t *f)
{
    memset(f, 0, sizeof *f);
    f->next_mid = 0x5a5a;
    tether_probe_conf_t c = {.send = fx_send, .random = fx_random, .ctx = f};
    assert_int_equal(tether_probes_init(t, &c, 42), 0);
}

/* The empty RST answering ping[4]. */
static void rst_of(const uint8_t ping[4], uint8_t rst[4])
{
    rst[0] = 0x70;
    rst[1] = 0;
    rst[2] = ping[2];
    rst[3] = ping[3];
}

static uint16_t mid_of(const uint8_t m[4])
{
    return (uint16_t)(m[2] << 8 | m[3]);
}

/* The ping is an empty CON with the random MID; the RST with that MID
 * from the new address validates, once. */
static void test_ping_and_answer(void **state)
{
    (void)state;
    tether_probes_t t;
    fx_t f;
    init(&t, &f);
    tether_addr_t to = v4("198.51.100.9", 40001), other = v4("203.0.113.5", 40001);
    assert_int_equal(tether_probe_start(&t, 7, "dev1", &to, 1000), 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.sess, 7);
    assert_int_equal(f.ping[0], 0x40); /* version 1, CON, no token */
    assert_int_equal(f.ping[1], 0);    /* code 0.00: a CoAP ping */
    uint8_t rst[4];
    rst_of(f.ping, rst);
    /* From another address, or on another session: not an answer. */
    assert_false(tether_probe_answer(&t, 7, &other, rst, 4, T_NOW));
    assert_false(tether_probe_answer(&t, 8, &to, rst, 4, T_NOW));
    /* Not an empty RST (an ACK, a longer message): not an answer either. */
    uint8_t ack[4] = {0x60, 0, rst[2], rst[3]};
    assert_false(tether_probe_answer(&t, 7, &to, ack, 4, T_NOW));
    uint8_t longer[5] = {0x70, 0, rst[2], rst[3], 0xff};
    assert_false(tether_probe_answer(&t, 7, &to, longer, 5, T_NOW));
    assert_true(tether_probe_answer(&t, 7, &to, rst, 4, T_NOW));
    assert_int_equal(t.stats.validated, 1);
    assert_false(tether_probe_answer(&t, 7, &to, rst, 4, T_NOW)); /* the probe ended */
    assert_int_equal(tether_probe_next_deadline(&t), UINT64_MAX);
    tether_probes_free(&t);
}

/* A wrong guess from the probed address burns the MID: even the right
 * MID does not validate until the next try, which has a fresh one. */
static void test_wrong_answer_burns_the_mid(void **state)
{
    (void)state;
    tether_probes_t t;
    fx_t f;
    init(&t, &f);
    tether_addr_t to = v4("198.51.100.9", 40001);
    assert_int_equal(tether_probe_start(&t, 7, "dev1", &to, 1000), 0);
    uint8_t right[4], guess[4];
    rst_of(f.ping, right);
    memcpy(guess, right, 4);
    guess[3] ^= 1;
    assert_false(tether_probe_answer(&t, 7, &to, guess, 4, T_NOW));
    assert_false(tether_probe_answer(&t, 7, &to, right, 4, T_NOW));
    assert_int_equal(t.stats.wrong_answers, 2);
    tether_probe_tick(&t, 1000 + TETHER_PROBE_FIRST_MS);
    assert_int_equal(f.n, 2);
    assert_int_not_equal(mid_of(f.ping), mid_of(right));
    rst_of(f.ping, right);
    assert_true(tether_probe_answer(&t, 7, &to, right, 4, T_NOW));
    tether_probes_free(&t);
}

/* No answer: tries at 0, 2, 6, 14 s, each with a fresh MID that only it
 * answers, given up at 30 s; the address stays unvalidated. */
static void test_retries_bounded(void **state)
{
    (void)state;
    tether_probes_t t;
    fx_t f;
    init(&t, &f);
    tether_addr_t to = v4("198.51.100.9", 40001);
    tether_time_t t0 = 1000;
    assert_int_equal(tether_probe_start(&t, 7, "dev1", &to, t0), 0);
    uint16_t mid = mid_of(f.ping);
    const tether_time_t at[] = {2000, 6000, 14000};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tether_probe_next_deadline(&t), t0 + at[i]);
        tether_probe_tick(&t, t0 + at[i] - 1);
        assert_int_equal(f.n, i + 1);
        tether_probe_tick(&t, t0 + at[i]);
        assert_int_equal(f.n, i + 2);
        assert_int_not_equal(mid_of(f.ping), mid); /* a new ping, a fresh MID */
        uint8_t late[4] = {0x70, 0, (uint8_t)(mid >> 8), (uint8_t)mid};
        assert_false(tether_probe_answer(&t, 7, &to, late, 4, T_NOW)); /* the last try's */
        mid = mid_of(f.ping);
    }
    tether_probe_tick(&t, t0 + 30000);
    assert_int_equal(f.n, TETHER_PROBE_TRIES);
    assert_int_equal(t.stats.gave_up, 1);
    assert_int_equal(t.stats.wrong_answers, 3);
    assert_int_equal(t.stats.probes_sent, TETHER_PROBE_TRIES);
    assert_int_equal(tether_probe_next_deadline(&t), UINT64_MAX);
    tether_probes_free(&t);
}

/* A spoofed move then the real one: the second move restarts the probe
 * for the new address with a fresh MID; an answer from the first address
 * (even with its own MID) no longer validates. A closed session's probe
 * ends; no random MID, no probe. */
static void test_new_move_restarts(void **state)
{
    (void)state;
    tether_probes_t t;
    fx_t f;
    init(&t, &f);
    tether_addr_t victim = v4("203.0.113.5", 5683), real = v4("198.51.100.9", 40002);
    assert_int_equal(tether_probe_start(&t, 7, "dev1", &victim, 1000), 0);
    uint8_t old[4];
    rst_of(f.ping, old);
    assert_int_equal(tether_probe_start(&t, 7, "dev1", &real, 1100), 0);
    assert_int_equal(f.n, 2);
    assert_int_not_equal(mid_of(f.ping), mid_of(old));
    assert_false(tether_probe_answer(&t, 7, &victim, old, 4, T_NOW));
    uint8_t rst[4];
    rst_of(f.ping, rst);
    assert_true(tether_probe_answer(&t, 7, &real, rst, 4, T_NOW));
    /* forget */
    assert_int_equal(tether_probe_start(&t, 9, "dev1", &real, 1200), 0);
    tether_probe_forget(&t, 9);
    rst_of(f.ping, rst);
    assert_false(tether_probe_answer(&t, 9, &real, rst, 4, T_NOW));
    f.random_fails = 1;
    assert_int_equal(tether_probe_start(&t, 10, "dev1", &real, 1300), TETHER_ECRYPTO);
    assert_int_equal(tether_probe_next_deadline(&t), UINT64_MAX);
    tether_probes_free(&t);
}

/* The security review: every move restarted the probe with fresh tries,
 * so a credential holder spoofing a victim's address could move, guess
 * one MID, move away and back, and try all 2^16 in seconds, then aim the
 * session's whole downlink at the victim; and counted per session, a new
 * handshake every 8 guesses would do it in a minute. Guesses now count
 * for the identity: after TETHER_PROBE_GUESSES wrong answers within
 * TETHER_PROBE_GUESS_WINDOW_MS (a restart, a probe that gave up or a new
 * session keep the count), none of its sessions is probed or validated
 * until the window has passed; other identities are not affected. */
static void test_guesses_survive_new_moves(void **state)
{
    (void)state;
    tether_probes_t t;
    fx_t f;
    init(&t, &f);
    tether_addr_t victim = v4("203.0.113.5", 5683), own = v4("198.51.100.9", 40002);
    tether_time_t now = 1000;
    uint8_t right[4], guess[4];
    for (int i = 0; i < TETHER_PROBE_GUESSES; i++) {
        uint64_t sess = i < 4 ? 7 : 8; /* a new session halfway */
        assert_int_equal(tether_probe_start(&t, sess, "dev1", &victim, now), 0);
        rst_of(f.ping, right);
        memcpy(guess, right, 4);
        guess[3] ^= 1;
        assert_false(tether_probe_answer(&t, sess, &victim, guess, 4, now));
        if (i == 2) { /* waiting out a probe does not clear the count */
            for (int s = 0; s < 30; s++)
                tether_probe_tick(&t, now += 1000);
            assert_int_equal(t.stats.gave_up, 1);
        }
        if (i + 1 < TETHER_PROBE_GUESSES) /* away, to come back */
            assert_int_equal(tether_probe_start(&t, sess, "dev1", &own, ++now), 0);
    }
    size_t sent = f.n;
    assert_int_equal(tether_probe_start(&t, 8, "dev1", &victim, ++now), TETHER_ELIMIT);
    assert_int_equal(tether_probe_start(&t, 9, "dev1", &victim, now), TETHER_ELIMIT);
    assert_int_equal(f.n, sent); /* no ping for the victim, from any session of dev1 */
    /* Even the MID of the last ping no longer validates; no more pings. */
    rst_of(f.ping, right);
    assert_false(tether_probe_answer(&t, 8, &victim, right, 4, now));
    assert_false(tether_probe_answer(&t, 8, &own, right, 4, now));
    tether_probe_tick(&t, now + 60000); /* the earlier session's probe ends unsent */
    assert_int_equal(f.n, sent);
    assert_int_equal(tether_probe_next_deadline(&t), UINT64_MAX);
    assert_int_equal(t.stats.validated, 0);
    /* Another identity is probed and validated as ever. */
    assert_int_equal(tether_probe_start(&t, 20, "dev2", &own, now), 0);
    rst_of(f.ping, right);
    assert_true(tether_probe_answer(&t, 20, &own, right, 4, now));
    /* Once the window has passed, dev1 is probed again. */
    now += TETHER_PROBE_GUESS_WINDOW_MS;
    assert_int_equal(tether_probe_start(&t, 8, "dev1", &own, now), 0);
    rst_of(f.ping, right);
    assert_true(tether_probe_answer(&t, 8, &own, right, 4, now));
    tether_probes_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_and_answer),
        cmocka_unit_test(test_wrong_answer_burns_the_mid),
        cmocka_unit_test(test_retries_bounded),
        cmocka_unit_test(test_new_move_restarts),
        cmocka_unit_test(test_guesses_survive_new_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
