/* Unit tests for lib/cluster/msg.c: the internal channel's messages round
 * trip for IPv4 and IPv6 clients; a wrong key, a flipped bit, a stale
 * timestamp and a message for another node are refused; the CID's node id
 * is read from DTLS 1.2 and 1.3 records; the MAC from a prepared key is
 * HMAC-SHA256 (RFC 2104) for keys shorter than, equal to and longer than
 * a SHA-256 block. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/cluster.h"

static const uint8_t key[] = "cluster-key-for-tests-0123456789";

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

static void test_round_trip(void **state)
{
    (void)state;
    tether_addr_t a6;
    memset(&a6, 0, sizeof a6);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a6.ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(61000);
    inet_pton(AF_INET6, "2001:db8::7", &s6->sin6_addr);
    a6.len = sizeof *s6;
    tether_addr_t clients[] = {v4("198.51.100.9", 40000), a6};
    for (int i = 0; i < 2; i++) {
        tether_cluster_msg_t m = {.type = TETHER_CLUSTER_FORWARD,
                                  .from_node = 1,
                                  .to_node = 3,
                                  .sent_at = 123456,
                                  .client = clients[i],
                                  .payload = (const uint8_t *)"\x19record",
                                  .payload_len = 7};
        uint8_t buf[128];
        int n = tether_cluster_encode(&m, key, sizeof key, buf, sizeof buf);
        assert_int_equal(n, TETHER_CLUSTER_OVERHEAD + 7);
        tether_cluster_msg_t d;
        assert_int_equal(tether_cluster_decode(buf, (size_t)n, key, sizeof key, 3, 123999, &d), 0);
        assert_int_equal(d.type, TETHER_CLUSTER_FORWARD);
        assert_int_equal(d.from_node, 1);
        assert_int_equal(d.to_node, 3);
        assert_true(tether_addr_equal(&d.client, &clients[i]));
        assert_int_equal(d.payload_len, 7);
        assert_memory_equal(d.payload, "\x19record", 7);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    tether_cluster_msg_t m = {.type = TETHER_CLUSTER_REPLY,
                              .from_node = 2,
                              .to_node = 1,
                              .sent_at = 1000000,
                              .client = v4("192.0.2.1", 5684),
                              .payload = (const uint8_t *)"reply",
                              .payload_len = 5};
    uint8_t buf[128], bad[128];
    int n = tether_cluster_encode(&m, key, sizeof key, buf, sizeof buf);
    assert_true(n > 0);
    tether_cluster_msg_t d;
    assert_int_equal(
        tether_cluster_decode(buf, (size_t)n, (const uint8_t *)"other", 5, 1, 1000000, &d),
        TETHER_ECRYPTO);
    for (int i = 0; i < n; i++) { /* any flipped bit is refused */
        memcpy(bad, buf, (size_t)n);
        bad[i] ^= 0x01;
        assert_true(tether_cluster_decode(bad, (size_t)n, key, sizeof key, 1, 1000000, &d) < 0);
    }
    assert_int_equal(tether_cluster_decode(buf, (size_t)n, key, sizeof key, 1,
                                           1000000 + TETHER_CLUSTER_MAX_SKEW_MS + 1, &d),
                     TETHER_ETIMEDOUT);
    assert_int_equal(tether_cluster_decode(buf, (size_t)n, key, sizeof key, 1,
                                           1000000 - TETHER_CLUSTER_MAX_SKEW_MS - 1, &d),
                     TETHER_ETIMEDOUT);
    assert_int_equal(tether_cluster_decode(buf, (size_t)n, key, sizeof key, 2, 1000000, &d),
                     TETHER_ENOTFOUND);
    assert_int_equal(tether_cluster_decode(buf, (size_t)n - 1, key, sizeof key, 1, 1000000, &d),
                     TETHER_ECRYPTO);
    assert_int_equal(tether_cluster_decode(buf, 10, key, sizeof key, 1, 1000000, &d),
                     TETHER_EPROTO);
    assert_int_equal(tether_cluster_encode(&m, key, sizeof key, buf, 20), TETHER_ENOSPC);
    m.type = 9;
    assert_int_equal(tether_cluster_encode(&m, key, sizeof key, buf, sizeof buf), TETHER_EINVAL);
}

static void test_cid_node(void **state)
{
    (void)state;
    uint8_t r12[32] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, /* CID */ 4, 1, 2, 3};
    assert_int_equal(tether_cluster_cid_node(r12, sizeof r12), 4);
    uint8_t r13[8] = {0x3c, 9, 1, 2, 3};
    assert_int_equal(tether_cluster_cid_node(r13, sizeof r13), 9);
    uint8_t plain[16] = {23, 0xfe, 0xfd};
    assert_int_equal(tether_cluster_cid_node(plain, sizeof plain), -1);
    uint8_t hs[16] = {22, 0xfe, 0xfd};
    assert_int_equal(tether_cluster_cid_node(hs, sizeof hs), -1);
    uint8_t no_cid13[8] = {0x2c, 9};
    assert_int_equal(tether_cluster_cid_node(no_cid13, sizeof no_cid13), -1);
}

/* The prepared key's pads (msg.c) give the HMAC wolfSSL's own computes,
 * and the keyed calls agree byte for byte with the key-bytes ones. */
static void test_mac_is_hmac(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 5, 32, 63, 64, 65, 131};
    uint8_t k[131];
    for (size_t i = 0; i < sizeof k; i++)
        k[i] = (uint8_t)(i * 7 + 1);
    uint8_t payload[300];
    memset(payload, 0xa5, sizeof payload);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        tether_cluster_msg_t m = {.type = TETHER_CLUSTER_REPLY,
                                  .from_node = 2,
                                  .to_node = 1,
                                  .counter = 42,
                                  .sent_at = 5000,
                                  .client = v4("192.0.2.1", 5684),
                                  .payload = payload,
                                  .payload_len = 17 * i + 3};
        uint8_t a[400], b[400], full[WC_SHA256_DIGEST_SIZE];
        tether_cluster_key_t *pk;
        assert_int_equal(tether_cluster_key_new(k, lens[i], &pk), 0);
        int n = tether_cluster_encode_k(&m, pk, a, sizeof a);
        assert_true(n > TETHER_CLUSTER_MAC);
        assert_int_equal(tether_cluster_encode(&m, k, lens[i], b, sizeof b), n);
        assert_memory_equal(a, b, (size_t)n);
        Hmac h;
        assert_int_equal(wc_HmacInit(&h, NULL, INVALID_DEVID), 0);
        assert_int_equal(wc_HmacSetKey(&h, WC_SHA256, k, (word32)lens[i]), 0);
        assert_int_equal(wc_HmacUpdate(&h, a, (word32)(n - TETHER_CLUSTER_MAC)), 0);
        assert_int_equal(wc_HmacFinal(&h, full), 0);
        wc_HmacFree(&h);
        assert_memory_equal(a + n - TETHER_CLUSTER_MAC, full, TETHER_CLUSTER_MAC);
        tether_cluster_msg_t d;
        assert_int_equal(tether_cluster_decode_k(a, (size_t)n, pk, 1, 5000, &d), 0);
        a[10] ^= 1;
        assert_int_equal(tether_cluster_decode_k(a, (size_t)n, pk, 1, 5000, &d), TETHER_ECRYPTO);
        tether_cluster_key_free(pk);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cid_node),
        cmocka_unit_test(test_mac_is_hmac),
    };
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
