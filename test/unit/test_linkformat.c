/* Unit tests for lib/coap/linkformat.c (RFC 6690 CoRE Link Format). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "tether/linkformat.h"

#define MAX_LINKS 16

static tether_lf_link_t g_links[MAX_LINKS];
static tether_lf_link_t g_links2[MAX_LINKS];

/* Parse a NUL-terminated document, asserting success; returns the count. */
static size_t parse_ok(const char *doc, tether_lf_link_t *links)
{
    size_t n = 99;
    size_t off = 0;
    int rc = tether_lf_parse(doc, strlen(doc), links, MAX_LINKS, &n, &off);
    if (rc != TETHER_OK) {
        print_error("parse of '%s' failed: rc %d at %zu\n", doc, rc, off);
    }
    assert_int_equal(rc, TETHER_OK);
    return n;
}

/* Parse a document expected to be malformed; returns the error offset. */
static size_t parse_bad(const char *doc)
{
    size_t n = 0;
    size_t off = 12345;
    int rc = tether_lf_parse(doc, strlen(doc), g_links, MAX_LINKS, &n, &off);
    if (rc != TETHER_EPROTO) {
        print_error("parse of '%s' gave rc %d, expected EPROTO\n", doc, rc);
    }
    assert_int_equal(rc, TETHER_EPROTO);
    return off;
}

static void assert_span(const char *p, size_t len, const char *want)
{
    assert_non_null(p);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

static void assert_target(const tether_lf_link_t *l, const char *want)
{
    assert_span(l->target, l->target_len, want);
}

/* Attribute `name` on `l` has the raw value `want` (NULL: no value). */
static void assert_attr(const tether_lf_link_t *l, const char *name, const char *want, bool quoted)
{
    const tether_lf_attr_t *a = tether_lf_find_attr(l, name);
    assert_non_null(a);
    if (want == NULL) {
        assert_null(a->val);
        return;
    }
    assert_span(a->val, a->val_len, want);
    assert_int_equal(a->quoted, quoted);
}

static bool same_links(const tether_lf_link_t *a, const tether_lf_link_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].target_len != b[i].target_len ||
            memcmp(a[i].target, b[i].target, a[i].target_len) != 0 || a[i].nattrs != b[i].nattrs) {
            return false;
        }
        for (size_t k = 0; k < a[i].nattrs; k++) {
            const tether_lf_attr_t *x = &a[i].attrs[k];
            const tether_lf_attr_t *y = &b[i].attrs[k];
            if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) != 0 ||
                (x->val == NULL) != (y->val == NULL) || x->quoted != y->quoted ||
                x->val_len != y->val_len ||
                (x->val != NULL && memcmp(x->val, y->val, x->val_len) != 0)) {
                return false;
            }
        }
    }
    return true;
}

/* parse -> serialise -> parse yields the same links (and the same text). */
static void assert_round_trip(const char *doc)
{
    char out[1024];
    size_t n = parse_ok(doc, g_links);
    size_t len = 0;
    assert_int_equal(tether_lf_serialize(g_links, n, out, sizeof(out), &len), TETHER_OK);
    assert_int_equal(len, strlen(out));
    size_t n2 = parse_ok(out, g_links2);
    assert_int_equal(n2, n);
    assert_true(same_links(g_links, g_links2, n));
    assert_string_equal(out, doc);
}

/* ---- parsing ------------------------------------------------------------ */

static void test_brief_example(void **state)
{
    (void)state;
    const char *doc =
        "</sensors/temp>;rt=\"temperature-c\";if=\"sensor\";obs,</big>;sz=4096,</echo>";
    size_t n = parse_ok(doc, g_links);
    assert_int_equal(n, 3);
    assert_target(&g_links[0], "/sensors/temp");
    assert_int_equal(g_links[0].nattrs, 3);
    assert_attr(&g_links[0], "rt", "temperature-c", true);
    assert_attr(&g_links[0], "if", "sensor", true);
    assert_attr(&g_links[0], "obs", NULL, false);
    assert_target(&g_links[1], "/big");
    assert_attr(&g_links[1], "sz", "4096", false);
    assert_target(&g_links[2], "/echo");
    assert_int_equal(g_links[2].nattrs, 0);
}

