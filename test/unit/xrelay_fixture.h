/* The fixture of the cross-node unit tests (test_xrelay.c, test_xgroup.c):
 * two nodes in one process sharing one in-memory state store (the
 * directory), their cross-node messages handed over in memory as the
 * cluster channel would (pump), what each sends to clients and devices
 * captured (cap), one clock per node stepped together (advance_all). */
#ifndef TETHER_TEST_XRELAY_FIXTURE_H
#define TETHER_TEST_XRELAY_FIXTURE_H

#include "node_fixture.h"
#include "tether/cluster.h"

typedef struct {
    fx_t f[3]; /* [1], [2]: the nodes */
    tether_store_t *store;
    bool alive[3];
    bool drop;        /* lose every cross-node message */
    size_t delivered; /* cross-node messages handed over */
    tether_out_t cap[3][64];
    size_t ncap[3];
    tether_xmsg_t last_x; /* the last message handed over */
} xf_t;

static xf_t X;
/* xsetup_bounded: the per-client bounds of every node (0: the defaults),
 * NSTART off (requests are not held behind one another at the device). */
static uint32_t x_pending_per_client, x_observers_per_client;

static inline bool alive(void *user, uint8_t id, tether_time_t now)
{
    (void)now;
    return ((xf_t *)user)->alive[id];
}

static inline int xsetup(void **state)
{
    memset(&X, 0, sizeof X);
    tether_log_set_level(TETHER_LOG_WARN);
    assert_int_equal(tether_store_mem_create(1000, &X.store), 0);
    tether_creds_t *creds = load_creds();
    for (uint8_t id = 1; id <= 2; id++) {
        tether_node_conf_t c;
        tether_node_conf_defaults(&c);
        c.node_id = id;
        c.seed ^= id * 0x9e3779b97f4a7c15ull;
        c.store = X.store;
        if (x_pending_per_client)
            c.max_pending_per_client = x_pending_per_client;
        if (x_observers_per_client)
            c.max_observers_per_client = x_observers_per_client;
        if (x_pending_per_client)
            c.nstart = 0;
        X.f[id].creds = creds;
        X.f[id].now = 1000000;
        X.f[id].mid = (uint16_t)(100 * id);
        assert_int_equal(tether_node_create(&c, creds, &X.f[id].node), 0);
        tether_node_set_cluster(X.f[id].node, alive, &X);
        X.alive[id] = true;
    }
    *state = &X;
    return 0;
}

static inline int xteardown(void **state)
{
    (void)state;
    for (int id = 1; id <= 2; id++)
        tether_node_destroy(X.f[id].node);
    tether_store_destroy(X.store);
    tether_creds_free(X.f[1].creds);
    return 0;
}

/* Moves every node's outbox (cluster links to its xrelay, the rest into
 * cap[]) and cross-node messages until nothing moves. */
static inline void pump(void)
{
    for (int round = 0; round < 50; round++) {
        bool moved = false;
        for (int id = 1; id <= 2; id++) {
            tether_node_t *n = X.f[id].node;
            while (tether_node_out_count(n)) {
                for (size_t i = 0; i < tether_node_out_count(n); i++) {
                    const tether_out_t *o = tether_node_out_get(n, i);
                    if (o->link.kind == TETHER_LINK_CLUSTER)
                        tether_node_xlink_out(n, o);
                    else if (X.ncap[id] < 64)
                        X.cap[id][X.ncap[id]++] = *o;
                }
                tether_node_out_clear(n);
                tether_node_xsettle(n, X.f[id].now);
                moved = true;
            }
            size_t nx = tether_node_xout_count(n);
            tether_xmsg_t copy[64];
            assert_true(nx <= 64);
            for (size_t i = 0; i < nx; i++)
                copy[i] = *tether_node_xout_get(n, i);
            tether_node_xout_clear(n);
            for (size_t i = 0; i < nx; i++) {
                moved = true;
                X.last_x = copy[i];
                if (X.drop || copy[i].to < 1 || copy[i].to > 2)
                    continue;
                X.delivered++;
                tether_node_xinput(X.f[copy[i].to].node, (uint8_t)id, copy[i].type, copy[i].data,
                                   copy[i].len, X.f[copy[i].to].now);
            }
        }
        if (!moved)
            return;
    }
    fail_msg("cross-node messages never settled");
}

static inline void clear_cap(void)
{
    X.ncap[1] = X.ncap[2] = 0;
}

