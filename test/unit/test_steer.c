/* Unit tests for server/workers/steer.c, the reuseport program of the
 * workers of one host, loaded on real loopback sockets: the kernel runs
 * it, and each test checks which socket of the group receives a
 * datagram. A DTLS 1.2 tls12_cid record or a DTLS 1.3 unified header
 * whose CID names worker k reaches socket k from any source port; short
 * records, other hosts' node bytes and datagrams without a CID follow
 * the kernel's 4-tuple hash (one source always reaches one socket, many
 * sources more than one). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../server/workers/steer.h"
#include "tether/cluster.h"

#define NSOCK 3
#define BASE 5 /* node ids 5, 6, 7 */
#define NCLIENT 16

typedef struct {
    int srv[NSOCK];
    int cli[NCLIENT];
    struct sockaddr_in at;
} fx_t;

static int bound_socket(struct sockaddr_in *at, int reuse)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    if (reuse)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuse, sizeof reuse), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)at, sizeof *at), 0);
    socklen_t len = sizeof *at;
    assert_int_equal(getsockname(fd, (struct sockaddr *)at, &len), 0);
    return fd;
}

static int setup(void **state)
{
    static fx_t fx;
    memset(&fx, 0, sizeof fx);
    fx.at.sin_family = AF_INET;
    fx.at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int k = 0; k < NSOCK; k++) /* bind order = reuseport slot */
        fx.srv[k] = bound_socket(&fx.at, 1);
    assert_int_equal(tetherd_steer_attach(fx.srv[0], BASE, NSOCK), 0);
    for (int c = 0; c < NCLIENT; c++) {
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fx.cli[c] = bound_socket(&any, 0);
    }
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    for (int k = 0; k < NSOCK; k++)
        if (fx->srv[k] >= 0)
            close(fx->srv[k]);
    for (int c = 0; c < NCLIENT; c++)
        close(fx->cli[c]);
    return 0;
}

/* Sends d[len] from client c; returns the index of the server socket
 * that received it (-1: none within a second). */
static int deliver(fx_t *fx, int c, const uint8_t *d, size_t len)
{
    assert_int_equal(sendto(fx->cli[c], d, len, 0, (struct sockaddr *)&fx->at, sizeof fx->at),
                     (ssize_t)len);
    struct pollfd p[NSOCK];
    for (int k = 0; k < NSOCK; k++)
        p[k] = (struct pollfd){.fd = fx->srv[k], .events = POLLIN};
    if (poll(p, NSOCK, 1000) <= 0)
        return -1;
    for (int k = 0; k < NSOCK; k++)
        if (p[k].revents & POLLIN) {
            uint8_t buf[2048];
            assert_int_equal(recv(fx->srv[k], buf, sizeof buf, 0), (ssize_t)len);
            return k;
        }
    return -1;
}

/* A tls12_cid record (RFC 9146 §4) whose 8-byte CID starts with `node`. */
static size_t cid12(uint8_t *d, uint8_t node)
{
    static const uint8_t hdr[11] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 42};
    memcpy(d, hdr, sizeof hdr);
    d[11] = node;
    memset(d + 12, 0xab, 7);
    d[19] = 0; /* length, then a body */
    d[20] = 24;
    memset(d + 21, 0x5a, 24);
    return 45;
}

static void test_prog_bounds(void **state)
{
    (void)state;
    struct sock_filter p[TETHERD_STEER_MAX_INSNS];
    assert_int_equal(tetherd_steer_prog(1, 0, p), TETHER_EINVAL);
    assert_int_equal(tetherd_steer_prog(0, 2, p), TETHER_EINVAL);
    assert_int_equal(tetherd_steer_prog(250, 7, p), TETHER_EINVAL); /* 256 */
    assert_true(tetherd_steer_prog(250, 6, p) > 0);
    assert_true(tetherd_steer_prog(1, 64, p) <= TETHERD_STEER_MAX_INSNS);
}

/* From every client port, a record naming node BASE + k reaches socket k,
 * for both record formats; the library reads the same byte. */
static void test_cid_names_the_worker(void **state)
{
    fx_t *fx = *state;
    uint8_t d[64];
    for (int c = 0; c < NCLIENT; c++)
        for (int k = 0; k < NSOCK; k++) {
            size_t n = cid12(d, (uint8_t)(BASE + k));
            assert_int_equal(tether_cluster_cid_node(d, n), BASE + k);
            assert_int_equal(deliver(fx, c, d, n), k);
            /* DTLS 1.3 unified header 001CSLEE with C, S (16-bit seq), L */
            uint8_t u[] = {
                0x3f, (uint8_t)(BASE + k), 1, 2, 3, 4, 5, 6, 7, 0x00, 0x01, 0x00, 0x04, 9, 9, 9, 9};
            assert_int_equal(tether_cluster_cid_node(u, sizeof u), BASE + k);
            assert_int_equal(deliver(fx, c, u, sizeof u), k);
        }
}

/* Everything else is hashed by source: each client always reaches one
 * socket with all of them (never "socket 0 because a load ran past the
 * end"), and the clients together reach more than one socket. */
static void test_others_follow_the_source_hash(void **state)
{
    fx_t *fx = *state;
    uint8_t d[64];
    unsigned seen = 0;
    for (int c = 0; c < NCLIENT; c++) {
        uint8_t hello[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}; /* no CID */
        int k = deliver(fx, c, hello, sizeof hello);
        assert_true(k >= 0);
        seen |= 1u << k;
        size_t n = cid12(d, BASE + NSOCK); /* node 8: another host's */
        assert_int_equal(deliver(fx, c, d, n), k);
        assert_int_equal(deliver(fx, c, d, 12), k); /* tls12_cid cut before its CID */
        n = cid12(d, BASE - 1);                     /* below the base: wraps, not ours */
        assert_int_equal(deliver(fx, c, d, n), k);
        uint8_t one[] = {25};
        assert_int_equal(deliver(fx, c, one, 1), k);
        uint8_t u1[] = {0x3f}; /* a unified header without its CID byte */
        assert_int_equal(deliver(fx, c, u1, 1), k);
        uint8_t u0[] = {0x2f, BASE + 1, 0, 0}; /* unified header without the C bit */
        assert_int_equal(deliver(fx, c, u0, sizeof u0), k);
        uint8_t coap[] = {0x40, 0x01, 0x12, 0x34}; /* plain CoAP */
        assert_int_equal(deliver(fx, c, coap, sizeof coap), k);
        assert_int_equal(deliver(fx, c, d, 0), k); /* empty: no load may run past it */
    }
    assert_true(seen != 1u && seen != 2u && seen != 4u);
}

/* Why the supervisor keeps every socket open: when a socket leaves the
 * group, the last one moves into its slot (net/core/sock_reuseport.c),
 * so the records naming worker 0 would reach worker 2's socket. */
static void test_a_closed_socket_moves_the_last_into_its_slot(void **state)
{
    fx_t *fx = *state;
    uint8_t d[64];
    size_t n = cid12(d, BASE);
    close(fx->srv[0]);
    fx->srv[0] = socket(AF_INET, SOCK_DGRAM, 0); /* unbound: never readable */
    assert_int_equal(deliver(fx, 0, d, n), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prog_bounds),
        cmocka_unit_test_setup_teardown(test_cid_names_the_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_others_follow_the_source_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_closed_socket_moves_the_last_into_its_slot, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