/* RFC 6690 §5 (line breaks of the RFC's display removed). */
static void test_rfc6690_well_known(void **state)
{
    (void)state;
    const char *doc = "</sensors>;ct=40;title=\"Sensor Index\","
                      "</sensors/temp>;rt=\"temperature-c\";if=\"sensor\","
                      "</sensors/light>;rt=\"light-lux\";if=\"sensor\","
                      "<http://www.example.com/sensors/t123>;anchor=\"/sensors/temp\""
                      ";rel=\"describedby\","
                      "</t>;anchor=\"/sensors/temp\";rel=\"alternate\"";
    size_t n = parse_ok(doc, g_links);
    assert_int_equal(n, 5);
    assert_target(&g_links[0], "/sensors");
    assert_attr(&g_links[0], "ct", "40", false);
    assert_attr(&g_links[0], "title", "Sensor Index", true);
    assert_target(&g_links[1], "/sensors/temp");
    assert_attr(&g_links[1], "rt", "temperature-c", true);
    assert_target(&g_links[2], "/sensors/light");
    assert_attr(&g_links[2], "rt", "light-lux", true);
    assert_target(&g_links[3], "http://www.example.com/sensors/t123");
    assert_attr(&g_links[3], "anchor", "/sensors/temp", true);
    assert_attr(&g_links[3], "rel", "describedby", true);
    assert_target(&g_links[4], "/t");
    assert_attr(&g_links[4], "rel", "alternate", true);
    assert_round_trip(doc);
}

static void test_rfc6690_small_examples(void **state)
{
    (void)state;
    size_t n = parse_ok("</sensors/temp>;if=\"sensor\",</sensors/light>;if=\"sensor\"", g_links);
    assert_int_equal(n, 2);
    assert_attr(&g_links[1], "if", "sensor", true);

    n = parse_ok("</sensors/light>;rt=\"light-lux\";if=\"sensor\"", g_links);
    assert_int_equal(n, 1);
    assert_int_equal(g_links[0].nattrs, 2);

    n = parse_ok("</sensors>;ct=40", g_links);
    assert_int_equal(n, 1);
    assert_attr(&g_links[0], "ct", "40", false);
}

static void test_empty_document(void **state)
{
    (void)state;
    size_t n = 7;
    assert_int_equal(tether_lf_parse("", 0, g_links, MAX_LINKS, &n, NULL), TETHER_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tether_lf_parse(NULL, 0, NULL, 0, &n, NULL), TETHER_OK);
    assert_int_equal(n, 0);
}

static void test_empty_target_and_value_forms(void **state)
{
    (void)state;
    size_t n = parse_ok("<>;a;b=1;c=\"\";d=\"x y\";title*=utf-8'en'%C2%A3", g_links);
    assert_int_equal(n, 1);
    assert_int_equal(g_links[0].target_len, 0);
    assert_int_equal(g_links[0].nattrs, 5);
    assert_attr(&g_links[0], "a", NULL, false);
    assert_attr(&g_links[0], "b", "1", false);
    assert_attr(&g_links[0], "c", "", true);
    assert_attr(&g_links[0], "d", "x y", true);
    assert_attr(&g_links[0], "title*", "utf-8'en'%C2%A3", false);
}

static void test_repeated_attributes(void **state)
{
    (void)state;
    size_t n = parse_ok("</x>;rel=a;rel=b;rt=\"one two\"", g_links);
    assert_int_equal(n, 1);
    assert_int_equal(g_links[0].nattrs, 3);
    /* find returns the first match */
    assert_attr(&g_links[0], "rel", "a", false);
    assert_span(g_links[0].attrs[1].val, g_links[0].attrs[1].val_len, "b");
    assert_attr(&g_links[0], "rt", "one two", true);
}

