/* Configuration loading with errors a user can act on: file, line, key.
 * Embedded defaults < config file < environment < command line, every step
 * driven by the key table (config/keys.c). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "tether/common.h"
#include "tether/hostport.h"
#include "tether/log.h"

bool tetherd_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int tetherd_parse_listen(const char *s, tetherd_listen_t *out)
{
    int proto = -1;
    if (strncmp(s, "coap://", 7) == 0) {
        proto = TETHERD_PROTO_COAP;
        s += 7;
    } else if (strncmp(s, "coaps://", 8) == 0) {
        proto = TETHERD_PROTO_COAPS;
        s += 8;
    }
    if (tether_hostport_split(s, out->host, sizeof out->host, &out->port) < 0)
        return TETHER_EINVAL;
    out->proto = proto >= 0 ? (tetherd_proto_t)proto
                            : (out->port == 5683 ? TETHERD_PROTO_COAP : TETHERD_PROTO_COAPS);
    return 0;
}

/* Line of the first `"key":` at or after byte `from` in the file text; the
 * JSON parser keeps no positions, so errors about values find the key this
 * way. Returns 0 when not found. */
static int key_line(const char *text, const char *key, size_t from, size_t *at)
{
    size_t klen = strlen(key);
    for (const char *p = text + from; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '"') {
            const char *q = p + 2 + klen;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == ':') {
                int line = 1;
                for (const char *r = text; r < p; r++)
                    line += *r == '\n';
                if (at)
                    *at = (size_t)(p - text);
                return line;
            }
        }
    }
    return 0;
}

/* Appends one listener given as text. 0, or TETHER_ECONFIG with `why`. */
static int add_listen(tetherd_config_t *c, const char *v, char *why, size_t cap)
{
    if (c->nlisten == TETHERD_MAX_LISTEN || tetherd_parse_listen(v, &c->listen[c->nlisten]) < 0) {
        snprintf(why, cap, "expected [coap(s)://]HOST:PORT (at most %d)", TETHERD_MAX_LISTEN);
        return TETHER_ECONFIG;
    }
    c->nlisten++;
    return 0;
}

/* Sets key k from text (a default, the environment, a flag); a listener
 * is appended. 0, or TETHER_ECONFIG with the reason in why[cap]. A log
 * level is checked later, whatever its source (validate). */
static int apply_text(tetherd_config_t *c, const tetherd_key_t *k, const char *v, char *why,
                      size_t cap)
{
    switch (k->type) {
    case TETHERD_KEY_UINT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < k->min || n > k->max) {
            snprintf(why, cap, "must be an integer from %lld to %lld", k->min, k->max);
            return TETHER_ECONFIG;
        }
        tetherd_config_set_uint(c, k, (uint64_t)n);
        return 0;
    }
    case TETHERD_KEY_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
            snprintf(why, cap, "must be true or false");
            return TETHER_ECONFIG;
        }
        tetherd_config_set_bool(c, k, v[0] == 't');
        return 0;
    case TETHERD_KEY_LISTEN: return add_listen(c, v, why, cap);
    case TETHERD_KEY_NODES:
        snprintf(why, cap, "only the config file sets it");
        return TETHER_ECONFIG;
    default:
        if (strlen(v) >= k->size) {
            snprintf(why, cap, "longer than %zu bytes", k->size - 1);
            return TETHER_ECONFIG;
        }
        memcpy(tetherd_config_str_field(c, k), v, strlen(v) + 1);
        return 0;
    }
}

/* The embedded defaults: each key's text default, else the library's. */
static void set_defaults(tetherd_config_t *c)
{
    char why[128];
    memset(c, 0, sizeof *c);
    tetherd_config_lib_defaults(c);
    for (size_t i = 0; i < tetherd_config_nkeys; i++)
        if (tetherd_config_keys[i].def)
            (void)apply_text(c, &tetherd_config_keys[i], tetherd_config_keys[i].def, why,
                             sizeof why); /* the table's own defaults parse */
}

typedef struct {
    const char *file;
    const char *text;
    char *err;
    size_t errcap;
} ctx_t;

