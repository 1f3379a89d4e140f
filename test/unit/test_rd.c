/* Unit tests for lib/proxy/rd.c: registration over the tunnel (ep check,
 * lifetime, queue mode), update and removal, driven through the node. */
#include "node_fixture.h"
#include "proxy/node_int.h"

static void test_register_and_ep_check(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_true(info.online);
    assert_int_equal(info.lifetime_s, 60);
    assert_string_equal(info.links, "</temp>;obs,</big>");
    /* ep must be the authenticated identity */
    assert_int_equal(do_register(f, 8, "dev2", "dev1", NULL), TETHER_COAP_FORBIDDEN);
    assert_int_equal(tether_node_device(f->node, "dev2", &info), TETHER_ENOTFOUND);
    /* a client identity cannot register */
    tether_peer_t app = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t m, r;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, 5);
    add_path(&m, "rd");
    add_query(&m, "ep=app1");
    assert_int_equal(send_msg(f, &app, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    /* lifetime expiry removes the registration */
    advance(f, 61000);
    assert_int_equal(tether_node_device(f->node, "dev1", &info), TETHER_ENOTFOUND);
}

static void test_rd_update_delete(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_peer_t other = dtls_peer(8, "dev2", TETHER_ROLE_DEVICE, 40001);
    tether_coap_msg_t m, r;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_DELETE, 0x600);
    add_path(&m, "rd");
    add_path(&m, f->regid);
    assert_int_equal(send_msg(f, &other, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    m.mid++;
    assert_int_equal(send_msg(f, &dev, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_DELETED);
    m.mid++;
    m.code = TETHER_COAP_POST;
    assert_int_equal(send_msg(f, &dev, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
}

/* What a store get completes with, copied out of the callback. */
typedef struct {
    int calls, rc;
    uint64_t version;
    tether_store_device_t dev;
    char links[256];
} got_t;

static void got_cb(void *user, const tether_store_result_t *res)
{
    got_t *g = user;
    g->calls++;
    g->rc = res->rc;
    g->version = res->version;
    if (res->rc == 0 && res->rec) {
        g->dev = res->rec->u.device;
        snprintf(g->links, sizeof g->links, "%.*s", (int)g->dev.links_len, g->dev.links);
        g->dev.links = NULL;
    }
}

static void count_change(void *user, tether_store_kind_t kind, const uint8_t *key, size_t len,
                         uint64_t version)
{
    if (kind == TETHER_STORE_DEVICE && len == 4 && memcmp(key, "dev1", 4) == 0)
        *(uint64_t *)user = version;
}

/* f's node again, on a store of its own (max_records) with node id `id`. */
static tether_store_t *node_on_store(fx_t *f, size_t max, uint8_t id)
{
    tether_store_t *store;
    assert_int_equal(tether_store_mem_create(max, &store), 0);
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.node_id = id;
    c.store = store;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    return store;
}

/* POST /rd/<f's regid> from `dev` with `query` and a payload (NULL:
 * none): the response code. */
static uint8_t rd_update(fx_t *f, const tether_peer_t *dev, uint16_t mid, const char *query,
                         const char *payload)
{
    tether_coap_msg_t m, r;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, mid);
    add_path(&m, "rd");
    add_path(&m, f->regid);
    if (query)
        add_query(&m, query);
    if (payload) {
        m.payload = (const uint8_t *)payload;
        m.payload_len = strlen(payload);
    }
    assert_int_equal(send_msg(f, dev, &m), 1);
    out_msg(f, 0, &r);
    return r.code;
}

/* Registration, update and removal are written through the node's store
 * as the device's directory entry. */
/* Also: an expiring registration leaves another node's newer entry alone. */
static void test_rd_writes_directory_to_store(void **state)
{
    fx_t *f = *state;
    tether_store_t *store = node_on_store(f, 100, 3);
    uint64_t seen = 99;
    assert_int_equal(tether_store_watch(store, count_change, &seen), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", "b=UQ"), TETHER_COAP_CREATED);
    got_t g = {0};
    assert_int_equal(tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4,
                                      f->now, got_cb, &g),
                     0);
    assert_int_equal(g.calls, 1); /* the in-memory store completes at once */
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.version, 1);
    assert_int_equal(seen, 1);
    assert_string_equal(g.dev.name, "dev1");
    assert_string_equal(g.dev.regid, f->regid);
    assert_int_equal(g.dev.node_id, 3);
    assert_int_equal(g.dev.lifetime_s, 60);
    assert_true(g.dev.queue_mode);
    assert_string_equal(g.links, "</temp>;obs,</big>");

    /* An update (new lifetime) is a new version of the entry. */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t m, r;
    assert_int_equal(rd_update(f, &dev, 0x700, "lt=120", NULL), TETHER_COAP_CHANGED);
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_int_equal(g.version, 2);
    assert_int_equal(g.dev.lifetime_s, 120);
    assert_int_equal(seen, 2);

    /* Removal deletes it; the watcher hears version 0. */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_DELETE, 0x701);
    add_path(&m, "rd");
    add_path(&m, f->regid);
    assert_int_equal(send_msg(f, &dev, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_DELETED);
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_int_equal(g.rc, TETHER_ENOTFOUND);
    assert_int_equal(seen, 0);

    /* Expiry removes the entry too. */
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    advance(f, 61000);
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_int_equal(g.rc, TETHER_ENOTFOUND);

    /* The device registers again on node 5 before its registration here
     * expires (a newer entry, written by that node): expiry here must not
     * delete it (compare-and-set on the version this node wrote). */
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_store_rec_t moved = {.kind = TETHER_STORE_DEVICE};
    snprintf(moved.u.device.name, sizeof moved.u.device.name, "dev1");
    moved.u.device.node_id = 5;
    moved.u.device.lifetime_s = 60;
    assert_int_equal(tether_store_put(store, &moved, TETHER_STORE_ANY, 0, f->now, NULL, NULL), 0);
    advance(f, 61000);
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.dev.node_id, 5);
    /* But an entry of this node's whose version moved under it (a write
     * replayed after a store outage) still goes when the registration does. */
    tether_store_del(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, TETHER_STORE_ANY,
                     f->now, NULL, NULL);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    moved.u.device.node_id = 3;
    snprintf(moved.u.device.regid, sizeof moved.u.device.regid, "%s", f->regid);
    assert_int_equal(tether_store_put(store, &moved, TETHER_STORE_ANY, 0, f->now, NULL, NULL), 0);
    advance(f, 61000);
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_int_equal(g.rc, TETHER_ENOTFOUND);
    tether_node_destroy(f->node); /* the store outlives the node that borrows it */
    f->node = NULL;
    tether_store_destroy(store);
}

/* SPEC S9: a registered device's links are kept once. With the in-memory
 * store they are the store's copy (the registry holds none), and the
 * admin view still shows them, also after an update without a payload
 * (links kept) and after one with new links. */
static void test_rd_links_kept_once(void **state)
{
    fx_t *f = *state;
    tether_store_t *store = node_on_store(f, 100, 1);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_device_t *d = tether_registry_find(&f->node->reg, "dev1");
    assert_non_null(d);
    assert_null(d->links);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_string_equal(info.links, "</temp>;obs,</big>");

    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    assert_int_equal(rd_update(f, &dev, 0x800, "lt=120", NULL), TETHER_COAP_CHANGED);
    assert_null(d->links);
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_int_equal(info.lifetime_s, 120);
    assert_string_equal(info.links, "</temp>;obs,</big>");

    assert_int_equal(rd_update(f, &dev, 0x801, NULL, "</hum>"), TETHER_COAP_CHANGED);
    assert_null(d->links);
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_string_equal(info.links, "</hum>");
    got_t g = {0};
    tether_store_get(store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, f->now, got_cb, &g);
    assert_string_equal(g.links, "</hum>");

    /* A store that cannot show them at once: the registry keeps its copy
     * (a store of no records refuses the entry). */
    tether_store_t *first = store;
    store = node_on_store(f, 0, 1);
    tether_store_destroy(first); /* once the node borrowing it is gone */
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    d = tether_registry_find(&f->node->reg, "dev1");
    assert_non_null(d->links);
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_string_equal(info.links, "</temp>;obs,</big>");
    tether_node_destroy(f->node);
    f->node = NULL;
    tether_store_destroy(store);
}

/* A registration id is its hash key, NUL-terminated: one taken over from
 * another node (longer or shorter) replaces it whole and finds the device,
 * the old one no longer does. */
static void test_regid_replaced(void **state)
{
    (void)state;
    tether_registry_t r;
    assert_int_equal(tether_registry_init(&r, 1, 10, 42), 0);
    tether_device_t *d;
    bool created;
    assert_int_equal(tether_registry_add(&r, "dev1", &d, &created), 0);
    assert_true(created);
    assert_string_equal(tether_device_regid(d), "11");
    const char *ids[] = {"2fedcba98765432", "3a", "3a"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tether_registry_set_regid(&r, d, ids[i]), 0);
        assert_string_equal(tether_device_regid(d), ids[i]);
        assert_ptr_equal(tether_registry_find_reg(&r, ids[i]), d);
    }
    assert_null(tether_registry_find_reg(&r, "11"));
    assert_null(tether_registry_find_reg(&r, "2fedcba98765432"));
    assert_int_equal(tether_registry_set_regid(&r, d, "0123456789abcdef"), TETHER_EINVAL);
    assert_string_equal(tether_device_regid(d), "3a");
    tether_device_t *d2;
    assert_int_equal(tether_registry_add(&r, "dev2", &d2, &created), 0);
    assert_int_equal(tether_registry_set_regid(&r, d2, "3a"), TETHER_EEXIST);
    assert_ptr_equal(tether_registry_next(&r, NULL), d);
    assert_ptr_equal(tether_registry_next(&r, "3a"), d2);
    tether_registry_remove(&r, d); /* the registry frees its table, not its devices */
    tether_registry_remove(&r, d2);
    tether_registry_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regid_replaced),
        cmocka_unit_test_setup_teardown(test_register_and_ep_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rd_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rd_writes_directory_to_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rd_links_kept_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
