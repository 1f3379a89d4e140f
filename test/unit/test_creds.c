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
    assert_int_equal(tether_creds_psk(c, "sensor-fleet-eu-west-999999", key, sizeof key, &kl, &role), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_identities),
        cmocka_unit_test(test_duplicate_identity_refused),
        cmocka_unit_test(test_empty_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
