/* Unit tests for lib/state/store.c and store_mem.c: the state-store
 * interface over the in-memory store: versions and compare-and-set,
 * deep copies, every record kind's key, ttl expiry with a stepped clock,
 * scans that survive updates and removals, change notification, bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tether/store.h"

/* The last completion, copied out of the callback. */
typedef struct {
    int calls, rc;
    uint64_t version, cursor;
    bool has_rec;
    tether_store_rec_t rec; /* variable parts not valid after the callback */
    char text[256];         /* device links, or the session blob */
} done_t;

static void on_done(void *user, const tether_store_result_t *res)
{
    done_t *d = user;
    d->calls++;
    d->rc = res->rc;
    d->version = res->version;
    d->cursor = res->cursor;
    d->has_rec = res->rec != NULL;
    d->text[0] = 0;
    if (!res->rec)
        return;
    d->rec = *res->rec;
    if (res->rec->kind == TETHER_STORE_DEVICE)
        snprintf(d->text, sizeof d->text, "%.*s", (int)res->rec->u.device.links_len,
                 res->rec->u.device.links);
    if (res->rec->kind == TETHER_STORE_SESSION)
        snprintf(d->text, sizeof d->text, "%.*s", (int)res->rec->u.session.blob_len,
                 (const char *)res->rec->u.session.blob);
}

typedef struct {
    int n;
    tether_store_kind_t kind;
    char key[64];
    uint64_t version;
} changes_t;

static void on_change(void *user, tether_store_kind_t kind, const uint8_t *key, size_t len,
                      uint64_t version)
{
    changes_t *c = user;
    c->n++;
    c->kind = kind;
    snprintf(c->key, sizeof c->key, "%.*s", (int)len, (const char *)key);
    c->version = version;
}

static tether_store_rec_t device(const char *name, const char *links)
{
    tether_store_rec_t r;
    memset(&r, 0, sizeof r);
    r.kind = TETHER_STORE_DEVICE;
    snprintf(r.u.device.name, sizeof r.u.device.name, "%s", name);
    snprintf(r.u.device.regid, sizeof r.u.device.regid, "1a");
    r.u.device.node_id = 1;
    r.u.device.lifetime_s = 60;
    r.u.device.links = links;
    r.u.device.links_len = strlen(links);
    return r;
}

static int get(tether_store_t *s, tether_store_kind_t kind, const char *key, tether_time_t now,
               done_t *d)
{
    return tether_store_get(s, kind, (const uint8_t *)key, strlen(key), now, on_done, d);
}