static int fail(ctx_t *x, const char *key, size_t from, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats "FILE:LINE: key 'K': what" into the caller's error buffer; the
 * line is that of the first "K": at or after byte `from`. */
static int fail(ctx_t *x, const char *key, size_t from, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line = key_line(x->text, key, from, NULL);
    snprintf(x->err, x->errcap, "%s:%d: key '%s': %s", x->file, line, key, what);
    return TETHER_ECONFIG;
}

/* "listen": ["HOST:PORT", ...], 1 to TETHERD_MAX_LISTEN entries. */
static int json_listen(ctx_t *x, tetherd_config_t *c, const char *name, json_t *v, size_t at)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TETHERD_MAX_LISTEN)
        return fail(x, name, at, "must be an array of 1 to %d \"HOST:PORT\" strings",
                    TETHERD_MAX_LISTEN);
    size_t i;
    json_t *e;
    c->nlisten = 0;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || tetherd_parse_listen(json_string_value(e), &c->listen[i]) < 0)
            return fail(x, name, at, "entry %zu is not coap(s)://HOST:PORT", i);
        c->nlisten++;
    }
    return 0;
}

/* "nodes": {"2": "HOST:PORT", ...}; node ids 1..255, hosts may be names
 * (resolved at start). */
static int json_nodes(ctx_t *x, tetherd_config_t *c, const char *name, json_t *e, size_t at)
{
    if (!json_is_object(e))
        return fail(x, name, at, "must be an object of \"NODE_ID\": \"HOST:PORT\"");
    const size_t max = sizeof c->cluster_nodes / sizeof c->cluster_nodes[0];
    const char *id;
    json_t *hp;
    c->ncluster_nodes = 0;
    json_object_foreach(e, id, hp)
    {
        char *end;
        long n = strtol(id, &end, 10);
        if (!*id || *end || n < 1 || n > 255)
            return fail(x, name, at, "node id '%s' is not 1..255", id);
        if (c->ncluster_nodes == max)
            return fail(x, name, at, "more than %zu nodes", max);
        char *dst = c->cluster_nodes[c->ncluster_nodes].addr;
        if (!json_is_string(hp))
            return fail(x, name, at, "must be a string");
        if (json_string_length(hp) >= sizeof c->cluster_nodes[0].addr)
            return fail(x, name, at, "longer than %zu bytes", sizeof c->cluster_nodes[0].addr - 1);
        memcpy(dst, json_string_value(hp), json_string_length(hp) + 1);
        char host[160];
        uint16_t port;
        if (tether_hostport_split(dst, host, sizeof host, &port) < 0)
            return fail(x, name, at, "node %ld: '%s' is not HOST:PORT", n, dst);
        c->cluster_nodes[c->ncluster_nodes++].id = (uint8_t)n;
    }
    return 0;
}

/* Sets key k from its JSON value; `name` is the key as written (the part
 * after the section), `at` where its section starts in the text. */
static int apply_json(ctx_t *x, tetherd_config_t *c, const tetherd_key_t *k, const char *name,
                      json_t *v, size_t at)
{
    switch (k->type) {
    case TETHERD_KEY_UINT:
        if (!json_is_integer(v) || json_integer_value(v) < k->min || json_integer_value(v) > k->max)
            return fail(x, name, at, "must be an integer from %lld to %lld", k->min, k->max);
        tetherd_config_set_uint(c, k, (uint64_t)json_integer_value(v));
        return 0;
    case TETHERD_KEY_BOOL:
        if (!json_is_boolean(v))
            return fail(x, name, at, "must be true or false");
        tetherd_config_set_bool(c, k, json_is_true(v));
        return 0;
    case TETHERD_KEY_LISTEN: return json_listen(x, c, name, v, at);
    case TETHERD_KEY_NODES: return json_nodes(x, c, name, v, at);
    default: break;
    }
    if (!json_is_string(v))
        return fail(x, name, at, "must be a string");
    if (json_string_length(v) >= k->size)
        return fail(x, name, at, "longer than %zu bytes", k->size - 1);
    memcpy(tetherd_config_str_field(c, k), json_string_value(v), json_string_length(v) + 1);
    tether_log_level_t l;
    if (k->type == TETHERD_KEY_LOG_LEVEL && tether_log_level_parse(json_string_value(v), &l) < 0)
        return fail(x, name, at, "must be one of error, warn, info, debug");
    return 0;
}

/* True when some key lives in the object `name` ("dtls" for "dtls.*"). */
static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < tetherd_config_nkeys; i++)
        if (strncmp(tetherd_config_keys[i].key, name, n) == 0 &&
            tetherd_config_keys[i].key[n] == '.')
            return true;
    return false;
}

