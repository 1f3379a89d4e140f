/* Unit tests for lib/util/vec.c: growable arrays. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "util/vec.h"

/* Growth doubles from `first`, keeps the elements, and stops at `max`:
 * an outbox with a bound drops what does not fit, the array stays usable. */
static void test_grows_to_the_bound_and_keeps_elements(void **state)
{
    (void)state;
    int *v = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++) {
        int *g = tether_vec_grow(v, &cap, n + 1, sizeof *v, 8, 100);
        assert_non_null(g);
        v = g;
        v[n++] = i;
        assert_true(cap >= n && cap <= 100);
    }
    assert_int_equal(cap, 100); /* 8 16 32 64, then clamped to the bound */
    assert_null(tether_vec_grow(v, &cap, n + 1, sizeof *v, 8, 100));
    assert_int_equal(cap, 100); /* unchanged by the refusal */
    for (int i = 0; i < 100; i++)
        assert_int_equal(v[i], i);
    assert_ptr_equal(tether_vec_grow(v, &cap, 50, sizeof *v, 8, 100), v); /* room already */
    free(v);
}

/* A size whose bytes overflow size_t is refused, never a short buffer. */
static void test_overflow_is_refused(void **state)
{
    (void)state;
    size_t cap = 0;
    assert_null(tether_vec_grow(NULL, &cap, SIZE_MAX / 8 + 2, 16, 1, SIZE_MAX));
    assert_int_equal(cap, 0);
    assert_null(tether_vec_grow(NULL, &cap, 1, 0, 1, 8)); /* no element size */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_to_the_bound_and_keeps_elements),
        cmocka_unit_test(test_overflow_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