static void test_ptoken_chars(void **state)
{
    (void)state;
    /* every ptokenchar class, including '<', '=', '>' and '?' */
    size_t n = parse_ok("</p>;v=!#$%&'()*+-./09:<=>?@AZ[]^_`az{|}~", g_links);
    assert_int_equal(n, 1);
    assert_attr(&g_links[0], "v", "!#$%&'()*+-./09:<=>?@AZ[]^_`az{|}~", false);
}

static void test_find_attr(void **state)
{
    (void)state;
    parse_ok("</a>;rt=x;If=y", g_links);
    assert_non_null(tether_lf_find_attr(&g_links[0], "rt"));
    assert_non_null(tether_lf_find_attr(&g_links[0], "RT"));
    assert_non_null(tether_lf_find_attr(&g_links[0], "if"));
    assert_null(tether_lf_find_attr(&g_links[0], "r"));
    assert_null(tether_lf_find_attr(&g_links[0], "rtx"));
    assert_null(tether_lf_find_attr(&g_links[0], "ct"));
    assert_null(tether_lf_find_attr(NULL, "rt"));
    assert_null(tether_lf_find_attr(&g_links[0], NULL));
}

static void test_unquote(void **state)
{
    (void)state;
    char out[32];
    size_t len = 0;
    parse_ok("</a>;title=\"say \\\"hi\\\" \\\\ ok\";b=plain;c", g_links);
    const tether_lf_attr_t *t = tether_lf_find_attr(&g_links[0], "title");
    assert_non_null(t);
    assert_int_equal(tether_lf_unquote(t, out, sizeof(out), &len), TETHER_OK);
    assert_int_equal(len, strlen("say \"hi\" \\ ok"));
    assert_string_equal(out, "say \"hi\" \\ ok");

    assert_int_equal(
        tether_lf_unquote(tether_lf_find_attr(&g_links[0], "b"), out, sizeof(out), &len),
        TETHER_OK);
    assert_string_equal(out, "plain");
    assert_int_equal(len, 5);

    assert_int_equal(
        tether_lf_unquote(tether_lf_find_attr(&g_links[0], "c"), out, sizeof(out), &len),
        TETHER_OK);
    assert_int_equal(len, 0);

    /* exact fit without the NUL, then one byte short */
    assert_int_equal(tether_lf_unquote(t, out, 13, &len), TETHER_OK);
    assert_int_equal(len, 13);
    assert_int_equal(tether_lf_unquote(t, out, 12, &len), TETHER_ENOSPC);
}

/* ---- malformed input ---------------------------------------------------- */

static void test_unterminated_target(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</sensors"), 0);
    assert_int_equal(parse_bad("</a>,</b"), 5);
}

static void test_unterminated_quote(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</a>;rt=\"temp"), 8);
    assert_int_equal(parse_bad("</a>;rt=\"temp\\\""), 8);
    assert_int_equal(parse_bad("</a>;rt=\"x\\"), 8);
}

static void test_junk_between_links(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</a>x,</b>"), 4);
    assert_int_equal(parse_bad("</a>,x</b>"), 5);
    assert_int_equal(parse_bad("</a></b>"), 4);
    assert_int_equal(parse_bad("</a>;rt=\"x\"y"), 11);
    assert_int_equal(parse_bad("</a>,"), 5);
    assert_int_equal(parse_bad(",</a>"), 0);
    assert_int_equal(parse_bad("</a>,,</b>"), 5);
    assert_int_equal(parse_bad("junk"), 0);
}

static void test_bad_attributes(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</a>;"), 5);
    assert_int_equal(parse_bad("</a>;=x"), 5);
    assert_int_equal(parse_bad("</a>;;b"), 5);
    assert_int_equal(parse_bad("</a>;b="), 7);
    assert_int_equal(parse_bad("</a>;b=,</c>"), 7);
    assert_int_equal(parse_bad("</a>;b\"=1"), 6);
    assert_int_equal(parse_bad("</a>;b=\\x"), 7);
    assert_int_equal(parse_bad("</a>;t=\"a\x01\""), 9);
}