/* One member of the top-level object: a key, or a section of keys. */
static int apply_member(ctx_t *x, tetherd_config_t *c, const char *name, json_t *v)
{
    const tetherd_key_t *k = tetherd_config_key(name);
    if (k && !strchr(name, '.'))
        return apply_json(x, c, k, name, v, 0);
    if (!is_section(name))
        return fail(x, name, 0, "unknown key");
    size_t at = 0;
    key_line(x->text, name, 0, &at);
    if (!json_is_object(v))
        return fail(x, name, 0, "must be an object");
    const char *sub;
    json_t *e;
    json_object_foreach(v, sub, e)
    {
        char full[96];
        int n = snprintf(full, sizeof full, "%s.%s", name, sub);
        if (n < 0 || n >= (int)sizeof full || !(k = tetherd_config_key(full)) || strchr(sub, '.'))
            return fail(x, sub, at, "unknown key in %s", name);
        int rc = apply_json(x, c, k, sub, e, at);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads the config file; every key is known or the load fails. */
static int load_file(tetherd_config_t *c, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return TETHER_ECONFIG;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                return TETHER_ENOMEM;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    text[len] = 0;

    int rc = 0;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    ctx_t x = {path, text, err, errcap};
    if (!root) {
        /* Without jansson's " near '<token>'": the token may be a secret
         * (admin_token, cluster_key) cut short. */
        const char *near = strstr(jerr.text, " near ");
        snprintf(err, errcap, "%s:%d: invalid JSON (column %d): %.*s", path, jerr.line, jerr.column,
                 near ? (int)(near - jerr.text) : (int)strlen(jerr.text), jerr.text);
        rc = TETHER_ECONFIG;
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(err, errcap, "%s:1: the top level must be a JSON object", path);
        rc = TETHER_ECONFIG;
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if ((rc = apply_member(&x, c, k, v)) < 0)
            goto out;
    }
out:
    json_decref(root);
    free(text);
    return rc;
}

/* "integer 1..255", "true|false", or how the table says a value is written. */
static const char *value_form(const tetherd_key_t *k, char *buf, size_t cap)
{
    if (k->arg)
        return k->arg;
    switch (k->type) {
    case TETHERD_KEY_UINT: snprintf(buf, cap, "integer %lld..%lld", k->min, k->max); return buf;
    case TETHERD_KEY_BOOL: return "true|false";
    case TETHERD_KEY_LOG_LEVEL: return "error|warn|info|debug";
    case TETHERD_KEY_HOSTPORT: return "HOST:PORT";
    default: return "STRING";
    }
}

/* The default as --help shows it (secrets are empty by default). */
static void default_form(const tetherd_config_t *d, const tetherd_key_t *k, char *buf, size_t cap)
{
    if (k->type == TETHERD_KEY_UINT)
        snprintf(buf, cap, "%llu", (unsigned long long)tetherd_config_uint(d, k));
    else if (k->type == TETHERD_KEY_BOOL)
        snprintf(buf, cap, "%s", tetherd_config_bool(d, k) ? "true" : "false");
    else if (k->type == TETHERD_KEY_LISTEN)
        snprintf(buf, cap, "%s", k->def);
    else if (k->type == TETHERD_KEY_NODES)
        snprintf(buf, cap, "{}");
    else
        snprintf(buf, cap, "\"%s\"", tetherd_config_str(d, k));
}

/* Appends `word` to the output line, wrapping at 80 columns under `indent`. */
static void put_word(FILE *f, int *col, int indent, const char *word)
{
    int n = (int)strlen(word);
    if (*col + 1 + n > 80) {
        *col = fprintf(f, "\n%*s", indent, "") - 1;
    } else if (*col != indent) { /* not at the start of a wrapped line */
        *col += fprintf(f, " ");
    }
    *col += fprintf(f, "%s", word);
}

static void usage(FILE *f, bool full)
{
    int col = fprintf(f, "usage: tetherd");
    put_word(f, &col, 15, "[--config FILE]");
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        char form[48], word[96];
        if (!k->flag)
            continue;
        snprintf(word, sizeof word, "[--%s %s]%s", k->flag,
                 k->type == TETHERD_KEY_UINT ? "N" : value_form(k, form, sizeof form),
                 k->type == TETHERD_KEY_LISTEN ? "..." : "");
        put_word(f, &col, 15, word);
    }
    put_word(f, &col, 15, "[--check-config]");
    put_word(f, &col, 15, "[--version]");
    put_word(f, &col, 15, "[--help]");
    col = fprintf(f, "\nenv:") - 1;
    for (size_t i = 0; i < tetherd_config_nkeys; i++)
        if (tetherd_config_keys[i].env)
            put_word(f, &col, 5, tetherd_config_keys[i].env);
    fprintf(f, "\n");
    if (!full)
        return;
    static tetherd_config_t d;
    set_defaults(&d);
    fprintf(f, "\nThe config file (JSON, conf/README.md) sets these keys; environment\n"
               "variables override the file and flags override both.\n\nconfig keys:\n");
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        char form[48], def[160];
        default_form(&d, k, def, sizeof def);
        fprintf(f, "  %-34s %s, default %s\n      %s\n", k->key, value_form(k, form, sizeof form),
                def, k->doc);
        if (k->env || k->flag)
            fprintf(f, "      %s%s%s%s%s\n", k->env ? "env " : "", k->env ? k->env : "",
                    k->env && k->flag ? ", " : "", k->flag ? "flag --" : "",
                    k->flag ? k->flag : "");
    }
}

