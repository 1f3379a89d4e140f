/* libFuzzer target for lib/coap/linkformat.c.
 *
 * Parses arbitrary bytes; a document that parses must serialise and parse
 * again to the same links. Since attribute values keep their wire form,
 * the serialised text must also equal the input byte for byte. Any
 * mismatch traps. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tether/linkformat.h"

#define FUZZ_MAX_LINKS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tether_lf_link_t links_a[FUZZ_MAX_LINKS];
static tether_lf_link_t links_b[FUZZ_MAX_LINKS];

static bool spans_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool same_link(const tether_lf_link_t *a, const tether_lf_link_t *b)
{
    if (!spans_equal(a->target, a->target_len, b->target, b->target_len) ||
        a->nattrs != b->nattrs) {
        return false;
    }
    for (size_t k = 0; k < a->nattrs; k++) {
        const tether_lf_attr_t *x = &a->attrs[k];
        const tether_lf_attr_t *y = &b->attrs[k];
        if (!spans_equal(x->name, x->name_len, y->name, y->name_len) ||
            (x->val == NULL) != (y->val == NULL) || x->quoted != y->quoted) {
            return false;
        }
        if (x->val != NULL && !spans_equal(x->val, x->val_len, y->val, y->val_len)) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[65536];
    const char *doc = (const char *)data;
    size_t n = 0;
    size_t err_off = 0;

    int rc = tether_lf_parse(doc, size, links_a, FUZZ_MAX_LINKS, &n, &err_off);
    if (rc == TETHER_EPROTO && err_off > size) {
        __builtin_trap();
    }
    if (rc != TETHER_OK) {
        return 0;
    }

    /* exercise the accessors on every attribute */
    char val[256];
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < links_a[i].nattrs; k++) {
            size_t vlen = 0;
            int urc = tether_lf_unquote(&links_a[i].attrs[k], val, sizeof(val), &vlen);
            if (urc == TETHER_OK && (vlen > links_a[i].attrs[k].val_len || vlen > sizeof(val))) {
                __builtin_trap();
            }
        }
        (void)tether_lf_find_attr(&links_a[i], "rt");
    }

    size_t out_len = 0;
    rc = tether_lf_serialize(links_a, n, out, sizeof(out), &out_len);
    if (rc == TETHER_ENOSPC) {
        return 0;
    }
    if (rc != TETHER_OK || out_len != size || memcmp(out, doc, size) != 0) {
        __builtin_trap();
    }

    size_t n2 = 0;
    rc = tether_lf_parse(out, out_len, links_b, FUZZ_MAX_LINKS, &n2, NULL);
    if (rc != TETHER_OK || n2 != n) {
        __builtin_trap();
    }
    for (size_t i = 0; i < n; i++) {
        if (!same_link(&links_a[i], &links_b[i])) {
            __builtin_trap();
        }
    }
    return 0;
}
