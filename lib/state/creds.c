/* Credentials file loading and PSK lookup. */
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "tether/creds.h"
#include "tether/hmap.h"
#include "util/container.h"

/* PSK identities are looked up by a hash map (SPEC S10: a spoofable hello
 * must not cost a scan of 100k entries). Identities are up to 127 bytes and
 * map keys at most TETHER_HKEY_MAX, so the key is 16 bytes of SHA-256 of the
 * identity; the entry's identity is still compared, and two identities
 * whose digests collide are refused at load. */
#define ID_DIGEST_LEN 16

typedef tether_creds_rule_t allow_t;

typedef struct {
    allow_t *rules;
    size_t n;
} acl_t;

typedef struct {
    char identity[TETHER_IDENTITY_MAX];
    uint8_t key[TETHER_PSK_MAX];
    size_t key_len;
    tether_role_t role;
    acl_t acl;
    tether_hnode_t by_id;
    bool has_http;
    uint8_t http_hash[TETHER_HTTP_TOKEN_HASH_LEN]; /* SHA-256 of the HTTP bearer token */
    uint64_t tag; /* tether_creds_key_tag: made once, read at every handshake */
} psk_entry_t;

typedef struct {
    char prefix[TETHER_IDENTITY_MAX];
    uint8_t master[64];
    size_t master_len;
    tether_role_t role;
    acl_t acl;
    uint64_t tag; /* tether_creds_key_tag of every identity under the prefix */
} derived_entry_t;

/* X.509 peers: a certificate's subject CN, exact or by prefix, gets a role. */
typedef struct {
    char name[TETHER_IDENTITY_MAX];
    bool prefix;
    tether_role_t role;
} x509_entry_t;

struct tether_creds {
    psk_entry_t *psk;
    size_t npsk;
    tether_hmap_t psk_by_id; /* of psk[].by_id */
    derived_entry_t *derived;
    size_t nderived;
    x509_entry_t *x509;
    size_t nx509;
    size_t *http; /* indexes into psk[] of the entries with an HTTP token */
    size_t nhttp;
};

static void id_digest(const char *identity, uint8_t out[ID_DIGEST_LEN])
{
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Hash((const byte *)identity, (word32)strlen(identity), d);
    memcpy(out, d, ID_DIGEST_LEN);
}

/* A set with its index; the map seed is random so that bucket positions
 * cannot be predicted from identities. */
