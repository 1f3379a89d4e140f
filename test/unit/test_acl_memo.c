/* The memo of ACL decisions (lib/proxy/acl_memo.h) answers exactly what
 * tether_creds_allowed answers, for more pairs than it has slots, and
 * forgets everything when cleared (a credentials reload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "creds_fixture.h"
#include "proxy/acl_memo.h"

static const char *ACL_A =
    "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"00112233\", \"role\": \"client\","
    " \"allow\": [{\"devices\": \"dev1*\", \"methods\": [\"GET\"]},"
    "             {\"devices\": \"dev2*\", \"methods\": [\"GET\", \"POST\"]}]},"
    " {\"identity\": \"app2\", \"key_hex\": \"44556677\", \"role\": \"client\","
    " \"allow\": [{\"devices\": \"*\", \"methods\": [\"PUT\"]}]}]}";
static const char *ACL_B =
    "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"00112233\", \"role\": \"client\","
    " \"allow\": [{\"devices\": \"dev3*\", \"methods\": [\"GET\"]}]}]}";

static tether_acl_memo_t memo;

/* Every (identity, device, method) of a set, asked twice in two orders so
 * that pairs evict each other from the sets: always the direct answer. */
static void same_as_creds(const tether_creds_t *c)
{
    const char *ids[] = {"app1", "app2", "dev5", "nobody"};
    char dev[32];
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 4 * 600; k++) {
            int i = round ? 4 * 600 - 1 - k : k;
            snprintf(dev, sizeof dev, "dev%d", i / 4);
            for (uint8_t m = 0; m <= 8; m++)
                assert_int_equal(tether_acl_memo_allowed(&memo, c, ids[i % 4], dev, m),
                                 tether_creds_allowed(c, ids[i % 4], dev, m));
        }
}

static void test_matches_creds(void **state)
{
    (void)state;
    tether_creds_t *a = creds_from_json(ACL_A);
    tether_acl_memo_init(&memo, 42);
    same_as_creds(a);
    assert_true(tether_acl_memo_allowed(&memo, a, "app1", "dev10", 1));
    assert_false(tether_acl_memo_allowed(&memo, a, "app1", "dev10", 2)); /* POST */
    assert_true(tether_acl_memo_allowed(&memo, a, "app1", "dev20", 2));
    tether_creds_free(a);
}

static void test_clear_forgets(void **state)
{
    (void)state;
    tether_creds_t *a = creds_from_json(ACL_A), *b = creds_from_json(ACL_B);
    tether_acl_memo_init(&memo, 7);
    assert_true(tether_acl_memo_allowed(&memo, a, "app1", "dev10", 1));
    assert_false(tether_acl_memo_allowed(&memo, a, "app1", "dev30", 1));
    tether_acl_memo_clear(&memo);
    assert_false(tether_acl_memo_allowed(&memo, b, "app1", "dev10", 1));
    assert_true(tether_acl_memo_allowed(&memo, b, "app1", "dev30", 1));
    same_as_creds(b);
    tether_creds_free(a);
    tether_creds_free(b);
}

/* Names too long to keep are answered, never memoised under a prefix. */
static void test_long_names(void **state)
{
    (void)state;
    tether_creds_t *a = creds_from_json(ACL_A);
    tether_acl_memo_init(&memo, 9);
    char longdev[TETHER_IDENTITY_MAX + 10];
    memset(longdev, 'x', sizeof longdev - 1);
    memcpy(longdev, "dev1", 4);
    longdev[sizeof longdev - 1] = 0;
    assert_true(tether_acl_memo_allowed(&memo, a, "app1", longdev, 1));
    longdev[1] = 'X';
    assert_false(tether_acl_memo_allowed(&memo, a, "app1", longdev, 1));
    tether_creds_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_creds),
        cmocka_unit_test(test_clear_forgets),
        cmocka_unit_test(test_long_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
