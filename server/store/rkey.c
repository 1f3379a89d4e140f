/* Records in Redis: key names, values, JSON (see rkey.h). */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "rkey.h"
#include "tether/hostport.h"

static const struct {
    tether_store_kind_t kind;
    const char *prefix; /* up to the opening brace */
    int hex; /* 1: hex, 0: percent-encoded text, 2: node id, 3: {device} then hex (rkey.h) */
} layout[] = {
    {TETHER_STORE_DEVICE, "tether:dev:{", 0},       {TETHER_STORE_CRED, "tether:cred:{", 0},
    {TETHER_STORE_OBSERVE, "tether:obs:{", 3},      {TETHER_STORE_SESSION, "tether:sess:{", 1},
    {TETHER_STORE_NODE, "tether:{nodes}:node:", 2}, {TETHER_STORE_GROUP, "tether:grp:{", 0},
};
#define NLAYOUT (sizeof layout / sizeof layout[0])

static int plain(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-encodes key[len] into out (3 * len bytes at most); its length. */
static size_t pct(const uint8_t *key, size_t len, char *out)
{
    size_t o = 0;
    for (size_t k = 0; k < len; k++) {
        if (plain(key[k])) {
            out[o++] = (char)key[k];
        } else {
            snprintf(out + o, 4, "%%%02X", key[k]);
            o += 3;
        }
    }
    return o;
}

/* One spelling per key name: hex keys are written in lower case
 * (tetherd_hex), percent escapes in upper case, and a key name is read
 * only in that case, so two names never stand for one record. */
static int hexval_as_written(char c, int upper)
{
    return c >= '0' && c <= '9' ? c - '0'
           : upper              ? (c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1)
                                : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
}

void tetherd_hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

int tetherd_rkey_name(tether_store_kind_t kind, const uint8_t *key, size_t len, char *out,
                      size_t cap)
{
    size_t i = 0;
    while (i < NLAYOUT && layout[i].kind != kind)
        i++;
    if (i == NLAYOUT || !len || len > TETHER_STORE_KEY_MAX)
        return TETHER_EINVAL;
    size_t o = strlen(layout[i].prefix);
    if (cap < o + 3 * len + 2)
        return TETHER_ENOSPC;
    memcpy(out, layout[i].prefix, o);
    if (layout[i].hex == 3) {
        /* An observed resource: the cache key starts with the device's
         * name (length byte, name); the name is the hash tag, so all of a
         * device's keys share a slot. */
        if (!key[0] || (size_t)key[0] + 1 > len || cap < o + 3 * key[0] + 2 * len + 2)
            return TETHER_EINVAL;
        o += pct(key + 1, key[0], out + o);
        out[o++] = '}';
        tetherd_hex(key, len, out + o);
        return 0;
    }
    if (layout[i].hex == 2) {
        if (len != 1 || !key[0])
            return TETHER_EINVAL;
        snprintf(out + o, cap - o, "%u", key[0]);
        return 0;
    }
    if (layout[i].hex) {
        tetherd_hex(key, len, out + o);
        o += 2 * len;
    } else {
        o += pct(key, len, out + o);
    }
    out[o++] = '}';
    out[o] = 0;
    return 0;
}

int tetherd_rkey_parse(const char *name, size_t len, tether_store_kind_t *kind, uint8_t *key,
                       size_t cap, size_t *key_len)
{
    for (size_t i = 0; i < NLAYOUT; i++) {
        size_t pl = strlen(layout[i].prefix);
        if (len <= pl || memcmp(name, layout[i].prefix, pl) != 0)
            continue;
        const char *p = name + pl, *end = name + len;
        size_t n = 0;
        if (layout[i].hex == 2) {
            unsigned v = 0;
            for (; p < end; p++) {
                if (*p < '0' || *p > '9' || (v = v * 10 + (unsigned)(*p - '0')) > 255)
                    return TETHER_EINVAL;
            }
            if (!v || !cap || (name[pl] == '0'))
                return TETHER_EINVAL;
            key[0] = (uint8_t)v;
            *kind = layout[i].kind;
            *key_len = 1;
            return 0;
        }
        if (layout[i].hex == 3) {
            /* {device} then the whole key in hex; the tag must be the
             * key's own device (one spelling per key). */
            const char *brace = memchr(p, '}', (size_t)(end - p));
            char want[3 * 255 + 1];
            if (!brace || (end - brace - 1) % 2 || end - brace - 1 < 4 ||
                (size_t)(end - brace - 1) / 2 > cap ||
                (size_t)(end - brace - 1) / 2 > TETHER_STORE_KEY_MAX)
                return TETHER_EINVAL;
            for (const char *q = brace + 1; q < end; q += 2) {
                int h = hexval_as_written(q[0], 0), l = hexval_as_written(q[1], 0);
                if (h < 0 || l < 0)
                    return TETHER_EINVAL;
                key[n++] = (uint8_t)(h << 4 | l);
            }
            if (!key[0] || (size_t)key[0] + 1 > n ||
                pct(key + 1, key[0], want) != (size_t)(brace - p) ||
                memcmp(want, p, (size_t)(brace - p)) != 0)
                return TETHER_EINVAL;
            *kind = layout[i].kind;
            *key_len = n;
            return 0;
        }
        if (end[-1] != '}')
            return TETHER_EINVAL;
        end--;
        while (p < end) {
            int c;
            if (layout[i].hex) {
                int h, l;
                if (end - p < 2 || (h = hexval_as_written(p[0], 0)) < 0 ||
                    (l = hexval_as_written(p[1], 0)) < 0)
                    return TETHER_EINVAL;
                c = h << 4 | l;
                p += 2;
            } else if (*p == '%') {
                int h, l;
                if (end - p < 3 || (h = hexval_as_written(p[1], 1)) < 0 ||
                    (l = hexval_as_written(p[2], 1)) < 0)
                    return TETHER_EINVAL;
                c = h << 4 | l;
                if (plain((uint8_t)c))
                    return TETHER_EINVAL; /* one spelling per key */
                p += 3;
            } else if (plain((uint8_t)*p)) {
                c = (uint8_t)*p++;
            } else {
                return TETHER_EINVAL;
            }
            if (n >= cap || n >= TETHER_STORE_KEY_MAX)
                return TETHER_EINVAL;
            key[n++] = (uint8_t)c;
        }
        if (!n)
            return TETHER_EINVAL;
        *kind = layout[i].kind;
        *key_len = n;
        return 0;
    }
    return TETHER_EINVAL;
}

int tetherd_rval_split(const char *val, size_t len, uint64_t *version, const char **json,
                       size_t *json_len)
{
    uint64_t v = 0;
    size_t i = 0;
    /* At most 19 digits: every such number fits in 64 bits, so a value
     * written by someone else cannot wrap to an old version. */
    while (i < len && i < 19 && val[i] >= '0' && val[i] <= '9')
        v = v * 10 + (uint64_t)(val[i++] - '0');
    if (!i || i >= len || val[i] != ' ' || !v)
        return TETHER_EPROTO;
    *version = v;
    *json = val + i + 1;
    *json_len = len - i - 1;
    return 0;
}

/* ---- JSON helpers ------------------------------------------------------------- */

static json_t *jhex(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    tetherd_hex(p, n, s);
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* Decodes hex member into out[cap]; TETHER_EPROTO when not hex or too long. */
static int unhex(json_t *j, uint8_t *out, size_t cap, size_t *len)
{
    const char *s = json_string_value(j);
    size_t n = s ? json_string_length(j) : 1;
    if (!s || n % 2 || n / 2 > cap)
        return TETHER_EPROTO;
    for (size_t i = 0; i < n / 2; i++) {
        int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
        if (h < 0 || l < 0)
            return TETHER_EPROTO;
        out[i] = (uint8_t)(h << 4 | l);
    }
    *len = n / 2;
    return 0;
}

static json_t *jaddr(const tether_addr_t *a)
{
    char buf[80];
    if (!a->len)
        return json_string("");
    return json_string(tether_addr_str(a, buf, sizeof buf));
}

int tetherd_addr_parse(const char *s, tether_addr_t *a)
{
    char host[64];
    uint16_t port;
    memset(a, 0, sizeof *a);
    if (!*s)
        return 0;
    if (tether_hostport_split(s, host, sizeof host, &port) < 0)
        return TETHER_EPROTO;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a->len = sizeof *v6;
    } else {
        return TETHER_EPROTO;
    }
    return 0;
}

/* AAD of a sealed credential key: "RKEY\nVERSION\nDIGEST", DIGEST the hex
 * SHA-256 of what the record says about the key's use: identity, derived,
 * role and every ACL rule in order (length-prefixed, so no two lists
 * hash alike). The key is then bound to the record's whole meaning, not
 * only to its place: a writer to Redis without cluster_key can neither
 * read a key nor turn a device's record into a client's, widen its ACL or
 * make a fleet master of it (SPEC S5, S10). */
static size_t cred_aad(const char *rkey, uint64_t version, const tether_store_cred_t *c, char *out,
                       size_t cap)
{
    wc_Sha256 h;
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    uint8_t hdr[4] = {(uint8_t)c->derived, (uint8_t)c->role, (uint8_t)(c->nallow >> 8),
                      (uint8_t)c->nallow};
    size_t il = strnlen(c->identity, sizeof c->identity);
    uint8_t ilb = (uint8_t)il;
    if (wc_InitSha256(&h) != 0)
        return 0;
    int bad = wc_Sha256Update(&h, &ilb, 1) ||
              wc_Sha256Update(&h, (const byte *)c->identity, (word32)il) ||
              wc_Sha256Update(&h, hdr, sizeof hdr);
    for (size_t i = 0; !bad && i < c->nallow; i++) {
        size_t pl = strnlen(c->allow[i].pattern, sizeof c->allow[i].pattern);
        /* a "groups" rule adds a byte (a "devices" rule's digest input is
         * as it always was); the length before the pattern keeps the two
         * forms apart */
        uint8_t r[3] = {(uint8_t)pl, c->allow[i].methods, 1};
        bad = wc_Sha256Update(&h, r, c->allow[i].group ? 3 : 2) ||
              wc_Sha256Update(&h, (const byte *)c->allow[i].pattern, (word32)pl);
    }
    bad = bad || wc_Sha256Final(&h, d);
    wc_Sha256Free(&h);
    if (bad)
        return 0;
    char hex[2 * sizeof d + 1];
    tetherd_hex(d, sizeof d, hex);
    int n = snprintf(out, cap, "%s\n%llu\n%s", rkey, (unsigned long long)version, hex);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ---- encode ------------------------------------------------------------------ */

static json_t *enc_cred(const tether_store_cred_t *c, const tetherd_wrap_t *w, const char *rkey,
                        uint64_t version)
{
    char aad[TETHERD_RKEY_MAX + 96];
    size_t al = cred_aad(rkey, version, c, aad, sizeof aad);
    uint8_t sealed[sizeof c->key + TETHERD_WRAP_OVERHEAD];
    size_t sl;
    if (!al || c->key_len > sizeof c->key ||
        tetherd_wrap_seal(w, (const uint8_t *)aad, al, c->key, c->key_len, sealed, sizeof sealed,
                          &sl) < 0)
        return NULL;
    json_t *allow = json_array();
    for (size_t i = 0; allow && i < c->nallow; i++)
        json_array_append_new(
            allow,
            c->allow[i].group
                ? json_pack("[s,i,b]", c->allow[i].pattern, (json_int_t)c->allow[i].methods, 1)
                : json_pack("[s,i]", c->allow[i].pattern, (json_int_t)c->allow[i].methods));
    return json_pack("{s:s, s:b, s:i, s:o, s:o*}", "id", c->identity, "derived", (int)c->derived,
                     "role", (int)c->role, "key", jhex(sealed, sl), "allow", allow);
}

int tetherd_rrec_encode(const tether_store_rec_t *rec, const tetherd_wrap_t *w, const char *rkey,
                        uint64_t version, char **out)
{
    json_t *j = NULL;
    switch (rec->kind) {
    case TETHER_STORE_DEVICE: {
        const tether_store_device_t *d = &rec->u.device;
        j = json_pack("{s:s, s:s, s:i, s:o, s:o, s:I, s:b, s:I, s:s%, s:s%}", "name", d->name,
                      "regid", d->regid, "node", (int)d->node_id, "cid", jhex(d->cid, d->cid_len),
                      "addr", jaddr(&d->addr), "lt", (json_int_t)d->lifetime_s, "q",
                      (int)d->queue_mode, "seen", (json_int_t)d->last_seen_s, "links",
                      d->links ? d->links : "", d->links ? d->links_len : 0, "groups",
                      d->groups ? d->groups : "", d->groups ? d->groups_len : 0);
        break;
    }
    case TETHER_STORE_CRED:
        if (!w || !w->ready)
            return TETHER_ECRYPTO;
        j = enc_cred(&rec->u.cred, w, rkey, version);
        break;
    case TETHER_STORE_OBSERVE: {
        const tether_store_observe_t *o = &rec->u.observe;
        json_t *obs = json_array();
        for (size_t i = 0; obs && i < o->nobservers; i++) {
            const tether_store_observer_t *x = &o->observers[i];
            json_array_append_new(obs,
                                  json_pack("[i,o,o]", (int)x->node_id, jhex(x->link, x->link_len),
                                            jhex(x->token, x->tkl)));
        }
        j = json_pack("{s:o, s:s, s:o, s:o*}", "key", jhex(o->key, o->key_len), "dev", o->device,
                      "utok", jhex(o->utok, o->utok_len), "obs", obs);
        break;
    }
    case TETHER_STORE_SESSION: {
        const tether_store_session_t *s = &rec->u.session;
        j = json_pack("{s:o, s:i, s:I, s:I, s:o}", "cid", jhex(s->cid, s->cid_len), "node",
                      (int)s->node_id, "gen", (json_int_t)s->generation, "ceil",
                      (json_int_t)s->seq_ceiling, "blob", jhex(s->blob, s->blob_len));
        break;
    }
    case TETHER_STORE_NODE: {
        const tether_store_node_t *n = &rec->u.node;
        j = json_pack("{s:i, s:o, s:I, s:i, s:b}", "node", (int)n->node_id, "addr",
                      jaddr(&n->addr), "gen", (json_int_t)n->generation, "by", (int)n->adopted_by,
                      "ho", (int)n->handover);
        break;
    }
    case TETHER_STORE_GROUP: {
        const tether_store_group_t *g = &rec->u.group;
        json_t *m = json_array();
        const char *p = g->members;
        for (size_t i = 0; m && i < g->nmembers; i++, p += strlen(p) + 1)
            json_array_append_new(m, json_string(p));
        j = json_pack("{s:s, s:s, s:o*}", "name", g->name, "pattern", g->pattern, "members", m);
        break;
    }
    default: return TETHER_EINVAL;
    }
    if (!j)
        return rec->kind == TETHER_STORE_CRED ? TETHER_ECRYPTO : TETHER_ENOMEM;
    *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *out ? 0 : TETHER_ENOMEM;
}

/* ---- decode ------------------------------------------------------------------ */

static int get_uint(json_t *o, const char *k, uint64_t max, uint64_t *v)
{
    json_t *j = json_object_get(o, k);
    if (!json_is_integer(j) || json_integer_value(j) < 0 || (uint64_t)json_integer_value(j) > max)
        return TETHER_EPROTO;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

static int get_str(json_t *o, const char *k, char *out, size_t cap)
{
    json_t *j = json_object_get(o, k);
    const char *s = json_string_value(j);
    if (!s || json_string_length(j) >= cap || strlen(s) != json_string_length(j))
        return TETHER_EPROTO;
    memcpy(out, s, json_string_length(j) + 1);
    return 0;
}

static int dec_device(json_t *j, tetherd_rrec_t *r)
{
    tether_store_device_t *d = &r->rec.u.device;
    uint64_t v;
    size_t n;
    json_t *links = json_object_get(j, "links"), *groups = json_object_get(j, "groups");
    const char *addr = json_string_value(json_object_get(j, "addr"));
    if (get_str(j, "name", d->name, sizeof d->name) < 0 || !d->name[0] ||
        get_str(j, "regid", d->regid, sizeof d->regid) < 0 || get_uint(j, "node", 255, &v) < 0)
        return TETHER_EPROTO;
    d->node_id = (uint8_t)v;
    if (unhex(json_object_get(j, "cid"), d->cid, sizeof d->cid, &n) < 0 || !addr ||
        tetherd_addr_parse(addr, &d->addr) < 0)
        return TETHER_EPROTO;
    d->cid_len = (uint8_t)n;
    if (get_uint(j, "lt", UINT32_MAX, &v) < 0)
        return TETHER_EPROTO;
    d->lifetime_s = (uint32_t)v;
    if (!json_is_boolean(json_object_get(j, "q")) || get_uint(j, "seen", INT64_MAX, &v) < 0 ||
        !json_is_string(links) || !json_is_string(groups))
        return TETHER_EPROTO;
    d->queue_mode = json_is_true(json_object_get(j, "q"));
    d->last_seen_s = v;
    size_t ll = json_string_length(links), gl = json_string_length(groups);
    char *a = r->arena = malloc(ll + gl + 2);
    if (!a)
        return TETHER_ENOMEM;
    memcpy(a, json_string_value(links), ll + 1);
    memcpy(a + ll + 1, json_string_value(groups), gl + 1);
    d->links = a;
    d->links_len = ll;
    d->groups = a + ll + 1;
    d->groups_len = gl;
    return 0;
}

static int dec_cred(json_t *j, const tetherd_wrap_t *w, const char *rkey, uint64_t version,
                    tetherd_rrec_t *r)
{
    tether_store_cred_t *c = &r->rec.u.cred;
    uint64_t role;
    uint8_t sealed[sizeof c->key + TETHERD_WRAP_OVERHEAD];
    size_t sl, kl;
    json_t *allow = json_object_get(j, "allow");
    if (!w || !w->ready)
        return TETHER_ECRYPTO;
    if (get_str(j, "id", c->identity, sizeof c->identity) < 0 || !c->identity[0] ||
        !json_is_boolean(json_object_get(j, "derived")) || get_uint(j, "role", 1, &role) < 0 ||
        unhex(json_object_get(j, "key"), sealed, sizeof sealed, &sl) < 0 || !json_is_array(allow) ||
        json_array_size(allow) > 256)
        return TETHER_EPROTO;
    c->derived = json_is_true(json_object_get(j, "derived"));
    c->role = role ? TETHER_ROLE_CLIENT : TETHER_ROLE_DEVICE;
    size_t na = json_array_size(allow);
    tether_store_allow_t *rules = r->arena = calloc(na ? na : 1, sizeof *rules);
    if (!rules)
        return TETHER_ENOMEM;
    for (size_t i = 0; i < na; i++) {
        /* [pattern, methods] or, for a "groups" rule, [pattern, methods, true] */
        json_t *e = json_array_get(allow, i), *p = json_array_get(e, 0), *m = json_array_get(e, 1);
        json_t *g = json_array_get(e, 2);
        if (json_array_size(e) < 2 || json_array_size(e) > 3 || (g && !json_is_true(g)) ||
            !json_is_string(p) || !json_is_integer(m) || json_string_length(p) == 0 ||
            json_string_length(p) >= sizeof rules[i].pattern ||
            strlen(json_string_value(p)) != json_string_length(p) || json_integer_value(m) < 0 ||
            json_integer_value(m) > 255)
            return TETHER_EPROTO;
        memcpy(rules[i].pattern, json_string_value(p), json_string_length(p) + 1);
        rules[i].methods = (uint8_t)json_integer_value(m);
        rules[i].group = g != NULL;
    }
    c->allow = rules;
    c->nallow = na;
    /* Last, over everything the record says (cred_aad): a member changed
     * in Redis makes the key fail to open. */
    char aad[TETHERD_RKEY_MAX + 96];
    size_t al = cred_aad(rkey, version, c, aad, sizeof aad);
    if (!al ||
        tetherd_wrap_open(w, (const uint8_t *)aad, al, sealed, sl, c->key, sizeof c->key, &kl) <
            0 ||
        !kl)
        return TETHER_EPROTO;
    c->key_len = (uint8_t)kl;
    return 0;
}

static int dec_observe(json_t *j, tetherd_rrec_t *r)
{
    tether_store_observe_t *o = &r->rec.u.observe;
    json_t *obs = json_object_get(j, "obs"), *key = json_object_get(j, "key");
    size_t n;
    if (!json_is_array(obs) || !json_is_string(key) ||
        get_str(j, "dev", o->device, sizeof o->device) < 0 ||
        unhex(json_object_get(j, "utok"), o->utok, sizeof o->utok, &n) < 0)
        return TETHER_EPROTO;
    o->utok_len = (uint8_t)n;
    size_t no = json_array_size(obs), kmax = json_string_length(key) / 2;
    if (no > 65536 || kmax > TETHER_STORE_KEY_MAX || !kmax)
        return TETHER_EPROTO;
    uint8_t *a = r->arena = calloc(1, no * sizeof(tether_store_observer_t) + kmax);
    if (!a)
        return TETHER_ENOMEM;
    tether_store_observer_t *x = (tether_store_observer_t *)a;
    uint8_t *k = a + no * sizeof *x;
    if (unhex(key, k, kmax, &n) < 0)
        return TETHER_EPROTO;
    o->key = k;
    o->key_len = n;
    for (size_t i = 0; i < no; i++) {
        json_t *e = json_array_get(obs, i), *nid = json_array_get(e, 0);
        size_t ll, tl;
        if (json_array_size(e) != 3 || !json_is_integer(nid) || json_integer_value(nid) < 0 ||
            json_integer_value(nid) > 255 ||
            unhex(json_array_get(e, 1), x[i].link, sizeof x[i].link, &ll) < 0 ||
            unhex(json_array_get(e, 2), x[i].token, sizeof x[i].token, &tl) < 0)
            return TETHER_EPROTO;
        x[i].node_id = (uint8_t)json_integer_value(nid);
        x[i].link_len = (uint8_t)ll;
        x[i].tkl = (uint8_t)tl;
    }
    o->observers = x;
    o->nobservers = no;
    return 0;
}

static int dec_session(json_t *j, tetherd_rrec_t *r)
{
    tether_store_session_t *s = &r->rec.u.session;
    json_t *blob = json_object_get(j, "blob");
    uint64_t v;
    size_t n;
    if (unhex(json_object_get(j, "cid"), s->cid, sizeof s->cid, &n) < 0 || !n ||
        get_uint(j, "node", 255, &v) < 0 || !json_is_string(blob))
        return TETHER_EPROTO;
    s->cid_len = (uint8_t)n;
    s->node_id = (uint8_t)v;
    if (get_uint(j, "ceil", INT64_MAX, &s->seq_ceiling) < 0)
        return TETHER_EPROTO;
    /* "gen" came with failover; a record without it binds generation 0. */
    if (json_object_get(j, "gen") && get_uint(j, "gen", INT64_MAX, &s->generation) < 0)
        return TETHER_EPROTO;
    size_t bl = json_string_length(blob) / 2;
    uint8_t *a = r->arena = malloc(bl ? bl : 1);
    if (!a || unhex(blob, a, bl, &n) < 0)
        return a ? TETHER_EPROTO : TETHER_ENOMEM;
    s->blob = a;
    s->blob_len = n;
    return 0;
}

/* A group: names of 1..TETHER_IDENTITY_MAX-1 bytes without NUL, a pattern
 * or members (never both, never neither), packed as tether_store_group_t
 * says. */
static int dec_group(json_t *j, tetherd_rrec_t *r)
{
    tether_store_group_t *g = &r->rec.u.group;
    json_t *m = json_object_get(j, "members");
    size_t n = json_array_size(m), bytes = 0;
    if (get_str(j, "name", g->name, sizeof g->name) < 0 || !g->name[0] ||
        get_str(j, "pattern", g->pattern, sizeof g->pattern) < 0 || !json_is_array(m) ||
        !g->pattern[0] == !n)
        return TETHER_EPROTO;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(m, i);
        const char *s = json_string_value(e);
        size_t l = s ? json_string_length(e) : 0;
        if (!l || l >= TETHER_IDENTITY_MAX || strlen(s) != l)
            return TETHER_EPROTO;
        bytes += l + 1;
    }
    char *a = r->arena = malloc(bytes ? bytes : 1);
    if (!a)
        return TETHER_ENOMEM;
    g->members = a;
    g->members_len = bytes;
    g->nmembers = n;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(m, i);
        memcpy(a, json_string_value(e), json_string_length(e) + 1);
        a += json_string_length(e) + 1;
    }
    return 0;
}

static int dec_node(json_t *j, tetherd_rrec_t *r)
{
    tether_store_node_t *n = &r->rec.u.node;
    const char *addr = json_string_value(json_object_get(j, "addr"));
    uint64_t v;
    if (get_uint(j, "node", 255, &v) < 0 || !v || !addr || tetherd_addr_parse(addr, &n->addr) < 0 ||
        get_uint(j, "gen", INT64_MAX, &n->generation) < 0)
        return TETHER_EPROTO;
    n->node_id = (uint8_t)v;
    if (json_object_get(j, "by")) {
        if (get_uint(j, "by", 255, &v) < 0)
            return TETHER_EPROTO;
        n->adopted_by = (uint8_t)v;
    }
    json_t *ho = json_object_get(j, "ho");
    if (ho && !json_is_boolean(ho))
        return TETHER_EPROTO;
    n->handover = ho && json_is_true(ho);
    return 0;
}

int tetherd_rrec_decode(tether_store_kind_t kind, const char *json, size_t len,
                        const tetherd_wrap_t *w, const char *rkey, uint64_t version,
                        tetherd_rrec_t *out)
{
    memset(out, 0, sizeof *out);
    out->rec.kind = kind;
    json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = TETHER_EPROTO;
    if (!json_is_object(j))
        goto done;
    switch (kind) {
    case TETHER_STORE_DEVICE: rc = dec_device(j, out); break;
    case TETHER_STORE_CRED: rc = dec_cred(j, w, rkey, version, out); break;
    case TETHER_STORE_OBSERVE: rc = dec_observe(j, out); break;
    case TETHER_STORE_SESSION: rc = dec_session(j, out); break;
    case TETHER_STORE_NODE: rc = dec_node(j, out); break;
    case TETHER_STORE_GROUP: rc = dec_group(j, out); break;
    default: rc = TETHER_EINVAL; break;
    }
done:
    json_decref(j);
    return rc;
}

void tetherd_rrec_free(tetherd_rrec_t *r)
{
    if (r->rec.kind == TETHER_STORE_CRED)
        memset(&r->rec.u.cred.key, 0, sizeof r->rec.u.cred.key);
    free(r->arena);
    r->arena = NULL;
}
