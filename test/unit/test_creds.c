/* Unit tests for lib/state/creds.c: PSK lookup by identity (hash map),
 * derived fleet keys, duplicates refused at load. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tether/creds.h"

static int load(const char *json, tether_creds_t **c, char *err, size_t cap)
{
    char path[] = "/tmp/tether-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    int rc = tether_creds_load(path, c, err, cap);
    unlink(path);
    return rc;
}

/* 20,000 explicit identities: every one is found with its own key and
 * role, lookalikes are not, and a derived prefix covers the rest. */
static void test_many_identities(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = (size_t)N * 120 + 512, n = 0;
    char *j = malloc(cap);
    n += (size_t)snprintf(j + n, cap - n, "{\"psk\": [");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(j + n, cap - n,
                              "%s{\"identity\": \"sensor-fleet-eu-west-%06d\", \"key_hex\": "
                              "\"%08x\", \"role\": \"%s\"}",
                              i ? "," : "", i, (unsigned)i, i % 2 ? "client" : "device");
    n += (size_t)snprintf(j + n, cap - n,
                          "], \"psk_derived\": [{\"identity_prefix\": \"sensor\", \"role\": "
                          "\"device\", \"master_hex\": \"00112233\"}]}");
    tether_creds_t *c;
    char err[256];
    assert_int_equal(load(j, &c, err, sizeof err), 0);
    free(j);
    assert_int_equal(tether_creds_count(c), N + 1);
    for (int i = 0; i < N; i += 997) {
        char id[64];
        uint8_t key[64];
        size_t kl;
        tether_role_t role;
        snprintf(id, sizeof id, "sensor-fleet-eu-west-%06d", i);
        assert_int_equal(tether_creds_psk(c, id, key, sizeof key, &kl, &role), 0);
        assert_int_equal(kl, 4);
        assert_int_equal(key[3], (uint8_t)i);
        assert_int_equal(key[2], (uint8_t)(i >> 8));
        assert_int_equal(role, i % 2 ? TETHER_ROLE_CLIENT : TETHER_ROLE_DEVICE);
    }
    uint8_t key[64];
    size_t kl;
    tether_role_t role;
    /* Not listed: the derived prefix answers with a 32-byte key. */
    assert_int_equal(
        tether_creds_psk(c, "sensor-fleet-eu-west-999999", key, sizeof key, &kl, &role), 0);
    assert_int_equal(kl, TETHER_DERIVED_PSK_LEN);
    assert_int_equal(tether_creds_psk(c, "actuator-1", key, sizeof key, &kl, &role),
                     TETHER_ENOTFOUND);
    tether_creds_free(c);
}

static void test_duplicate_identity_refused(void **state)
{
    (void)state;
    tether_creds_t *c = NULL;
    char err[256];
    assert_int_equal(load("{\"psk\": [{\"identity\": \"a\", \"key_hex\": \"01\", \"role\": "
                          "\"device\"}, {\"identity\": \"a\", \"key_hex\": \"02\", \"role\": "
                          "\"device\"}]}",
                          &c, err, sizeof err),
                     TETHER_ECONFIG);
    assert_non_null(strstr(err, "identity a appears twice"));
}

static void test_empty_set(void **state)
{
    (void)state;
    tether_creds_t *c;
    assert_int_equal(tether_creds_empty(&c), 0);
    uint8_t key[64];
    size_t kl;
    tether_role_t role;
    assert_int_equal(tether_creds_psk(c, "dev1", key, sizeof key, &kl, &role), TETHER_ENOTFOUND);
    tether_creds_free(c);
}

/* HTTP bearer tokens: "http_token" (hashed at load) and
 * "http_token_sha256" both name their client; other tokens, prefixes of
 * a token and tokens of a replaced entry do not. */
static void test_http_tokens(void **state)
{
    (void)state;
    tether_creds_t *c, *o;
    char err[256], id[TETHER_IDENTITY_MAX];
    /* sha256("second-token-0123456789") */
    assert_int_equal(
        load("{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"01\", \"role\": \"client\", "
             "\"http_token\": \"first-token-0123456789\"}, {\"identity\": \"app2\", "
             "\"key_hex\": \"02\", \"role\": \"client\", \"http_token_sha256\": "
             "\"27f11cd7cbbf36c6d1b8504ef9485ac46f813bc4472d57f1f1026e8103b45444\"}, "
             "{\"identity\": \"dev1\", \"key_hex\": \"03\", \"role\": \"device\"}]}",
             &c, err, sizeof err),
        0);
    const char *t1 = "first-token-0123456789";
    assert_int_equal(tether_creds_http_identity(c, t1, strlen(t1), id, sizeof id), 0);
    assert_string_equal(id, "app1");
    const char *t2 = "second-token-0123456789";
    assert_int_equal(tether_creds_http_identity(c, t2, strlen(t2), id, sizeof id), 0);
    assert_string_equal(id, "app2");
    assert_int_equal(tether_creds_http_identity(c, t1, strlen(t1) - 1, id, sizeof id),
                     TETHER_ENOTFOUND);
    assert_int_equal(tether_creds_http_identity(c, "", 0, id, sizeof id), TETHER_ENOTFOUND);
    /* a Redis entry for app1 keeps the file's token; one for a new identity has none */
    tether_creds_entry_t e[2] = {
        {.identity = "app1", .role = TETHER_ROLE_CLIENT, .key = (const uint8_t *)"k", .key_len = 1},
        {.identity = "app3", .role = TETHER_ROLE_CLIENT, .key = (const uint8_t *)"k", .key_len = 1},
    };
    assert_int_equal(tether_creds_overlay(c, e, 2, &o), 0);
    assert_int_equal(tether_creds_http_identity(o, t1, strlen(t1), id, sizeof id), 0);
    assert_string_equal(id, "app1");
    tether_creds_free(o);
    tether_creds_free(c);
    /* a device may not have one; a short token is refused */
    assert_int_equal(load("{\"psk\": [{\"identity\": \"d\", \"key_hex\": \"01\", \"role\": "
                          "\"device\", \"http_token\": \"0123456789abcdef\"}]}",
                          &c, err, sizeof err),
                     TETHER_ECONFIG);
    assert_non_null(strstr(err, "only clients"));
    assert_int_equal(load("{\"psk\": [{\"identity\": \"a\", \"key_hex\": \"01\", \"role\": "
                          "\"client\", \"http_token\": \"short\"}]}",
                          &c, err, sizeof err),
                     TETHER_ECONFIG);
}

