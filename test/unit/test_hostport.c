/* Unit tests for lib/util/hostport.c: HOST:PORT splitting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "tether/common.h"
#include "tether/hostport.h"

static void test_accepts(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(tether_hostport_split("127.0.0.1:5684", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5684);
    assert_int_equal(tether_hostport_split("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(tether_hostport_split("localhost:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
}

static void test_rejects(void **state)
{
    (void)state;
    char host[8];
    uint16_t port;
    const char *bad[] = {"nohost", ":5683",     "h:",        "h:65536", "h:-1",         "h:+1",
                         "h:12x",  "[::1]5683", "[::1:5683", "[]:1",    "toolonghost:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tether_hostport_split(bad[i], host, sizeof host, &port), TETHER_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests_name("hostport", tests, NULL, NULL);
}