static tether_creds_t *creds_new(size_t npsk)
{
    tether_creds_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    uint64_t seed = 0;
    WC_RNG rng;
    if (wc_InitRng(&rng) == 0) {
        wc_RNG_GenerateBlock(&rng, (byte *)&seed, sizeof seed);
        wc_FreeRng(&rng);
    }
    if (tether_hmap_init(&c->psk_by_id, npsk, seed) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

int tether_creds_empty(tether_creds_t **out)
{
    *out = creds_new(0);
    return *out ? 0 : TETHER_ENOMEM;
}

void tether_creds_free(tether_creds_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npsk; i++)
        free(c->psk[i].acl.rules);
    for (size_t i = 0; i < c->nderived; i++)
        free(c->derived[i].acl.rules);
    if (c->psk)
        memset(c->psk, 0, c->npsk * sizeof *c->psk);
    if (c->derived)
        memset(c->derived, 0, c->nderived * sizeof *c->derived);
    free(c->psk);
    free(c->derived);
    free(c->x509);
    free(c->http);
    tether_hmap_free(&c->psk_by_id);
    free(c);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes an even-length hex string of 1..cap bytes. */
static int unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 || n / 2 > cap)
        return TETHER_EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TETHER_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

static int parse_role(json_t *v, tether_role_t *role)
{
    const char *s = json_string_value(v);
    if (!s)
        return TETHER_EINVAL;
    if (strcmp(s, "device") == 0)
        *role = TETHER_ROLE_DEVICE;
    else if (strcmp(s, "client") == 0)
        *role = TETHER_ROLE_CLIENT;
    else
        return TETHER_EINVAL;
    return 0;
}

static const char *const method_names[] = {NULL,     "GET",   "POST",  "PUT",
                                           "DELETE", "FETCH", "PATCH", "iPATCH"};

int tether_creds_method_code(const char *name)
{
    for (int code = 1; name && code < 8; code++)
        if (strcmp(name, method_names[code]) == 0)
            return code;
    return TETHER_ENOTFOUND;
}

/* Parses an optional "allow" array into acl; err names `what`. */
static int parse_acl(json_t *allow, acl_t *acl, const char *path, const char *what, char *err,
                     size_t errcap)
{
    if (!allow)
        return 0;
    if (!json_is_array(allow)) {
        snprintf(err, errcap, "%s: %s: \"allow\" must be an array", path, what);
        return TETHER_ECONFIG;
    }
    if (json_array_size(allow) &&
        !(acl->rules = calloc(json_array_size(allow), sizeof *acl->rules)))
        return TETHER_ENOMEM;
    size_t i;
    json_t *r;
    json_array_foreach(allow, i, r)
    {
        allow_t *a = &acl->rules[acl->n];
        const char *dev = json_string_value(json_object_get(r, "devices"));
        const char *grp = json_string_value(json_object_get(r, "groups"));
        const char *pat = dev ? dev : grp;
        json_t *ms = json_object_get(r, "methods");
        if (!pat || !*pat || strlen(pat) >= sizeof a->pattern || (dev && grp)) {
            snprintf(err, errcap, "%s: %s: allow[%zu]: needs one \"devices\" or \"groups\" pattern",
                     path, what, i);
            return TETHER_ECONFIG;
        }
        a->group = grp != NULL;
        strcpy(a->pattern, pat);
        if (!ms) {
            a->methods = 0xfe; /* every method */
        } else if (!json_is_array(ms)) {
            snprintf(err, errcap, "%s: %s: allow[%zu]: \"methods\" must be an array", path, what,
                     i);
            return TETHER_ECONFIG;
        }
        size_t k;
        json_t *m;
        json_array_foreach(ms, k, m)
        {
            const char *name = json_string_value(m);
            int code = tether_creds_method_code(name);
            if (code < 0) {
                snprintf(err, errcap,
                         "%s: %s: allow[%zu]: unknown method %s (GET, POST, PUT, DELETE, "
                         "FETCH, PATCH, iPATCH)",
                         path, what, i, name ? name : "(not a string)");
                return TETHER_ECONFIG;
            }
            a->methods |= (uint8_t)(1u << code);
        }
        acl->n++;
    }
    return 0;
}

/* Parses the optional "x509" array: [{"identity": CN | "identity_prefix":
 * PREFIX, "role": ...}]. Returns 0 or TETHER_ECONFIG/ENOMEM with err set. */
static int load_x509(tether_creds_t *c, json_t *root, const char *path, char *err, size_t errcap)
{
    json_t *arr = json_object_get(root, "x509");
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errcap, "%s: \"x509\" must be an array", path);
        return TETHER_ECONFIG;
    }
    if (json_array_size(arr) && !(c->x509 = calloc(json_array_size(arr), sizeof *c->x509)))
        return TETHER_ENOMEM;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        x509_entry_t *x = &c->x509[c->nx509];
        const char *id = json_string_value(json_object_get(e, "identity"));
        const char *pre = json_string_value(json_object_get(e, "identity_prefix"));
        const char *name = id ? id : pre;
        if (!json_is_object(e) || !name || (id && pre) || (id && !*id) ||
            strlen(name) >= sizeof x->name) {
            snprintf(err, errcap,
                     "%s: x509[%zu]: needs exactly one of \"identity\" or \"identity_prefix\"",
                     path, i);
            return TETHER_ECONFIG;
        }
        if (parse_role(json_object_get(e, "role"), &x->role) < 0) {
            snprintf(err, errcap, "%s: x509[%zu] (%s): \"role\" must be device or client", path, i,
                     name);
            return TETHER_ECONFIG;
        }
        strcpy(x->name, name);
        x->prefix = pre != NULL;
        c->nx509++;
    }
    return 0;
}