static void test_whitespace_rejected(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</a>, </b>"), 5);
    assert_int_equal(parse_bad("</a>,\n</b>"), 5);
    assert_int_equal(parse_bad("</a> ;b"), 4);
    assert_int_equal(parse_bad("</a>;b =1"), 6);
    assert_int_equal(parse_bad("</a b>"), 3);
    assert_int_equal(parse_bad(" </a>"), 0);
    assert_int_equal(parse_bad("</a>;b=1 "), 8);
}

static void test_bad_target_chars(void **state)
{
    (void)state;
    assert_int_equal(parse_bad("</a\"b>"), 3);
    assert_int_equal(parse_bad("<<a>"), 1);
    assert_int_equal(parse_bad("</a\x7f>"), 3);
}

static void test_limits(void **state)
{
    (void)state;
    size_t n = 0;
    const char *three = "</a>,</b>,</c>";
    assert_int_equal(tether_lf_parse(three, strlen(three), g_links, 2, &n, NULL), TETHER_ENOSPC);
    assert_int_equal(n, 2);
    assert_int_equal(tether_lf_parse(three, strlen(three), g_links, 3, &n, NULL), TETHER_OK);
    assert_int_equal(n, 3);

    char doc[128] = "</a>";
    for (int i = 0; i < TETHER_LF_MAX_ATTRS; i++) {
        strcat(doc, ";x");
    }
    assert_int_equal(parse_ok(doc, g_links), 1);
    assert_int_equal(g_links[0].nattrs, TETHER_LF_MAX_ATTRS);
    strcat(doc, ";y");
    assert_int_equal(tether_lf_parse(doc, strlen(doc), g_links, MAX_LINKS, &n, NULL),
                     TETHER_ENOSPC);

    assert_int_equal(tether_lf_parse("</a>", 4, g_links, MAX_LINKS, NULL, NULL), TETHER_EINVAL);
    assert_int_equal(tether_lf_parse(NULL, 4, g_links, MAX_LINKS, &n, NULL), TETHER_EINVAL);
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    /* the length bounds the parse: the byte after it is never read */
    const char doc[] = { '<', '/', 'a', '>', ';', 'b', '=', '1', ',' };
    size_t n = 0;
    assert_int_equal(tether_lf_parse(doc, 8, g_links, MAX_LINKS, &n, NULL), TETHER_OK);
    assert_int_equal(n, 1);
    assert_attr(&g_links[0], "b", "1", false);
}

/* ---- serialising -------------------------------------------------------- */

static void test_round_trips(void **state)
{
    (void)state;
    assert_round_trip("</sensors/temp>;rt=\"temperature-c\";if=\"sensor\";obs,</big>;sz=4096,"
                      "</echo>");
    assert_round_trip("<>");
    assert_round_trip("</a>;t=\"q\\\"uo\\\\te\";e=\"\";f;g=1,</b>,</c>;rel=x;rel=y");
    assert_round_trip("<coap://[2001:db8::1]:5683/x?y=1#z>;anchor=\"/\"");
    assert_round_trip("</u>;title=\"caf\xc3\xa9\"");
}