/* Final checks that apply whatever the source of a value was. */
static int validate(tetherd_config_t *c, char *err, size_t errcap)
{
    const char *src = c->file[0] ? c->file : "(defaults)";
    tether_log_level_t l;
    if (tether_log_level_parse(c->log_level, &l) < 0) {
        snprintf(err, errcap, "%s: log level '%s' is not error, warn, info or debug", src,
                 c->log_level);
        return TETHER_ECONFIG;
    }
    /* HOST:PORT keys: empty means off unless the default is an address. */
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        const char *v = tetherd_config_str(c, k);
        char host[160];
        uint16_t port;
        if (k->type != TETHERD_KEY_HOSTPORT || (!v[0] && !k->def[0]))
            continue;
        if (strstr(v, "://") || tether_hostport_split(v, host, sizeof host, &port) < 0) {
            snprintf(err, errcap, "%s: key '%s': '%s' is not HOST:PORT", src, k->key, v);
            return TETHER_ECONFIG;
        }
    }
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen[i].proto == TETHERD_PROTO_COAP && !c->plain_coap_public &&
            !tetherd_is_loopback(c->listen[i].host)) {
            snprintf(err, errcap,
                     "%s: key 'listen': plain CoAP on non-loopback %s needs "
                     "\"plain_coap_public\": true",
                     src, c->listen[i].host);
            return TETHER_ECONFIG;
        }
    if (!c->dtls_cert_file[0] != !c->dtls_key_file[0]) {
        snprintf(err, errcap, "%s: key 'dtls': cert_file and key_file go together", src);
        return TETHER_ECONFIG;
    }
    const char *files[][2] = {{"dtls.ca_file", c->dtls_ca_file},
                              {"dtls.cert_file", c->dtls_cert_file},
                              {"dtls.key_file", c->dtls_key_file}};
    for (size_t i = 0; i < 3; i++)
        if (files[i][1][0] && access(files[i][1], R_OK) != 0) {
            snprintf(err, errcap, "%s: key '%s': cannot read %s: %s", src, files[i][0], files[i][1],
                     strerror(errno));
            return TETHER_ECONFIG;
        }
    if (strlen(c->cluster_key) > 64) { /* the DTLS cookie secrets take at most 64 bytes */
        snprintf(err, errcap, "%s: key 'cluster_key': longer than 64 characters", src);
        return TETHER_ECONFIG;
    }
    /* Forwarded records name client addresses: only MACed ones count. */
    if (c->cluster_listen[0] && strlen(c->cluster_key) < 16) {
        snprintf(err, errcap,
                 "%s: key 'cluster': the internal channel needs a cluster_key "
                 "(TETHER_CLUSTER_KEY) of at least 16 characters",
                 src);
        return TETHER_ECONFIG;
    }
    /* Stored credentials are sealed under a key derived from it. */
    if (c->redis_url[0] && strlen(c->cluster_key) < 16) {
        snprintf(err, errcap,
                 "%s: key 'redis_url': the shared store needs a cluster_key "
                 "(TETHER_CLUSTER_KEY) of at least 16 characters",
                 src);
        return TETHER_ECONFIG;
    }
    if (c->cluster_failover && (!c->redis_url[0] || !c->cluster_listen[0])) {
        snprintf(err, errcap,
                 "%s: key 'cluster.failover': needs redis_url (checkpoints live there) and "
                 "cluster.listen (records reach the adopter through it)",
                 src);
        return TETHER_ECONFIG;
    }
    if (c->redis_url[0] && strncmp(c->redis_url, "redis://", 8) != 0) {
        snprintf(err, errcap, "%s: key 'redis_url': expected redis://HOST:PORT[/DB]", src);
        return TETHER_ECONFIG;
    }
    if (c->opt_multicast_timeout == c->opt_reply_from ||
        c->opt_group_etag == c->opt_multicast_timeout || c->opt_group_etag == c->opt_reply_from) {
        snprintf(err, errcap, "%s: key 'coap_options': the three option numbers must differ", src);
        return TETHER_ECONFIG;
    }
    return 0;
}