/* An entry's optional HTTP bearer token: "http_token" (the token itself,
 * hashed here and never kept) or "http_token_sha256" (its SHA-256 in hex,
 * so the file need not hold the secret). Tokens shorter than 16 bytes are
 * refused: a bearer token is all an HTTP client shows. */
/* A key's tag (tether_creds_key_tag): SHA-256 over what the key is made
 * of, an explicit key or the fleet master and the prefix it is derived
 * under (no derivation needed), truncated to 8 bytes. */
static int make_tag(uint8_t kind, const uint8_t *k, size_t kl, const char *prefix, uint64_t *tag)
{
    wc_Sha256 h;
    uint8_t md[WC_SHA256_DIGEST_SIZE];
    if (wc_InitSha256(&h) != 0)
        return TETHER_ECRYPTO;
    int rc = wc_Sha256Update(&h, &kind, 1);
    if (!rc)
        rc = wc_Sha256Update(&h, k, (word32)kl);
    if (!rc && prefix)
        rc = wc_Sha256Update(&h, (const byte *)prefix, (word32)strlen(prefix));
    if (!rc)
        rc = wc_Sha256Final(&h, md);
    wc_Sha256Free(&h);
    if (rc)
        return TETHER_ECRYPTO;
    memcpy(tag, md, sizeof *tag);
    wc_ForceZero(md, sizeof md);
    return 0;
}

static int psk_tag(psk_entry_t *p)
{
    return make_tag(1, p->key, p->key_len, NULL, &p->tag);
}

static int derived_tag(derived_entry_t *d)
{
    return make_tag(2, d->master, d->master_len, d->prefix, &d->tag);
}

static int parse_http_token(json_t *e, psk_entry_t *p, const char *path, size_t i, char *err,
                            size_t errcap)
{
    json_t *tok = json_object_get(e, "http_token");
    json_t *hash = json_object_get(e, "http_token_sha256");
    size_t hl = 0;
    if (!tok && !hash)
        return 0;
    if (tok && hash) {
        snprintf(err, errcap, "%s: psk[%zu] (%s): give \"http_token\" or \"http_token_sha256\"",
                 path, i, p->identity);
        return TETHER_ECONFIG;
    }
    if (p->role != TETHER_ROLE_CLIENT) {
        snprintf(err, errcap, "%s: psk[%zu] (%s): only clients may have an HTTP token", path, i,
                 p->identity);
        return TETHER_ECONFIG;
    }
    if (tok) {
        if (!json_is_string(tok) || json_string_length(tok) < 16) {
            snprintf(err, errcap, "%s: psk[%zu] (%s): \"http_token\" must be a string of 16+ bytes",
                     path, i, p->identity);
            return TETHER_ECONFIG;
        }
        wc_Sha256Hash((const byte *)json_string_value(tok), (word32)json_string_length(tok),
                      p->http_hash);
    } else if (!json_is_string(hash) ||
               unhex(json_string_value(hash), p->http_hash, sizeof p->http_hash, &hl) < 0 ||
               hl != sizeof p->http_hash) {
        snprintf(err, errcap, "%s: psk[%zu] (%s): \"http_token_sha256\" must be 64 hex digits",
                 path, i, p->identity);
        return TETHER_ECONFIG;
    }
    p->has_http = true;
    return 0;
}

/* Lists the entries with an HTTP token (c->http), so a lookup does not
 * walk a fleet of 100k PSK entries. */
static int index_http(tether_creds_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->npsk; i++)
        n += c->psk[i].has_http;
    free(c->http);
    c->http = NULL;
    c->nhttp = 0;
    if (!n)
        return 0;
    if (!(c->http = malloc(n * sizeof *c->http)))
        return TETHER_ENOMEM;
    for (size_t i = 0; i < c->npsk; i++)
        if (c->psk[i].has_http)
            c->http[c->nhttp++] = i;
    return 0;
}