/* "devices" rules grant devices, "groups" rules groups, never the other. */
static void test_group_rules(void **state)
{
    (void)state;
    tether_creds_t *c;
    char err[256];
    assert_int_equal(
        load("{\"psk\": [{\"identity\": \"app\", \"key_hex\": \"01\", \"role\": "
             "\"client\", \"allow\": [{\"devices\": \"dev*\", \"methods\": [\"GET\"]}, "
             "{\"groups\": \"floor*\", \"methods\": [\"GET\", \"PUT\"]}]}]}",
             &c, err, sizeof err),
        0);
    assert_true(tether_creds_allowed(c, "app", "dev1", 1));
    assert_false(tether_creds_allowed(c, "app", "floor1", 1));
    assert_true(tether_creds_allowed_group(c, "app", "floor1", 3));
    assert_false(tether_creds_allowed_group(c, "app", "dev1", 1));
    assert_false(tether_creds_allowed_group(c, "app", "floor1", 4));
    tether_creds_free(c);
    assert_int_equal(load("{\"psk\": [{\"identity\": \"app\", \"key_hex\": \"01\", \"role\": "
                          "\"client\", \"allow\": [{\"devices\": \"d\", \"groups\": \"g\"}]}]}",
                          &c, err, sizeof err),
                     TETHER_ECONFIG);
}

/* Key tags, made once at load now: the same for the file and for an
 * overlay carrying the same key, different for another key, and equal to
 * SHA-256(kind || key material) truncated, the value other nodes and older
 * checkpoints (lib/dtls/checkpoint.h) carry. */
static void test_key_tags(void **state)
{
    (void)state;
    char err[256];
    tether_creds_t *c, *o;
    assert_int_equal(load("{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"0102\", \"role\": "
                          "\"client\"}], \"psk_derived\": [{\"identity_prefix\": \"dev\", "
                          "\"master_hex\": \"aabb\", \"role\": \"device\"}]}",
                          &c, err, sizeof err),
                     0);
    uint64_t t1, t2, t3, t4;
    assert_int_equal(tether_creds_key_tag(c, "app1", &t1), 0);
    assert_int_equal(tether_creds_key_tag(c, "dev7", &t2), 0);
    assert_int_equal(tether_creds_key_tag(c, "dev8", &t3), 0);
    assert_int_equal(t2, t3); /* one master, one tag */
    assert_int_equal(tether_creds_key_tag(c, "nobody", &t4), TETHER_ENOTFOUND);
    /* SHA-256(01 01 02) and SHA-256(02 aa bb 'd' 'e' 'v'), first 8 bytes
     * (memcpy, as stored). */
    const uint8_t want1[8] = {0x5e, 0x98, 0xaa, 0xa8, 0x86, 0x03, 0x27, 0x24};
    const uint8_t want2[8] = {0x3f, 0xdd, 0x04, 0xf7, 0x26, 0xee, 0xac, 0x06};
    uint8_t b1[8], b2[8];
    memcpy(b1, &t1, 8);
    memcpy(b2, &t2, 8);
    assert_memory_equal(b1, want1, 8);
    assert_memory_equal(b2, want2, 8);
    const uint8_t same[] = {1, 2}, other[] = {1, 3};
    tether_creds_entry_t e = {
        .identity = "app1", .role = TETHER_ROLE_CLIENT, .key = same, .key_len = 2};
    assert_int_equal(tether_creds_overlay(c, &e, 1, &o), 0);
    assert_int_equal(tether_creds_key_tag(o, "app1", &t3), 0);
    assert_int_equal(t3, t1);
    assert_int_equal(tether_creds_key_tag(o, "dev9", &t3), 0); /* the base's derived entry */
    assert_int_equal(t3, t2);
    tether_creds_free(o);
    e.key = other;
    assert_int_equal(tether_creds_overlay(c, &e, 1, &o), 0);
    assert_int_equal(tether_creds_key_tag(o, "app1", &t3), 0);
    assert_true(t3 != t1);
    tether_creds_free(o);
    tether_creds_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_identities), cmocka_unit_test(test_duplicate_identity_refused),
        cmocka_unit_test(test_empty_set),       cmocka_unit_test(test_http_tokens),
        cmocka_unit_test(test_group_rules),     cmocka_unit_test(test_key_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
