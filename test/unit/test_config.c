/* Unit tests for server/config: the key table is consistent (fields,
 * widths, ranges, defaults), the embedded defaults are the library's where
 * the table says so, keys reach the library configuration with their
 * units, and file < env < flag. The file's error messages and the README
 * are covered by test_config.sh and test_config_doc.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/config.h"

static tetherd_config_t cfg;

/* Loads argv (NULL-terminated) with no TETHER_* variable but `env`. */
static int load(const char *env, const char **args)
{
    static const char *vars[] = {"TETHER_NODE_ID",          "TETHER_REDIS_URL",
                                 "TETHER_ADMIN_TOKEN",      "TETHER_CLUSTER_KEY",
                                 "TETHER_LOG_LEVEL",        "TETHER_CLUSTER_LISTEN",
                                 "TETHER_CLUSTER_ADVERTISE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    if (env)
        putenv((char *)env);
    char *argv[16] = {"tetherd"};
    int argc = 1;
    while (args && args[argc - 1])
        argv[argc] = (char *)args[argc - 1], argc++;
    char err[512] = "";
    int rc = tetherd_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc < 0)
        print_message("config error: %s\n", err);
    return rc;
}

/* Writes a config file and returns its path. */
static const char *write_file(const char *json)
{
    static char path[] = "/tmp/test_config.XXXXXX";
    strcpy(path, "/tmp/test_config.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    return path;
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    assert_true(tetherd_config_nkeys >= 30);
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        const char *dot = strchr(k->key, '.');
        assert_true(!dot || !strchr(dot + 1, '.'));      /* one level of objects */
        assert_ptr_equal(tetherd_config_key(k->key), k); /* no key twice */
        assert_true(k->doc && *k->doc);
        assert_true(k->off + k->size <= sizeof(tetherd_config_t));
        if (k->type == TETHERD_KEY_UINT) {
            assert_true(k->size == 1 || k->size == 2 || k->size == 4 || k->size == 8);
            assert_true(k->min <= k->max && k->min >= 0);
            assert_true(k->size == 8 || (unsigned long long)k->max >> (8 * k->size) == 0);
            if (k->lib != TETHERD_LIB_NONE) { /* the library's field holds max * scale */
                assert_true(k->lib_scale >= 1);
                unsigned long long top = (unsigned long long)k->max * k->lib_scale;
                assert_true(k->lib_size == 8 || top >> (8 * k->lib_size) == 0);
            }
        }
        /* A default is given, or comes from the library, or is empty by type. */
        assert_true(k->def || k->lib != TETHERD_LIB_NONE || k->type == TETHERD_KEY_NODES);
    }
}

/* Each text default is what a fresh configuration holds. */
static void test_defaults_hold(void **state)
{
    (void)state;
    assert_int_equal(load(NULL, NULL), 0);
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        if (!k->def)
            continue;
        if (k->type == TETHERD_KEY_UINT)
            assert_int_equal(tetherd_config_uint(&cfg, k), strtoull(k->def, NULL, 10));
        else if (k->type == TETHERD_KEY_BOOL)
            assert_int_equal(tetherd_config_bool(&cfg, k), strcmp(k->def, "true") == 0);
        else if (k->type == TETHERD_KEY_LISTEN)
            assert_int_equal(cfg.nlisten, 1);
        else
            assert_string_equal(tetherd_config_str(&cfg, k), k->def);
    }
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 5683);
}

/* With no keys set, the library configurations are the library's defaults. */
static void test_library_defaults_round_trip(void **state)
{
    (void)state;
    assert_int_equal(load(NULL, NULL), 0);
    tether_node_conf_t nc, nd;
    tetherd_config_node_conf(&cfg, &nc);
    tether_node_conf_defaults(&nd);
    assert_memory_equal(&nc, &nd, sizeof nc);
    tether_dtls_conf_t dc, dd;
    tetherd_config_dtls_conf(&cfg, &dc);
    tether_dtls_conf_defaults(&dd);
    assert_string_equal(dc.ca_file, ""); /* paths point into cfg */
    assert_string_equal(dc.cert_file, "");
    assert_string_equal(dc.key_file, "");
    dc.ca_file = dc.cert_file = dc.key_file = NULL;
    assert_memory_equal(&dc, &dd, sizeof dc);
}