/* True when an error may quote the value (not a secret, not a URL that
 * may carry a password). */
static bool quotable(const tetherd_key_t *k)
{
    return k->type != TETHERD_KEY_SECRET && k->type != TETHERD_KEY_URL;
}

/* Environment overrides; an empty variable counts as unset. */
static int apply_env(tetherd_config_t *c, char *err, size_t errcap)
{
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        const char *v = k->env ? getenv(k->env) : NULL;
        char why[128];
        if (!v || !*v || apply_text(c, k, v, why, sizeof why) == 0)
            continue;
        if (quotable(k))
            snprintf(err, errcap, "environment %s='%s': %s", k->env, v, why);
        else
            snprintf(err, errcap, "environment %s: %s", k->env, why);
        return TETHER_ECONFIG;
    }
    return 0;
}

int tetherd_config_load(tetherd_config_t *c, int argc, char **argv, char *err, size_t errcap)
{
    enum { O_CONFIG = 1, O_CHECK, O_VERSION, O_KEY = 256 };
    static struct option opts[TETHERD_CONFIG_MAX_KEYS + 5] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"check-config", no_argument, NULL, O_CHECK},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, 'h'},
    };
    size_t nopts = 4;
    for (size_t i = 0; i < tetherd_config_nkeys; i++)
        if (tetherd_config_keys[i].flag)
            opts[nopts++] = (struct option){tetherd_config_keys[i].flag, required_argument, NULL,
                                            O_KEY + (int)i};
    opts[nopts] = (struct option){NULL, 0, NULL, 0};

    set_defaults(c);
    /* Pass 1: only --config, so the file is applied before other flags. */
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        if (o == O_CONFIG)
            snprintf(c->file, sizeof c->file, "%s", optarg);
    if (c->file[0]) {
        int rc = load_file(c, c->file, err, errcap);
        if (rc < 0)
            return rc;
    }
    if (apply_env(c, err, errcap) < 0)
        return TETHER_ECONFIG;

    /* Pass 2: every other flag overrides file and env. */
    optind = 1;
    opterr = 1;
    bool listen_given = false;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o >= O_KEY && (size_t)(o - O_KEY) < tetherd_config_nkeys) {
            const tetherd_key_t *k = &tetherd_config_keys[o - O_KEY];
            char why[128];
            if (k->type == TETHERD_KEY_LISTEN && !listen_given) {
                c->nlisten = 0; /* the flag replaces the file's list */
                listen_given = true;
            }
            if (apply_text(c, k, optarg, why, sizeof why) < 0) {
                if (quotable(k))
                    snprintf(err, errcap, "--%s '%s': %s", k->flag, optarg, why);
                else
                    snprintf(err, errcap, "--%s: %s", k->flag, why);
                return TETHER_ECONFIG;
            }
            continue;
        }
        switch (o) {
        case O_CONFIG: break;
        case O_CHECK: c->check_only = true; break;
        case O_VERSION: printf("tetherd %s\n", TETHERD_VERSION); return 1;
        case 'h': usage(stdout, true); return 1;
        default:
            usage(stderr, false);
            snprintf(err, errcap, "bad command line");
            return TETHER_ECONFIG;
        }
    }
    if (optind < argc) {
        snprintf(err, errcap, "unexpected argument '%s'", argv[optind]);
        return TETHER_ECONFIG;
    }
    return validate(c, err, errcap);
}