int tether_creds_http_identity(const tether_creds_t *c, const char *tok, size_t len, char *identity,
                               size_t cap)
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    if (wc_Sha256Hash((const byte *)tok, (word32)len, h) != 0)
        return TETHER_ENOTFOUND;
    const psk_entry_t *found = NULL;
    for (size_t k = 0; k < c->nhttp; k++) {
        const psk_entry_t *p = &c->psk[c->http[k]];
        uint8_t diff = 0;
        for (size_t i = 0; i < sizeof h; i++)
            diff |= (uint8_t)(h[i] ^ p->http_hash[i]);
        /* no early exit: every entry costs the same */
        found = diff == 0 ? p : found;
    }
    if (!found || strlen(found->identity) >= cap)
        return TETHER_ENOTFOUND;
    strcpy(identity, found->identity);
    return 0;
}

int tether_creds_load(const char *path, tether_creds_t **out, char *err, size_t errcap)
{
    json_error_t jerr;
    tether_creds_t *c = NULL;
    int rc = TETHER_ECONFIG;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* Without jansson's " near '<token>'": the token may be a key
         * string cut short, and this message is logged. */
        const char *near = strstr(jerr.text, " near ");
        snprintf(err, errcap, "%s:%d:%d: %.*s", path, jerr.line, jerr.column,
                 near ? (int)(near - jerr.text) : (int)strlen(jerr.text), jerr.text);
        return TETHER_ECONFIG;
    }
    json_t *psk = json_object_get(root, "psk");
    json_t *der = json_object_get(root, "psk_derived");
    if (!json_is_object(root) || (psk && !json_is_array(psk)) || (der && !json_is_array(der))) {
        snprintf(err, errcap, "%s: expected {\"psk\": [...], \"psk_derived\": [...]}", path);
        goto fail;
    }
    c = creds_new(psk ? json_array_size(psk) : 0);
    if (!c ||
        (psk && json_array_size(psk) && !(c->psk = calloc(json_array_size(psk), sizeof *c->psk))) ||
        (der && json_array_size(der) &&
         !(c->derived = calloc(json_array_size(der), sizeof *c->derived)))) {
        rc = TETHER_ENOMEM;
        goto fail;
    }
    size_t i;
    json_t *e;
    json_array_foreach(psk, i, e)
    {
        psk_entry_t *p = &c->psk[c->npsk];
        const char *id = json_string_value(json_object_get(e, "identity"));
        const char *key = json_string_value(json_object_get(e, "key_hex"));
        if (!id || !*id || strlen(id) >= sizeof p->identity) {
            snprintf(err, errcap, "%s: psk[%zu]: missing or too long \"identity\"", path, i);
            goto fail;
        }
        if (!key || unhex(key, p->key, sizeof p->key, &p->key_len) < 0) {
            snprintf(err, errcap, "%s: psk[%zu] (%s): \"key_hex\" must be 1..%d bytes of hex", path,
                     i, id, TETHER_PSK_MAX);
            goto fail;
        }
        if (parse_role(json_object_get(e, "role"), &p->role) < 0) {
            snprintf(err, errcap, "%s: psk[%zu] (%s): \"role\" must be device or client", path, i,
                     id);
            goto fail;
        }
        uint8_t dg[ID_DIGEST_LEN];
        id_digest(id, dg);
        if (tether_hmap_find(&c->psk_by_id, dg, sizeof dg)) {
            snprintf(err, errcap, "%s: psk[%zu]: identity %s appears twice", path, i, id);
            goto fail;
        }
        strcpy(p->identity, id);
        if ((rc = psk_tag(p)) < 0 ||
            (rc = tether_hmap_insert(&c->psk_by_id, &p->by_id, dg, sizeof dg)) < 0)
            goto fail;
        c->npsk++;
        if ((rc = parse_acl(json_object_get(e, "allow"), &p->acl, path, id, err, errcap)) < 0)
            goto fail;
        rc = TETHER_ECONFIG;
        if (parse_http_token(e, p, path, i, err, errcap) < 0)
            goto fail;
    }
    json_array_foreach(der, i, e)
    {
        derived_entry_t *d = &c->derived[c->nderived];
        const char *pre = json_string_value(json_object_get(e, "identity_prefix"));
        const char *m = json_string_value(json_object_get(e, "master_hex"));
        if (!pre || strlen(pre) >= sizeof d->prefix) {
            snprintf(err, errcap, "%s: psk_derived[%zu]: missing \"identity_prefix\"", path, i);
            goto fail;
        }
        if (!m || unhex(m, d->master, sizeof d->master, &d->master_len) < 0) {
            snprintf(err, errcap, "%s: psk_derived[%zu]: \"master_hex\" must be 1..64 bytes of hex",
                     path, i);
            goto fail;
        }
        if (parse_role(json_object_get(e, "role"), &d->role) < 0) {
            snprintf(err, errcap, "%s: psk_derived[%zu]: \"role\" must be device or client", path,
                     i);
            goto fail;
        }
        strcpy(d->prefix, pre);
        if ((rc = derived_tag(d)) < 0)
            goto fail;
        c->nderived++;
        if ((rc = parse_acl(json_object_get(e, "allow"), &d->acl, path, pre, err, errcap)) < 0)
            goto fail;
        rc = TETHER_ECONFIG;
    }
    if ((rc = load_x509(c, root, path, err, errcap)) < 0)
        goto fail;
    if ((rc = index_http(c)) < 0)
        goto fail;
    json_decref(root);
    *out = c;
    return 0;