static void test_keys_reach_the_library(void **state)
{
    (void)state;
    const char *f = write_file("{\"coap_options\": {\"reply_from\": 65001},\n"
                               " \"dtls\": {\"cid_length\": 5, \"handshake_timeout\": 13,\n"
                               "          \"idle_timeout\": 4000000, \"ca_file\": \"/dev/null\"},\n"
                               " \"proxy\": {\"cache_bytes\": 1099511627776, \"queue_max\": 3}}\n");
    const char *args[] = {"--config", f, NULL};
    assert_int_equal(load(NULL, args), 0);
    unlink(f);
    tether_node_conf_t nc;
    tetherd_config_node_conf(&cfg, &nc);
    assert_int_equal(nc.opt_reply_from, 65001);
    assert_int_equal(nc.cache_bytes, 1ull << 40);
    assert_int_equal(nc.queue_max, 3);
    tether_dtls_conf_t dc;
    tetherd_config_dtls_conf(&cfg, &dc);
    assert_int_equal(dc.cid_len, 5);
    assert_int_equal(dc.handshake_timeout_ms, 13000); /* seconds in the file */
    assert_int_equal(dc.idle_timeout_ms, 4000000000u);
    assert_string_equal(dc.ca_file, "/dev/null");
}

/* node_id: file 3, env 4, flag 5. */
static void test_file_env_flag_order(void **state)
{
    (void)state;
    const char *f = write_file("{\"node_id\": 3, \"cluster\": {\"listen\": \"127.0.0.1:1\"},\n"
                               " \"cluster_key\": \"0123456789abcdef\"}\n");
    const char *file_only[] = {"--config", f, NULL};
    const char *with_flag[] = {"--config",    f,   "--node-id", "5", "--cluster-listen",
                               "127.0.0.1:2", NULL};
    assert_int_equal(load(NULL, file_only), 0);
    assert_int_equal(cfg.node_id, 3);
    assert_string_equal(cfg.cluster_listen, "127.0.0.1:1");
    assert_int_equal(load("TETHER_NODE_ID=4", file_only), 0);
    assert_int_equal(cfg.node_id, 4);
    assert_int_equal(load("TETHER_CLUSTER_LISTEN=127.0.0.1:3", file_only), 0);
    assert_string_equal(cfg.cluster_listen, "127.0.0.1:3");
    assert_int_equal(load("TETHER_NODE_ID=4", with_flag), 0);
    assert_int_equal(cfg.node_id, 5);
    assert_string_equal(cfg.cluster_listen, "127.0.0.1:2");
    unlink(f);
}

/* A value too long for its field is refused, not cut (a cut token would
 * still authenticate its prefix); the error does not quote a secret. */
static void test_long_values_refused(void **state)
{
    (void)state;
    char env[300] = "TETHER_ADMIN_TOKEN=";
    memset(env + strlen(env), 'k', 200);
    char err[512] = "";
    unsetenv("TETHER_ADMIN_TOKEN");
    putenv(env);
    char *argv[] = {"tetherd", NULL};
    assert_int_equal(tetherd_config_load(&cfg, 1, argv, err, sizeof err), TETHER_ECONFIG);
    assert_non_null(strstr(err, "TETHER_ADMIN_TOKEN"));
    assert_null(strstr(err, "kkkk"));
    unsetenv("TETHER_ADMIN_TOKEN");
}

static void test_redaction(void **state)
{
    (void)state;
    char buf[128];
    tetherd_url_redacted("redis://user:pw@host:6379/0", buf, sizeof buf);
    assert_string_equal(buf, "redis://***@host:6379/0");
    tetherd_url_redacted("redis://host:6379/0", buf, sizeof buf);
    assert_string_equal(buf, "redis://host:6379/0");
    tetherd_listen_t l = {.host = "::1", .port = 5684, .proto = TETHERD_PROTO_COAPS};
    tetherd_listen_str(&l, buf, sizeof buf);
    assert_string_equal(buf, "coaps://[::1]:5684");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_defaults_hold),
        cmocka_unit_test(test_library_defaults_round_trip),
        cmocka_unit_test(test_keys_reach_the_library),
        cmocka_unit_test(test_file_env_flag_order),
        cmocka_unit_test(test_long_values_refused),
        cmocka_unit_test(test_redaction),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
