/* Credentials file loading and PSK lookup. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/creds.h"

typedef struct {
    char identity[TETHER_IDENTITY_MAX];
    uint8_t key[TETHER_PSK_MAX];
    size_t key_len;
    tether_role_t role;
} psk_entry_t;

typedef struct {
    char prefix[TETHER_IDENTITY_MAX];
    uint8_t master[64];
    size_t master_len;
    tether_role_t role;
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
    derived_entry_t *derived;
    size_t nderived;
    x509_entry_t *x509;
    size_t nx509;
};

int tether_creds_empty(tether_creds_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : TETHER_ENOMEM;
}

void tether_creds_free(tether_creds_t *c)
{
    if (!c)
        return;
    if (c->psk)
        memset(c->psk, 0, c->npsk * sizeof *c->psk);
    if (c->derived)
        memset(c->derived, 0, c->nderived * sizeof *c->derived);
    free(c->psk);
    free(c->derived);
    free(c->x509);
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
            snprintf(err, errcap, "%s: x509[%zu] (%s): \"role\" must be device or client", path,
                     i, name);
            return TETHER_ECONFIG;
        }
        strcpy(x->name, name);
        x->prefix = pre != NULL;
        c->nx509++;
    }
    return 0;
}

int tether_creds_load(const char *path, tether_creds_t **out, char *err, size_t errcap)
{
    json_error_t jerr;
    tether_creds_t *c = NULL;
    int rc = TETHER_ECONFIG;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errcap, "%s:%d: %s", path, jerr.line, jerr.text);
        return TETHER_ECONFIG;
    }
    json_t *psk = json_object_get(root, "psk");
    json_t *der = json_object_get(root, "psk_derived");
    if (!json_is_object(root) || (psk && !json_is_array(psk)) || (der && !json_is_array(der))) {
        snprintf(err, errcap, "%s: expected {\"psk\": [...], \"psk_derived\": [...]}", path);
        goto fail;
    }
    c = calloc(1, sizeof *c);
    if (!c || (psk && json_array_size(psk) &&
               !(c->psk = calloc(json_array_size(psk), sizeof *c->psk))) ||
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
            snprintf(err, errcap, "%s: psk[%zu] (%s): \"key_hex\" must be 1..%d bytes of hex",
                     path, i, id, TETHER_PSK_MAX);
            goto fail;
        }
        if (parse_role(json_object_get(e, "role"), &p->role) < 0) {
            snprintf(err, errcap, "%s: psk[%zu] (%s): \"role\" must be device or client", path,
                     i, id);
            goto fail;
        }
        for (size_t k = 0; k < c->npsk; k++)
            if (strcmp(c->psk[k].identity, id) == 0) {
                snprintf(err, errcap, "%s: psk[%zu]: identity %s appears twice", path, i, id);
                goto fail;
            }
        strcpy(p->identity, id);
        c->npsk++;
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
            snprintf(err, errcap, "%s: psk_derived[%zu]: \"role\" must be device or client",
                     path, i);
            goto fail;
        }
        strcpy(d->prefix, pre);
        c->nderived++;
    }
    if ((rc = load_x509(c, root, path, err, errcap)) < 0)
        goto fail;
    json_decref(root);
    *out = c;
    return 0;
fail:
    json_decref(root);
    tether_creds_free(c);
    return rc;
}

int tether_creds_psk(const tether_creds_t *c, const char *identity, uint8_t *key, size_t cap,
                     size_t *key_len, tether_role_t *role)
{
    for (size_t i = 0; i < c->npsk; i++)
        if (strcmp(c->psk[i].identity, identity) == 0) {
            if (c->psk[i].key_len > cap)
                return TETHER_ENOSPC;
            memcpy(key, c->psk[i].key, c->psk[i].key_len);
            *key_len = c->psk[i].key_len;
            *role = c->psk[i].role;
            return 0;
        }
    const derived_entry_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < c->nderived; i++) {
        size_t pl = strlen(c->derived[i].prefix);
        if (strncmp(identity, c->derived[i].prefix, pl) == 0 && (!best || pl > best_len)) {
            best = &c->derived[i];
            best_len = pl;
        }
    }
    if (!best)
        return TETHER_ENOTFOUND;
    if (cap < WC_SHA256_DIGEST_SIZE)
        return TETHER_ENOSPC;
    Hmac h;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0 ||
        wc_HmacSetKey(&h, WC_SHA256, best->master, (word32)best->master_len) != 0 ||
        wc_HmacUpdate(&h, (const byte *)identity, (word32)strlen(identity)) != 0 ||
        wc_HmacFinal(&h, key) != 0) {
        wc_HmacFree(&h);
        return TETHER_ECRYPTO;
    }
    wc_HmacFree(&h);
    *key_len = WC_SHA256_DIGEST_SIZE;
    *role = best->role;
    return 0;
}

size_t tether_creds_count(const tether_creds_t *c) { return c->npsk + c->nderived; }

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