fail:
    json_decref(root);
    tether_creds_free(c);
    return rc;
}

static const psk_entry_t *find_psk(const tether_creds_t *c, const char *identity)
{
    uint8_t dg[ID_DIGEST_LEN];
    if (!c->npsk)
        return NULL;
    id_digest(identity, dg);
    tether_hnode_t *n = tether_hmap_find(&c->psk_by_id, dg, sizeof dg);
    if (!n)
        return NULL;
    const psk_entry_t *p = container_of(n, psk_entry_t, by_id);
    return strcmp(p->identity, identity) == 0 ? p : NULL;
}

/* The derived entry with the longest prefix of `identity`, or NULL. */
static const derived_entry_t *find_derived(const tether_creds_t *c, const char *identity)
{
    const derived_entry_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < c->nderived; i++) {
        size_t pl = strlen(c->derived[i].prefix);
        if (strncmp(identity, c->derived[i].prefix, pl) == 0 && (!best || pl > best_len)) {
            best = &c->derived[i];
            best_len = pl;
        }
    }
    return best;
}

static bool acl_allows(const tether_creds_t *c, const char *identity, const char *target,
                       uint8_t method, bool group)
{
    const psk_entry_t *p = find_psk(c, identity);
    const derived_entry_t *d = p ? NULL : find_derived(c, identity);
    const acl_t *acl = p ? &p->acl : d ? &d->acl : NULL;
    if (!acl || method == 0 || method > 7)
        return false;
    for (size_t i = 0; i < acl->n; i++)
        if (acl->rules[i].group == group && (acl->rules[i].methods & (1u << method)) &&
            fnmatch(acl->rules[i].pattern, target, FNM_NOESCAPE) == 0)
            return true;
    return false;
}

bool tether_creds_allowed(const tether_creds_t *c, const char *identity, const char *target,
                          uint8_t method)
{
    return acl_allows(c, identity, target, method, false);
}

bool tether_creds_allowed_group(const tether_creds_t *c, const char *identity, const char *group,
                                uint8_t method)
{
    return acl_allows(c, identity, group, method, true);
}