static void test_serialize_quotes_when_needed(void **state)
{
    (void)state;
    char out[128];
    size_t len = 0;
    tether_lf_link_t l = { .target = "/x", .target_len = 2, .nattrs = 4 };
    l.attrs[0] = (tether_lf_attr_t){ .name = "rt", .name_len = 2, .val = "a b", .val_len = 3 };
    l.attrs[1] =
        (tether_lf_attr_t){ .name = "t", .name_len = 1, .val = "say \"x\\y\"", .val_len = 9 };
    l.attrs[2] = (tether_lf_attr_t){ .name = "ct", .name_len = 2, .val = "40", .val_len = 2 };
    l.attrs[3] = (tether_lf_attr_t){ .name = "e", .name_len = 1, .val = "", .val_len = 0 };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_OK);
    assert_string_equal(out, "</x>;rt=\"a b\";t=\"say \\\"x\\\\y\\\"\";ct=40;e=\"\"");
    assert_int_equal(len, strlen(out));

    /* the unquoted form of the escaped value is the original text */
    assert_int_equal(parse_ok(out, g_links), 1);
    char raw[32];
    size_t rlen = 0;
    assert_int_equal(tether_lf_unquote(&g_links[0].attrs[1], raw, sizeof(raw), &rlen), TETHER_OK);
    assert_string_equal(raw, "say \"x\\y\"");

    /* `quoted` forces quotes around a ptoken */
    tether_lf_link_t q = { .target = "/q", .target_len = 2, .nattrs = 1 };
    q.attrs[0] = (tether_lf_attr_t){
        .name = "if", .name_len = 2, .val = "sensor", .val_len = 6, .quoted = true
    };
    assert_int_equal(tether_lf_serialize(&q, 1, out, sizeof(out), &len), TETHER_OK);
    assert_string_equal(out, "</q>;if=\"sensor\"");
}

static void test_serialize_errors(void **state)
{
    (void)state;
    char out[64];
    size_t len = 0;
    tether_lf_link_t l = { .target = "/a>", .target_len = 3, .nattrs = 0 };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);

    l = (tether_lf_link_t){ .target = "/a", .target_len = 2, .nattrs = 1 };
    l.attrs[0] = (tether_lf_attr_t){ .name = "", .name_len = 0 };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);
    l.attrs[0] = (tether_lf_attr_t){ .name = "a b", .name_len = 3 };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);
    /* quoted content with a bare quote or a dangling backslash */
    l.attrs[0] = (tether_lf_attr_t){
        .name = "t", .name_len = 1, .val = "a\"b", .val_len = 3, .quoted = true
    };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);
    l.attrs[0].val = "ab\\";
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);
    /* control characters cannot be carried at all */
    l.attrs[0] = (tether_lf_attr_t){ .name = "t", .name_len = 1, .val = "a\nb", .val_len = 3 };
    assert_int_equal(tether_lf_serialize(&l, 1, out, sizeof(out), &len), TETHER_EINVAL);
}

static void test_serialize_space(void **state)
{
    (void)state;
    char out[32];
    size_t len = 0;
    size_t n = parse_ok("</a>;b=1,</c>", g_links);
    /* 13 bytes: exact fit (no NUL), then one short (size reported) */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(tether_lf_serialize(g_links, n, out, 13, &len), TETHER_OK);
    assert_int_equal(len, 13);
    assert_memory_equal(out, "</a>;b=1,</c>", 13);
    assert_int_equal(out[13], 'Z');
    assert_int_equal(tether_lf_serialize(g_links, n, out, 12, &len), TETHER_ENOSPC);
    assert_int_equal(len, 13);
    assert_int_equal(tether_lf_serialize(g_links, n, NULL, 0, &len), TETHER_ENOSPC);
    assert_int_equal(len, 13);

    assert_int_equal(tether_lf_serialize(NULL, 0, out, sizeof(out), &len), TETHER_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brief_example),
        cmocka_unit_test(test_rfc6690_well_known),
        cmocka_unit_test(test_rfc6690_small_examples),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_empty_target_and_value_forms),
        cmocka_unit_test(test_repeated_attributes),
        cmocka_unit_test(test_ptoken_chars),
        cmocka_unit_test(test_find_attr),
        cmocka_unit_test(test_unquote),
        cmocka_unit_test(test_unterminated_target),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_junk_between_links),
        cmocka_unit_test(test_bad_attributes),
        cmocka_unit_test(test_whitespace_rejected),
        cmocka_unit_test(test_bad_target_chars),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_serialize_quotes_when_needed),
        cmocka_unit_test(test_serialize_errors),
        cmocka_unit_test(test_serialize_space),
    };
    return cmocka_run_group_tests_name("linkformat", tests, NULL, NULL);
}