/* Index of the captured message of node `id` to link (kind, id), or -1. */
static inline int cap_find(int id, uint8_t kind, uint64_t link_id, uint16_t port,
                           tether_coap_msg_t *m, int after)
{
    tether_coap_perr_t perr;
    for (size_t i = (size_t)(after + 1); i < X.ncap[id]; i++) {
        const tether_out_t *o = &X.cap[id][i];
        if (o->link.kind != kind)
            continue;
        if (kind == TETHER_LINK_PLAIN &&
            ntohs(((const struct sockaddr_in *)&o->link.addr.ss)->sin_port) != port)
            continue;
        if (kind != TETHER_LINK_PLAIN && o->link.id != link_id)
            continue;
        assert_int_equal(tether_coap_parse(m, o->data, o->len, &perr), 0);
        return (int)i;
    }
    return -1;
}

static inline void input(int id, const tether_peer_t *p, const tether_coap_msg_t *m)
{
    uint8_t buf[1400];
    size_t len;
    assert_int_equal(tether_coap_encode(m, buf, sizeof buf, &len), 0);
    tether_node_input(X.f[id].node, p, buf, len, X.f[id].now);
    pump();
}

static inline void advance_all(tether_time_t ms)
{
    tether_time_t end = X.f[1].now + ms;
    for (;;) {
        tether_time_t d = UINT64_MAX;
        for (int id = 1; id <= 2; id++) {
            tether_time_t e = tether_node_next_deadline(X.f[id].node);
            d = e < d ? e : d;
        }
        if (d > end)
            break;
        for (int id = 1; id <= 2; id++) {
            X.f[id].now = d > X.f[id].now ? d : X.f[id].now;
            tether_node_tick(X.f[id].node, X.f[id].now);
        }
        pump();
    }
    X.f[1].now = X.f[2].now = end;
}

static inline void get_msg(tether_coap_msg_t *m, uint8_t type, uint16_t mid, const char *tok,
                           const char *device, const char *path, int observe)
{
    tether_coap_msg_init(m, type, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(m, (const uint8_t *)tok, strlen(tok));
    tether_coap_msg_add_opt(m, TETHER_COAP_OPT_URI_HOST, device, strlen(device));
    static uint8_t ov[3][1];
    if (observe >= 0) {
        ov[observe][0] = (uint8_t)observe;
        tether_coap_msg_add_opt(m, TETHER_COAP_OPT_OBSERVE, ov[observe], observe ? 1 : 0);
    }
    add_path(m, path);
}

static inline uint32_t observe_of(const tether_coap_msg_t *m)
{
    uint32_t v;
    return tether_coap_msg_get_uint(m, TETHER_COAP_OPT_OBSERVE, &v) == 0 ? v : 0xffffffff;
}

/* The device (session 7 on node 2) answers `up` piggybacked. */
static inline void dev_answer(const tether_coap_msg_t *up, const char *payload, int observe)
{
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t ov = (uint8_t)observe;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    if (observe >= 0)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_OBSERVE, &ov, 1);
    ack.payload = (const uint8_t *)payload;
    ack.payload_len = strlen(payload);
    input(2, &dev, &ack);
}

/* dev1 (session `sess` on node `id`) sends a NON notification. */
static inline void dev_notify(int id, uint64_t sess, const uint8_t *tok, size_t tkl, uint8_t seq,
                              const char *payload)
{
    tether_peer_t dev = dtls_peer(sess, "dev1", TETHER_ROLE_DEVICE, (uint16_t)(40000 + sess));
    tether_coap_msg_t nt;
    static uint16_t mid = 0x777; /* a fresh MID each: not a duplicate (RFC 7252 §4.5) */
    tether_coap_msg_init(&nt, TETHER_COAP_NON, TETHER_COAP_CONTENT, mid++);
    tether_coap_msg_set_token(&nt, tok, tkl);
    tether_coap_msg_add_opt(&nt, TETHER_COAP_OPT_OBSERVE, &seq, 1);
    nt.payload = (const uint8_t *)payload;
    nt.payload_len = strlen(payload);
    input(id, &dev, &nt);
}

static inline void register_dev1_on_2(void)
{
    assert_int_equal(do_register(&X.f[2], 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_node_out_clear(X.f[2].node);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(X.f[1].node, "dev1", &info), TETHER_ENOTFOUND);
}

/* Counts the observers the store's registry holds for dev1's resources. */
static size_t obs_cb_count;
static inline void obs_scan_cb(void *user, const tether_store_result_t *res)
{
    uint64_t *cursor = user;
    *cursor = 0;
    if (res->rc == 0 && res->rec) {
        obs_cb_count += res->rec->u.observe.nobservers;
        *cursor = res->cursor;
    }
}
static inline size_t registry_observers(void)
{
    obs_cb_count = 0;
    uint64_t cursor = 0;
    do
        assert_int_equal(tether_store_scan(X.store, TETHER_STORE_OBSERVE, cursor, X.f[1].now,
                                           obs_scan_cb, &cursor),
                         0);
    while (cursor);
    return obs_cb_count;
}

#endif