int tether_creds_role(const tether_creds_t *c, const char *identity, tether_role_t *role)
{
    const psk_entry_t *p = find_psk(c, identity);
    const derived_entry_t *d = p ? NULL : find_derived(c, identity);
    if (!p && !d)
        return TETHER_ENOTFOUND;
    *role = p ? p->role : d->role;
    return 0;
}

int tether_creds_key_tag(const tether_creds_t *c, const char *identity, uint64_t *tag)
{
    const psk_entry_t *p = find_psk(c, identity);
    const derived_entry_t *d = p ? NULL : find_derived(c, identity);
    if (!p && !d)
        return TETHER_ENOTFOUND;
    *tag = p ? p->tag : d->tag;
    return 0;
}

int tether_creds_psk(const tether_creds_t *c, const char *identity, uint8_t *key, size_t cap,
                     size_t *key_len, tether_role_t *role)
{
    const psk_entry_t *p = find_psk(c, identity);
    if (p) {
        if (p->key_len > cap)
            return TETHER_ENOSPC;
        memcpy(key, p->key, p->key_len);
        *key_len = p->key_len;
        *role = p->role;
        return 0;
    }
    const derived_entry_t *best = find_derived(c, identity);
    if (!best)
        return TETHER_ENOTFOUND;
    if (cap < WC_SHA256_DIGEST_SIZE)
        return TETHER_ENOSPC;
    int rc = tether_creds_derive_psk(best->master, best->master_len, identity, key);
    if (rc < 0)
        return rc;
    *key_len = WC_SHA256_DIGEST_SIZE;
    *role = best->role;
    return 0;
}

int tether_creds_derive_psk(const uint8_t *master, size_t master_len, const char *identity,
                            uint8_t key[TETHER_DERIVED_PSK_LEN])
{
    Hmac h;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return TETHER_ECRYPTO;
    int rc = 0;
    if (wc_HmacSetKey(&h, WC_SHA256, master, (word32)master_len) != 0 ||
        wc_HmacUpdate(&h, (const byte *)identity, (word32)strlen(identity)) != 0 ||
        wc_HmacFinal(&h, key) != 0)
        rc = TETHER_ECRYPTO;
    wc_HmacFree(&h);
    return rc;
}

int tether_creds_key_from_hex(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
    return unhex(hex, out, cap, len);
}

size_t tether_creds_count(const tether_creds_t *c)
{
    return c->npsk + c->nderived;
}

/* ---- overlay (credentials from values) ---------------------------------------------- */

static int acl_copy(acl_t *dst, const allow_t *rules, size_t n)
{
    dst->n = 0;
    dst->rules = NULL;
    if (!n)
        return 0;
    if (!(dst->rules = malloc(n * sizeof *rules)))
        return TETHER_ENOMEM;
    memcpy(dst->rules, rules, n * sizeof *rules);
    dst->n = n;
    return 0;
}

static bool extra_names(const tether_creds_entry_t *extra, size_t n, bool derived, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (extra[i].derived == derived && strcmp(extra[i].identity, id) == 0)
            return true;
    return false;
}

/* Adds one explicit identity to c (arrays sized by the caller). */
static int add_psk(tether_creds_t *c, const char *id, const uint8_t *key, size_t kl,
                   tether_role_t role, const allow_t *rules, size_t nrules, const uint8_t *http)
{
    psk_entry_t *p = &c->psk[c->npsk];
    uint8_t dg[ID_DIGEST_LEN];
    if (!*id || strlen(id) >= sizeof p->identity || !kl || kl > sizeof p->key)
        return TETHER_EINVAL;
    id_digest(id, dg);
    if (tether_hmap_find(&c->psk_by_id, dg, sizeof dg))
        return TETHER_EINVAL;
    strcpy(p->identity, id);
    memcpy(p->key, key, kl);
    p->key_len = kl;
    p->role = role;
    if ((p->has_http = http != NULL))
        memcpy(p->http_hash, http, sizeof p->http_hash);
    int rc = psk_tag(p);
    if (rc < 0)
        return rc;
    if (tether_hmap_insert(&c->psk_by_id, &p->by_id, dg, sizeof dg) < 0)
        return TETHER_ENOMEM;
    c->npsk++;
    return acl_copy(&p->acl, rules, nrules);
}

