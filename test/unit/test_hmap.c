/* The chained hash map (lib/util/hmap.c): every key inserted is found
 * across growth, a second insert of a key is refused, removal unlinks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tether/common.h"
#include "tether/hmap.h"

#define N 5000

static tether_hnode_t nodes[N], dup;

static size_t key_of(int i, char *k)
{
    return (size_t)snprintf(k, TETHER_HKEY_MAX, "key-%d", i);
}

static void test_insert_find_grow_remove(void **state)
{
    (void)state;
    tether_hmap_t m;
    char k[TETHER_HKEY_MAX];
    assert_int_equal(tether_hmap_init(&m, 4, 0x1234), 0);
    for (int i = 0; i < N; i++) {
        size_t kl = key_of(i, k);
        assert_int_equal(tether_hmap_insert(&m, &nodes[i], k, kl), 0);
        /* the same key again, while the table is about to grow or not */
        assert_int_equal(tether_hmap_insert(&m, &dup, k, kl), TETHER_EEXIST);
    }
    assert_int_equal(m.count, N);
    assert_true(m.nbuckets * 2 >= N); /* grown: at most 2 entries per bucket (hmap.c) */
    for (int i = 0; i < N; i++) {
        size_t kl = key_of(i, k);
        assert_ptr_equal(tether_hmap_find(&m, k, kl), &nodes[i]);
    }
    assert_null(tether_hmap_find(&m, "key-x", 5));
    for (int i = 0; i < N; i += 2)
        tether_hmap_remove(&m, &nodes[i]);
    for (int i = 0; i < N; i++) {
        size_t kl = key_of(i, k);
        assert_ptr_equal(tether_hmap_find(&m, k, kl), i % 2 ? &nodes[i] : NULL);
    }
    size_t kl = key_of(0, k);
    assert_int_equal(tether_hmap_insert(&m, &nodes[0], k, kl), 0);
    assert_ptr_equal(tether_hmap_find(&m, k, kl), &nodes[0]);
    char big[TETHER_HKEY_MAX + 1] = {0};
    assert_int_equal(tether_hmap_insert(&m, &dup, big, sizeof big), TETHER_EINVAL);
    tether_hmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_grow_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