static void test_versions_and_cas(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    done_t d = {0};
    char links[] = "</temp>;obs";
    tether_store_rec_t r = device("dev1", links);
    /* expect 0: create only */
    assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.version, 1);
    assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, TETHER_ECONFLICT);
    assert_int_equal(d.version, 1); /* the current one */
    /* The record was copied: changing the caller's links changes nothing. */
    links[2] = 'X';
    get(s, TETHER_STORE_DEVICE, "dev1", 0, &d);
    assert_int_equal(d.rc, 0);
    assert_string_equal(d.text, "</temp>;obs");
    assert_string_equal(d.rec.u.device.regid, "1a");
    /* CAS on the version seen */
    r.u.device.lifetime_s = 120;
    assert_int_equal(tether_store_put(s, &r, 5, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, TETHER_ECONFLICT);
    assert_int_equal(tether_store_put(s, &r, 1, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.version, 2);
    assert_int_equal(tether_store_put(s, &r, TETHER_STORE_ANY, 0, 0, on_done, &d), 0);
    assert_int_equal(d.version, 3);
    get(s, TETHER_STORE_DEVICE, "dev1", 0, &d);
    assert_int_equal(d.rec.u.device.lifetime_s, 120);
    assert_string_equal(d.text, "</Xemp>;obs");
    /* delete with CAS */
    assert_int_equal(
        tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, 2, 0, on_done, &d), 0);
    assert_int_equal(d.rc, TETHER_ECONFLICT);
    assert_int_equal(
        tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, 3, 0, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    get(s, TETHER_STORE_DEVICE, "dev1", 0, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    assert_false(d.has_rec);
    assert_int_equal(tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4,
                                      TETHER_STORE_ANY, 0, on_done, &d),
                     0);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    /* A new record of the same key starts again at version 1. */
    assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(d.version, 1);
    tether_store_destroy(s);
}

static void test_kinds_and_keys(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    done_t d = {0};
    /* The same key bytes in two kinds are two records. */
    tether_store_rec_t dev = device("x", "");
    tether_store_rec_t cred;
    memset(&cred, 0, sizeof cred);
    cred.kind = TETHER_STORE_CRED;
    snprintf(cred.u.cred.identity, sizeof cred.u.cred.identity, "x");
    tether_store_allow_t allow[2] = {{"dev*", 1 << 1, false}, {"grp", 1 << 2, true}};
    cred.u.cred.allow = allow;
    cred.u.cred.nallow = 2;
    cred.u.cred.key_len = 3;
    memcpy(cred.u.cred.key, "key", 3);
    assert_int_equal(tether_store_put(s, &dev, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(tether_store_put(s, &cred, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    memset(allow, 0, sizeof allow);
    get(s, TETHER_STORE_CRED, "x", 0, &d);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.rec.u.cred.nallow, 2);
    get(s, TETHER_STORE_DEVICE, "x", 0, &d);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.rec.kind, TETHER_STORE_DEVICE);

    /* A session checkpoint by CID, with its opaque blob. */
    tether_store_rec_t ses;
    memset(&ses, 0, sizeof ses);
    ses.kind = TETHER_STORE_SESSION;
    ses.u.session.cid_len = 8;
    memcpy(ses.u.session.cid, "\x02zzzzzzz", 8);
    ses.u.session.node_id = 2;
    ses.u.session.seq_ceiling = 1000;
    ses.u.session.blob = (const uint8_t *)"wrapped-state";
    ses.u.session.blob_len = 13;
    assert_int_equal(tether_store_put(s, &ses, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(tether_store_get(s, TETHER_STORE_SESSION, (const uint8_t *)"\x02zzzzzzz", 8, 0,
                                      on_done, &d),
                     0);
    assert_int_equal(d.rc, 0);
    assert_string_equal(d.text, "wrapped-state");
    assert_int_equal(d.rec.u.session.seq_ceiling, 1000);

    /* An observe registry entry keyed by the resource's bytes. */
    tether_store_rec_t obs;
    memset(&obs, 0, sizeof obs);
    obs.kind = TETHER_STORE_OBSERVE;
    const uint8_t rkey[] = {4, 'd', 'e', 'v', '1', 1, 0, 4, 't', 'e', 'm', 'p', 1, 0};
    obs.u.observe.key = rkey;
    obs.u.observe.key_len = sizeof rkey;
    tether_store_observer_t ob[1] = {{.node_id = 1, .link_len = 9, .tkl = 2}};
    obs.u.observe.observers = ob;
    obs.u.observe.nobservers = 1;
    assert_int_equal(tether_store_put(s, &obs, 0, 0, 0, on_done, &d), 0);
    assert_int_equal(tether_store_get(s, TETHER_STORE_OBSERVE, rkey, sizeof rkey, 0, on_done, &d),
                     0);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.rec.u.observe.nobservers, 1);

    /* Bad arguments are refused without a callback. */
    d.calls = 0;
    tether_store_rec_t empty = device("", "");
    assert_int_equal(tether_store_put(s, &empty, 0, 0, 0, on_done, &d), TETHER_EINVAL);
    assert_int_equal(tether_store_get(s, 0, (const uint8_t *)"x", 1, 0, on_done, &d),
                     TETHER_EINVAL);
    assert_int_equal(d.calls, 0);
    tether_store_destroy(s);
}

/* Every field of a device's directory entry comes back as put, whatever
 * the address family and the lengths of its parts (the in-memory store
 * packs them: SPEC S9). */
static void test_device_fields_round_trip(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    for (int v6 = 0; v6 < 2; v6++) {
        tether_store_rec_t dev = device(v6 ? "sensor-6" : "s4", "</temp>;rt=t");
        tether_store_device_t *d = &dev.u.device;
        snprintf(d->regid, sizeof d->regid, v6 ? "fedcba987654321" : "2b");
        d->node_id = 9;
        d->cid_len = v6 ? 8 : 0;
        memcpy(d->cid, "\x09cidcid7", d->cid_len);
        d->groups = "lights,floor2";
        d->groups_len = 13;
        d->queue_mode = v6;
        d->last_seen_s = 1700000000ull + (uint64_t)v6;
        if (v6) {
            d->addr.ss.in6.sin6_family = AF_INET6;
            d->addr.ss.in6.sin6_port = htons(5684);
            d->addr.ss.in6.sin6_scope_id = 3;
            inet_pton(AF_INET6, "2001:db8::17", &d->addr.ss.in6.sin6_addr);
            d->addr.len = sizeof d->addr.ss.in6;
        } else {
            d->addr.ss.in4.sin_family = AF_INET;
            d->addr.ss.in4.sin_port = htons(40001);
            inet_pton(AF_INET, "192.0.2.7", &d->addr.ss.in4.sin_addr);
            d->addr.len = sizeof d->addr.ss.in4;
        }
        done_t dd = {0};
        assert_int_equal(tether_store_put(s, &dev, 0, 0, 0, on_done, &dd), 0);
        assert_int_equal(dd.rc, 0);
        tether_store_rec_t out;
        uint64_t version;
        assert_int_equal(tether_store_peek(s, TETHER_STORE_DEVICE, (const uint8_t *)d->name,
                                           strlen(d->name), 0, &out, &version),
                         0);
        const tether_store_device_t *o = &out.u.device;
        assert_string_equal(o->name, d->name);
        assert_string_equal(o->regid, d->regid);
        assert_int_equal(o->node_id, 9);
        assert_int_equal(o->cid_len, d->cid_len);
        assert_memory_equal(o->cid, d->cid, d->cid_len);
        assert_int_equal(o->addr.len, d->addr.len);
        assert_memory_equal(&o->addr.ss, &d->addr.ss, d->addr.len);
        assert_true(tether_addr_equal(&o->addr, &d->addr));
        assert_int_equal(o->links_len, d->links_len);
        assert_string_equal(o->links, "</temp>;rt=t");
        assert_int_equal(o->groups_len, 13);
        assert_string_equal(o->groups, "lights,floor2");
        assert_int_equal(o->queue_mode, v6);
        assert_int_equal(o->lifetime_s, 60);
        assert_int_equal(o->last_seen_s, d->last_seen_s);
    }
    tether_store_destroy(s);
}

/* The node lease: a record put with a ttl is gone once it runs out,
 * unless renewed; tick removes it and watchers hear version 0. */
static void test_lease_expiry(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    changes_t c = {0};
    assert_int_equal(tether_store_watch(s, on_change, &c), 0);
    done_t d = {0};
    tether_store_rec_t n;
    memset(&n, 0, sizeof n);
    n.kind = TETHER_STORE_NODE;
    n.u.node.node_id = 7;
    n.u.node.generation = 1;
    const uint8_t key = 7;
    assert_int_equal(tether_store_next_deadline(s), UINT64_MAX);
    assert_int_equal(tether_store_put(s, &n, 0, 3000, 1000, on_done, &d), 0);
    assert_int_equal(tether_store_next_deadline(s), 4000);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.version, 1);
    /* renewed at 3000: lives until 6000 */
    assert_int_equal(tether_store_put(s, &n, 1, 3000, 3000, on_done, &d), 0);
    assert_int_equal(tether_store_next_deadline(s), 6000);
    tether_store_tick(s, 5999);
    tether_store_get(s, TETHER_STORE_NODE, &key, 1, 5999, on_done, &d);
    assert_int_equal(d.rc, 0);
    assert_int_equal(d.version, 2);
    /* Not returned once expired, even before tick runs. */
    tether_store_get(s, TETHER_STORE_NODE, &key, 1, 6000, on_done, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    tether_store_tick(s, 6000);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.kind, TETHER_STORE_NODE);
    assert_int_equal(c.version, 0);
    assert_int_equal(tether_store_next_deadline(s), UINT64_MAX);
    /* Adoption after expiry: create-only succeeds again. */
    n.u.node.generation = 2;
    assert_int_equal(tether_store_put(s, &n, 0, 3000, 7000, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    /* A put without ttl stops the expiry. */
    assert_int_equal(tether_store_put(s, &n, TETHER_STORE_ANY, 0, 7000, on_done, &d), 0);
    assert_int_equal(tether_store_next_deadline(s), UINT64_MAX);
    tether_store_get(s, TETHER_STORE_NODE, &key, 1, 20000, on_done, &d);
    assert_int_equal(d.rc, 0);
    /* and one with a ttl again starts it (the record gets its timer back) */
    assert_int_equal(tether_store_put(s, &n, TETHER_STORE_ANY, 1000, 20000, on_done, &d), 0);
    assert_int_equal(tether_store_next_deadline(s), 21000);
    tether_store_tick(s, 21000);
    tether_store_get(s, TETHER_STORE_NODE, &key, 1, 21000, on_done, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    assert_int_equal(c.version, 0);
    tether_store_destroy(s);
}

static void test_scan_survives_changes(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    done_t d = {0};
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        tether_store_rec_t r = device(names[i], "");
        assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    }
    assert_int_equal(tether_store_scan(s, TETHER_STORE_DEVICE, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    assert_string_equal(d.rec.u.device.name, "a");
    tether_store_scan(s, TETHER_STORE_DEVICE, d.cursor, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "b");
    uint64_t at_b = d.cursor;
    /* b is updated and c removed between two calls: the scan goes on at d. */
    tether_store_rec_t b = device("b", "</x>");
    tether_store_put(s, &b, TETHER_STORE_ANY, 0, 0, on_done, &d);
    tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"c", 1, TETHER_STORE_ANY, 0, NULL,
                     NULL);
    tether_store_scan(s, TETHER_STORE_DEVICE, at_b, 0, on_done, &d);
    assert_int_equal(d.rc, 0);
    assert_string_equal(d.rec.u.device.name, "d");
    tether_store_scan(s, TETHER_STORE_DEVICE, d.cursor, 0, on_done, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    /* Other kinds are not in the scan. */
    tether_store_scan(s, TETHER_STORE_CRED, 0, 0, on_done, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    tether_store_destroy(s);
}

/* Each step of a scan starts after the previous step's record
 * (tether_store_scan_pos_t): removing that record, or a second scan
 * running in between, must not skip or repeat one. */
static void test_scan_position_follows_removals(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    done_t d = {0};
    const char *names[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        tether_store_rec_t r = device(names[i], "");
        assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    }
    uint64_t cur = 0;
    for (int i = 0; i < 3; i++)
        tether_store_scan(s, TETHER_STORE_DEVICE, cur, 0, on_done, &d), cur = d.cursor;
    assert_string_equal(d.rec.u.device.name, "c");
    /* The record the position is on goes, and the one before it. */
    tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"c", 1, TETHER_STORE_ANY, 0, NULL,
                     NULL);
    tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"b", 1, TETHER_STORE_ANY, 0, NULL,
                     NULL);
    tether_store_scan(s, TETHER_STORE_DEVICE, cur, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "d");
    cur = d.cursor;
    /* Another scan from the start in between. */
    tether_store_scan(s, TETHER_STORE_DEVICE, 0, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "a");
    tether_store_scan(s, TETHER_STORE_DEVICE, cur, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "e");
    cur = d.cursor;
    /* Records created meanwhile come after the older ones. */
    tether_store_rec_t g = device("g", "");
    tether_store_put(s, &g, 0, 0, 0, on_done, &d);
    const char *rest[] = {"f", "g"};
    for (int i = 0; i < 2; i++) {
        tether_store_scan(s, TETHER_STORE_DEVICE, cur, 0, on_done, &d);
        assert_int_equal(d.rc, 0);
        assert_string_equal(d.rec.u.device.name, rest[i]);
        cur = d.cursor;
    }
    tether_store_scan(s, TETHER_STORE_DEVICE, cur, 0, on_done, &d);
    assert_int_equal(d.rc, TETHER_ENOTFOUND);
    tether_store_destroy(s);
}

/* A record sized to its kind moves to a new allocation when an update
 * changes its size: the scan position on it, its order and its version
 * move along, and a put of what a get or peek just returned (pointing
 * into the store) copies it before the old allocation goes. */
static void test_update_moves_record(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(10, &s), 0);
    done_t d = {0};
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        tether_store_rec_t r = device(names[i], "</short>");
        assert_int_equal(tether_store_put(s, &r, 0, 0, 0, on_done, &d), 0);
    }
    tether_store_scan(s, TETHER_STORE_DEVICE, 0, 0, on_done, &d);
    tether_store_scan(s, TETHER_STORE_DEVICE, d.cursor, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "b");
    uint64_t at_b = d.cursor;
    tether_store_rec_t b = device("b", "</a-much-longer-resource>;rt=\"temperature\";obs");
    assert_int_equal(tether_store_put(s, &b, TETHER_STORE_ANY, 0, 0, on_done, &d), 0);
    assert_int_equal(d.version, 2);
    tether_store_scan(s, TETHER_STORE_DEVICE, at_b, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "c");
    tether_store_scan(s, TETHER_STORE_DEVICE, 0, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "a");
    tether_store_scan(s, TETHER_STORE_DEVICE, d.cursor, 0, on_done, &d);
    assert_string_equal(d.rec.u.device.name, "b");
    assert_int_equal(d.cursor, at_b);
    assert_string_equal(d.text, "</a-much-longer-resource>;rt=\"temperature\";obs");

    tether_store_rec_t peeked;
    uint64_t v;
    assert_int_equal(
        tether_store_peek(s, TETHER_STORE_DEVICE, (const uint8_t *)"b", 1, 0, &peeked, &v), 0);
    assert_int_equal(v, 2);
    assert_string_equal(peeked.u.device.name, "b");
    assert_int_equal(peeked.u.device.lifetime_s, 60);
    peeked.u.device.lifetime_s = 90; /* links still point into the store */
    assert_int_equal(tether_store_put(s, &peeked, 2, 0, 0, on_done, &d), 0);
    assert_int_equal(d.rc, 0);
    get(s, TETHER_STORE_DEVICE, "b", 0, &d);
    assert_int_equal(d.version, 3);
    assert_int_equal(d.rec.u.device.lifetime_s, 90);
    assert_string_equal(d.text, "</a-much-longer-resource>;rt=\"temperature\";obs");
    assert_int_equal(
        tether_store_peek(s, TETHER_STORE_DEVICE, (const uint8_t *)"x", 1, 0, &peeked, &v),
        TETHER_ENOTFOUND);
    tether_store_destroy(s);
}

static void test_watchers_and_bounds(void **state)
{
    (void)state;
    tether_store_t *s;
    assert_int_equal(tether_store_mem_create(2, &s), 0);
    changes_t c[TETHER_STORE_WATCHERS_MAX + 1];
    memset(c, 0, sizeof c);
    for (int i = 0; i < TETHER_STORE_WATCHERS_MAX; i++)
        assert_int_equal(tether_store_watch(s, on_change, &c[i]), 0);
    assert_int_equal(tether_store_watch(s, on_change, &c[TETHER_STORE_WATCHERS_MAX]),
                     TETHER_ELIMIT);
    tether_store_unwatch(s, on_change, &c[1]);
    done_t d = {0};
    tether_store_rec_t r = device("dev1", "");
    tether_store_put(s, &r, 0, 0, 0, on_done, &d);
    assert_int_equal(c[0].n, 1);
    assert_string_equal(c[0].key, "dev1");
    assert_int_equal(c[0].version, 1);
    assert_int_equal(c[1].n, 0); /* unwatched */
    assert_int_equal(c[2].n, 1);
    /* A failed CAS changes nothing, so nobody hears of it. */
    tether_store_put(s, &r, 0, 0, 0, on_done, &d);
    assert_int_equal(c[0].n, 1);
    /* At most max_records records. */
    r = device("dev2", "");
    tether_store_put(s, &r, 0, 0, 0, on_done, &d);
    assert_int_equal(d.rc, 0);
    r = device("dev3", "");
    tether_store_put(s, &r, 0, 0, 0, on_done, &d);
    assert_int_equal(d.rc, TETHER_ELIMIT);
    tether_store_del(s, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, TETHER_STORE_ANY, 0, NULL,
                     NULL);
    assert_int_equal(c[0].version, 0);
    tether_store_put(s, &r, 0, 0, 0, on_done, &d);
    assert_int_equal(d.rc, 0);
    tether_store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_cas),
        cmocka_unit_test(test_kinds_and_keys),
        cmocka_unit_test(test_device_fields_round_trip),
        cmocka_unit_test(test_lease_expiry),
        cmocka_unit_test(test_scan_survives_changes),
        cmocka_unit_test(test_scan_position_follows_removals),
        cmocka_unit_test(test_update_moves_record),
        cmocka_unit_test(test_watchers_and_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