static int add_derived(tether_creds_t *c, const char *prefix, const uint8_t *master, size_t ml,
                       tether_role_t role, const allow_t *rules, size_t nrules)
{
    derived_entry_t *d = &c->derived[c->nderived];
    if (strlen(prefix) >= sizeof d->prefix || !ml || ml > sizeof d->master)
        return TETHER_EINVAL;
    strcpy(d->prefix, prefix);
    memcpy(d->master, master, ml);
    d->master_len = ml;
    d->role = role;
    int rc = derived_tag(d);
    if (rc < 0)
        return rc;
    c->nderived++;
    return acl_copy(&d->acl, rules, nrules);
}

/* The HTTP token hash an overlaid explicit entry gets: its own, else the
 * one the base (file) entry of that identity had (tokens live in the file). */
static const uint8_t *overlay_http(const tether_creds_t *base, const tether_creds_entry_t *e)
{
    if (e->http_token_sha256)
        return e->http_token_sha256;
    const psk_entry_t *p = find_psk(base, e->identity);
    return p && p->has_http && e->role == TETHER_ROLE_CLIENT ? p->http_hash : NULL;
}

int tether_creds_overlay(const tether_creds_t *base, const tether_creds_entry_t *extra, size_t n,
                         tether_creds_t **out)
{
    size_t np = base->npsk, nd = base->nderived;
    for (size_t i = 0; i < n; i++) {
        np += !extra[i].derived;
        nd += extra[i].derived;
    }
    int rc = TETHER_ENOMEM;
    tether_creds_t *c = creds_new(np);
    if (!c || (np && !(c->psk = calloc(np, sizeof *c->psk))) ||
        (nd && !(c->derived = calloc(nd, sizeof *c->derived))) ||
        (base->nx509 && !(c->x509 = calloc(base->nx509, sizeof *c->x509))))
        goto fail;
    if (base->nx509)
        memcpy(c->x509, base->x509, base->nx509 * sizeof *c->x509);
    c->nx509 = base->nx509;
    for (size_t i = 0; i < base->npsk; i++) {
        const psk_entry_t *p = &base->psk[i];
        if (!extra_names(extra, n, false, p->identity) &&
            (rc = add_psk(c, p->identity, p->key, p->key_len, p->role, p->acl.rules, p->acl.n,
                          p->has_http ? p->http_hash : NULL)) < 0)
            goto fail;
    }
    for (size_t i = 0; i < base->nderived; i++) {
        const derived_entry_t *d = &base->derived[i];
        if (!extra_names(extra, n, true, d->prefix) &&
            (rc = add_derived(c, d->prefix, d->master, d->master_len, d->role, d->acl.rules,
                              d->acl.n)) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const tether_creds_entry_t *e = &extra[i];
        rc = e->derived
                 ? add_derived(c, e->identity, e->key, e->key_len, e->role, e->rules, e->nrules)
                 : add_psk(c, e->identity, e->key, e->key_len, e->role, e->rules, e->nrules,
                           overlay_http(base, e));
        if (rc < 0)
            goto fail;
    }
    if ((rc = index_http(c)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    tether_creds_free(c);
    return rc;
}

int tether_creds_x509(const tether_creds_t *c, const char *cn, tether_role_t *role)
{
    const x509_entry_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < c->nx509; i++) {
        const x509_entry_t *x = &c->x509[i];
        size_t n = strlen(x->name);
        if (!x->prefix && strcmp(cn, x->name) == 0) {
            *role = x->role;
            return 0;
        }
        if (x->prefix && strncmp(cn, x->name, n) == 0 && (!best || n > best_len)) {
            best = x;
            best_len = n;
        }
    }
    if (!best)
        return TETHER_ENOTFOUND;
    *role = best->role;
    return 0;
}
