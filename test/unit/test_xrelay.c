/* Unit tests for lib/proxy/xrelay.c: two nodes in one process sharing one
 * in-memory state store (the directory), their cross-node messages handed
 * over in memory as the cluster channel would. A client on node 1 reaches
 * a device whose tunnel is on node 2 and gets its answer with its own MID
 * and token; a retransmitted request reaches the device once; node 2 not
 * alive is a 5.02, node 2 silent a 5.04; observers on both nodes share
 * one device-side observation on node 2, every one gets each
 * notification, the registry in the store lists them all, and the
 * observation ends when the last one leaves, or when node 1 dies; node 1
 * registers its aggregate again every 30 s (node 2 deduplicates) and its
 * observers get 5.02 when node 2 dies. */
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

static bool alive(void *user, uint8_t id, tether_time_t now)
{
    (void)now;
    return ((xf_t *)user)->alive[id];
}

static int xsetup(void **state)
{
    memset(&X, 0, sizeof X);
    tether_log_set_level(TETHER_LOG_WARN);
    assert_int_equal(tether_store_mem_create(1000, &X.store), 0);
    char path[] = "/tmp/tether-test-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, creds_json, strlen(creds_json)), (ssize_t)strlen(creds_json));
    close(fd);
    char err[256];
    tether_creds_t *creds;
    assert_int_equal(tether_creds_load(path, &creds, err, sizeof err), 0);
    unlink(path);
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

static int xteardown(void **state)
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
static void pump(void)
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

static void clear_cap(void)
{
    X.ncap[1] = X.ncap[2] = 0;
}

/* Index of the captured message of node `id` to link (kind, id), or -1. */
static int cap_find(int id, uint8_t kind, uint64_t link_id, uint16_t port, tether_coap_msg_t *m,
                    int after)
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

static void input(int id, const tether_peer_t *p, const tether_coap_msg_t *m)
{
    uint8_t buf[1400];
    size_t len;
    assert_int_equal(tether_coap_encode(m, buf, sizeof buf, &len), 0);
    tether_node_input(X.f[id].node, p, buf, len, X.f[id].now);
    pump();
}

static void advance_all(tether_time_t ms)
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

static void get_msg(tether_coap_msg_t *m, uint8_t type, uint16_t mid, const char *tok,
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

static uint32_t observe_of(const tether_coap_msg_t *m)
{
    uint32_t v;
    return tether_coap_msg_get_uint(m, TETHER_COAP_OPT_OBSERVE, &v) == 0 ? v : 0xffffffff;
}

/* The device (session 7 on node 2) answers `up` piggybacked. */
static void dev_answer(const tether_coap_msg_t *up, const char *payload, int observe)
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
static void dev_notify(int id, uint64_t sess, const uint8_t *tok, size_t tkl, uint8_t seq,
                       const char *payload)
{
    tether_peer_t dev = dtls_peer(sess, "dev1", TETHER_ROLE_DEVICE, (uint16_t)(40000 + sess));
    tether_coap_msg_t nt;
    tether_coap_msg_init(&nt, TETHER_COAP_NON, TETHER_COAP_CONTENT, 0x777);
    tether_coap_msg_set_token(&nt, tok, tkl);
    tether_coap_msg_add_opt(&nt, TETHER_COAP_OPT_OBSERVE, &seq, 1);
    nt.payload = (const uint8_t *)payload;
    nt.payload_len = strlen(payload);
    input(id, &dev, &nt);
}

static void register_dev1_on_2(void)
{
    assert_int_equal(do_register(&X.f[2], 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_node_out_clear(X.f[2].node);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(X.f[1].node, "dev1", &info), TETHER_ENOTFOUND);
}

static void test_request_across_nodes(void **state)
{
    (void)state;
    register_dev1_on_2();
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up, r;
    get_msg(&m, TETHER_COAP_CON, 0x4242, "tk", "dev1", "temp", -1);
    clear_cap();
    input(1, &client, &m);
    /* node 2 sent the request down dev1's tunnel as its own CON */
    int i = cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1);
    assert_true(i >= 0);
    assert_int_equal(up.type, TETHER_COAP_CON);
    assert_true(tether_coap_path_equals(&up, "temp"));
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1), -1); /* nothing yet */
    dev_answer(&up, "21.5", -1);
    /* the client's answer: piggybacked on its MID with its token */
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x4242);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "tk", 2);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "21.5", 4);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    assert_int_equal(s2->xrelay_served, 1);
    assert_int_equal(tether_node_stats(X.f[1].node)->relay_ok, 1);
    /* a device no node has is still 4.04 */
    get_msg(&m, TETHER_COAP_CON, 0x4243, "t2", "dev9", "temp", -1);
    clear_cap();
    input(1, &client, &m);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
}

static void test_retransmitted_request_deduplicated(void **state)
{
    (void)state;
    register_dev1_on_2();
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up, r;
    get_msg(&m, TETHER_COAP_NON, 0x100, "nn", "dev1", "temp", -1);
    clear_cap();
    X.drop = true; /* the first XREQ is lost */
    input(1, &client, &m);
    X.drop = false;
    assert_int_equal(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1), -1);
    advance_all(1000); /* retransmitted after xrelay_retry_ms */
    int i = cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1);
    assert_true(i >= 0);
    tether_xmsg_t xreq = X.last_x;
    assert_int_equal(xreq.type, TETHER_CLUSTER_XREQ);
    /* the same XREQ again (a retransmission crossing the answer): not
     * sent to the device a second time */
    tether_node_xinput(X.f[2].node, 1, xreq.type, xreq.data, xreq.len, X.f[2].now);
    pump();
    assert_int_equal(cap_find(2, TETHER_LINK_DTLS, 7, 0, &r, i), -1);
    assert_int_equal(tether_node_stats(X.f[2].node)->xrelay_duplicates, 1);
    dev_answer(&up, "22", -1);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    /* after the answer, a late copy gets the same answer again (which
     * node 1, no longer waiting, ignores) */
    size_t before = X.delivered;
    tether_node_xinput(X.f[2].node, 1, xreq.type, xreq.data, xreq.len, X.f[2].now);
    clear_cap();
    pump();
    assert_true(X.delivered > before);
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1), -1);
}

static void test_node_down_and_timeout(void **state)
{
    (void)state;
    register_dev1_on_2();
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, r;
    X.alive[2] = false;
    get_msg(&m, TETHER_COAP_CON, 0x200, "d", "dev1", "temp", -1);
    clear_cap();
    input(1, &client, &m);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    assert_int_equal(tether_node_stats(X.f[1].node)->xrelay_node_down, 1);
    /* alive but silent: an empty ACK after ack_delay, then 5.04 */
    X.alive[2] = true;
    X.drop = true;
    get_msg(&m, TETHER_COAP_CON, 0x201, "e", "dev1", "temp", -1);
    clear_cap();
    input(1, &client, &m);
    advance_all(1500);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.code, 0);
    clear_cap();
    advance_all(12000);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_GATEWAY_TIMEOUT);
    assert_int_equal(r.type, TETHER_COAP_CON); /* a separate response */
    X.drop = false;
}

/* Counts the observers the store's registry holds for dev1's resources. */
static size_t obs_cb_count;
static void obs_scan_cb(void *user, const tether_store_result_t *res)
{
    uint64_t *cursor = user;
    *cursor = 0;
    if (res->rc == 0 && res->rec) {
        obs_cb_count += res->rec->u.observe.nobservers;
        *cursor = res->cursor;
    }
}
static size_t registry_observers(void)
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

static void test_observe_across_nodes(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_peer_t a = plain_peer(50001), b = plain_peer(50002), c = plain_peer(50003);
    tether_coap_msg_t m, up, r;
    /* a and b observe through node 1, c on node 2 itself */
    get_msg(&m, TETHER_COAP_CON, 0x300, "aa", "dev1", "temp", 0);
    clear_cap();
    input(1, &a, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
    assert_int_equal(observe_of(&up), 0);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK); /* node 1's own exchange with a */
    assert_int_equal(r.code, 0);
    size_t sent = s1->xrelay_sent;
    get_msg(&m, TETHER_COAP_NON, 0x301, "bb", "dev1", "temp", 0);
    input(1, &b, &m);
    assert_int_equal(s1->xrelay_sent, sent); /* b joins node 1's aggregate */
    get_msg(&m, TETHER_COAP_NON, 0x302, "cc", "dev1", "temp", 0);
    input(2, &c, &m);
    assert_int_equal(s1->observe_device_observations + s2->observe_device_observations, 1);
    assert_int_equal(s1->observe_observers, 2);
    assert_int_equal(s2->observe_observers, 2); /* c and node 1's aggregate */
    assert_int_equal(registry_observers(), 3);
    /* the device's first notification reaches all three */
    clear_cap();
    dev_answer(&up, "20", 5);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "aa", 2);
    uint32_t seq = observe_of(&r);
    assert_true(seq != 0xffffffff);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50002, &r, -1) >= 0);
    assert_memory_equal(r.token, "bb", 2);
    assert_memory_equal(r.payload, "20", 2);
    assert_true(cap_find(2, TETHER_LINK_PLAIN, 0, 50003, &r, -1) >= 0);
    assert_memory_equal(r.token, "cc", 2);
    /* a NON notification: each observer again, node 1's Observe growing */
    clear_cap();
    dev_notify(2, 7, up.token, up.tkl, 6, "21");
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(observe_of(&r), seq + 1);
    assert_memory_equal(r.payload, "21", 2);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50002, &r, -1) >= 0);
    assert_true(cap_find(2, TETHER_LINK_PLAIN, 0, 50003, &r, -1) >= 0);
    /* a and b leave (deregistration, then a session end): node 1's
     * aggregate ends at node 2; c keeps the device-side observation */
    get_msg(&m, TETHER_COAP_CON, 0x303, "aa", "dev1", "temp", 1);
    input(1, &a, &m);
    assert_int_equal(s1->observe_observers, 1);
    tether_node_link_down(X.f[1].node, &b.link, X.f[1].now); /* a plain link never ends; as if */
    pump();
    assert_int_equal(s1->observe_observers, 0);
    assert_int_equal(s2->observe_observers, 1);
    assert_int_equal(s2->observe_device_observations, 1);
    assert_int_equal(registry_observers(), 1);
    /* c leaves: the device-side observation is cancelled */
    get_msg(&m, TETHER_COAP_CON, 0x304, "cc", "dev1", "temp", 1);
    clear_cap();
    input(2, &c, &m);
    assert_int_equal(s2->observe_device_observations, 0);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &r, -1) >= 0);
    assert_int_equal(observe_of(&r), 1);
    assert_int_equal(registry_observers(), 0);
}

static void test_observers_of_dead_node_removed(void **state)
{
    (void)state;
    register_dev1_on_2();
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_peer_t a = plain_peer(50001);
    tether_coap_msg_t m, up;
    get_msg(&m, TETHER_COAP_NON, 0x400, "aa", "dev1", "temp", 0);
    clear_cap();
    input(1, &a, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
    dev_answer(&up, "20", 2);
    assert_int_equal(s2->observe_device_observations, 1);
    assert_int_equal(registry_observers(), 1);
    X.alive[1] = false; /* node 1's lease ran out */
    X.drop = true;
    advance_all(1500);
    assert_int_equal(s2->observe_device_observations, 0);
    assert_int_equal(s2->observe_observers, 0);
    /* node 1's registry record stays a while: a node adopting node 1's
     * sessions reads it to register node 1's observers again */
    assert_int_equal(registry_observers(), 1);
    advance_all(30000);
    assert_int_equal(registry_observers(), 0);
    X.drop = false;
}

/* dev1 on node 2; a plain client on node 1 (port 50001) observes its
 * /temp with token `tok` through node 1's aggregate; the first value came. */
static void observe_dev1_from_1(const char *tok)
{
    register_dev1_on_2();
    tether_peer_t a = plain_peer(50001);
    tether_coap_msg_t m, up, r;
    get_msg(&m, TETHER_COAP_NON, 0x500, tok, "dev1", "temp", 0);
    clear_cap();
    input(1, &a, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
    dev_answer(&up, "20", 2);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
}

static void test_aggregate_refreshed_then_device_node_dies(void **state)
{
    (void)state;
    observe_dev1_from_1("aa");
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node);
    tether_coap_msg_t r;
    /* every 30 s node 1 registers its aggregate again; node 2 still has
     * it and registers nothing new with the device */
    size_t dups = s2->xrelay_duplicates;
    clear_cap();
    advance_all(31000);
    assert_int_equal(s2->xrelay_duplicates, dups + 1);
    assert_int_equal(s2->observe_device_observations, 1);
    assert_int_equal(s2->observe_observers, 1);
    /* node 2 goes silent: node 1 waits for an adopter of its sessions
     * (SPEC S5); none comes, so its observer gets a final 5.02 */
    X.alive[2] = false;
    X.drop = true;
    clear_cap();
    advance_all(1500);
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1), -1);
    assert_int_equal(s1->observe_observers, 1);
    advance_all(30000);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    assert_memory_equal(r.token, "aa", 2);
    assert_int_equal(s1->observe_observers, 0);
    X.drop = false;
}

/* Node 2 dies and node 1 adopts its sessions: dev1's next message comes
 * on the adopted session (9) here, and the directory names node 1. The
 * observer of node 1's aggregate joins the local observation: node 1
 * registers with dev1 itself and the observer gets the next notification
 * with its own token, no error in between. */
static void test_aggregate_follows_adopted_device(void **state)
{
    (void)state;
    observe_dev1_from_1("ab");
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    tether_coap_msg_t up, r;
    X.alive[2] = false;
    X.drop = true;
    clear_cap();
    advance_all(1500); /* not adopted yet: waiting */
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1), -1);
    assert_int_equal(do_register(&X.f[1], 9, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    clear_cap();
    advance_all(1500);
    assert_int_equal(s1->xrelay_rehomed, 1);
    assert_int_equal(s1->observe_device_observations, 1);
    assert_int_equal(s1->observe_observers, 1);
    int i = -1;
    do /* the registration, Observe: 0, down the adopted session */
        i = cap_find(1, TETHER_LINK_DTLS, 9, 0, &up, i);
    while (i >= 0 && (up.code != TETHER_COAP_GET || observe_of(&up) != 0));
    assert_true(i >= 0);
    assert_int_equal(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1), -1); /* no 5.02 */
    tether_peer_t dev = dtls_peer(9, "dev1", TETHER_ROLE_DEVICE, 40001);
    tether_coap_msg_t ack;
    uint8_t ov = 3;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_OBSERVE, &ov, 1);
    ack.payload = (const uint8_t *)"21";
    ack.payload_len = 2;
    input(1, &dev, &ack);
    assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50001, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "ab", 2);
    assert_true(observe_of(&r) != 0xffffffff);
    assert_memory_equal(r.payload, "21", 2);
    X.drop = false;
}

/* The dead node's observe registry record, copied: key (without the node
 * byte), upstream token and its first observer. */
typedef struct {
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t key_len;
    uint8_t utok[TETHER_STORE_TOKEN_MAX], utok_len;
    tether_store_observer_t ob;
} reg_copy_t;

static void copy_cb(void *user, const tether_store_result_t *res)
{
    reg_copy_t *c = user;
    if (res->rc != 0 || !res->rec || !res->rec->u.observe.nobservers)
        return;
    const tether_store_observe_t *o = &res->rec->u.observe;
    c->key_len = o->key_len - 1;
    memcpy(c->key, o->key, c->key_len);
    c->utok_len = o->utok_len;
    memcpy(c->utok, o->utok, o->utok_len);
    c->ob = o->observers[0];
}

static void dev_rec_cb(void *user, const tether_store_result_t *res)
{
    if (res->rc == 0 && res->rec)
        *(tether_store_device_t *)user = res->rec->u.device;
}

/* Node 2 dies and node 1 adopts its sessions (dev1's as 9, app1's as 21;
 * SPEC S5): dev1 is registered on node 1 at once under node 2's
 * registration id, and app1, which observed dev1 on node 2, observes it
 * on node 1 from the registry record: node 1 registers with dev1 using
 * node 2's token, and dev1's next notification reaches app1 with app1's
 * own token, without app1 sending anything. */
static void test_adopter_continues_registration_and_observer(void **state)
{
    (void)state;
    register_dev1_on_2();
    tether_peer_t app = dtls_peer(20, "app1", TETHER_ROLE_CLIENT, 50100);
    tether_coap_msg_t m, up, r;
    get_msg(&m, TETHER_COAP_CON, 0x600, "zz", "dev1", "temp", 0);
    clear_cap();
    input(2, &app, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
    dev_answer(&up, "20", 2);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 20, 0, &r, -1) >= 0);
    X.alive[2] = false;
    X.drop = true;

    tether_store_device_t dev;
    memset(&dev, 0, sizeof dev);
    tether_store_get(X.store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, X.f[1].now,
                     dev_rec_cb, &dev);
    assert_int_equal(dev.node_id, 2);
    char regid[TETHER_STORE_REGID_MAX];
    snprintf(regid, sizeof regid, "%s", dev.regid);
    tether_link_t l9 = dtls_peer(9, "dev1", TETHER_ROLE_DEVICE, 40001).link;
    assert_int_equal(tether_node_device_adopt(X.f[1].node, &dev, &l9, X.f[1].now), 0);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(X.f[1].node, "dev1", &info), 0);
    assert_string_equal(info.regid, regid);
    assert_true(info.online);
    memset(&dev, 0, sizeof dev);
    tether_store_get(X.store, TETHER_STORE_DEVICE, (const uint8_t *)"dev1", 4, X.f[1].now,
                     dev_rec_cb, &dev);
    assert_int_equal(dev.node_id, 1); /* the directory names the adopter */

    reg_copy_t c;
    memset(&c, 0, sizeof c);
    uint64_t cursor = 0;
    tether_store_scan(X.store, TETHER_STORE_OBSERVE, cursor, X.f[1].now, copy_cb, &c);
    assert_true(c.key_len > 0);
    assert_int_equal(c.ob.node_id, 2);
    uint64_t origin;
    memcpy(&origin, c.ob.link + 1, sizeof origin);
    assert_true(origin == 20); /* app1's session on node 2 */
    tether_peer_t app21 = dtls_peer(21, "app1", TETHER_ROLE_CLIENT, 50100);
    clear_cap();
    assert_int_equal(tether_node_observer_adopt(X.f[1].node, &app21, c.key, c.key_len, c.ob.token,
                                                c.ob.tkl, c.utok, c.utok_len, X.f[1].now),
                     0);
    pump();
    int i = -1;
    do
        i = cap_find(1, TETHER_LINK_DTLS, 9, 0, &up, i);
    while (i >= 0 && (up.code != TETHER_COAP_GET || observe_of(&up) != 0));
    assert_true(i >= 0);
    assert_int_equal(up.tkl, c.utok_len);
    assert_memory_equal(up.token, c.utok, c.utok_len); /* node 2's registration goes on */
    clear_cap();
    dev_notify(1, 9, c.utok, c.utok_len, 7, "22");
    assert_true(cap_find(1, TETHER_LINK_DTLS, 21, 0, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "zz", 2);
    assert_memory_equal(r.payload, "22", 2);
    assert_int_equal(tether_node_stats(X.f[1].node)->observe_adopted, 1);
    /* garbage from the store is refused */
    assert_int_equal(tether_node_observer_adopt(X.f[1].node, &app21, c.key, 3, c.ob.token, c.ob.tkl,
                                                c.utok, c.utok_len, X.f[1].now),
                     TETHER_EPROTO);
    X.drop = false;
}

static int xsetup_bounded(void **state)
{
    x_pending_per_client = 2;
    x_observers_per_client = 1;
    int rc = xsetup(state);
    x_pending_per_client = x_observers_per_client = 0;
    return rc;
}

/* The security review: a client's requests and observations of devices
 * on another node were charged to nobody, so one client filled the
 * node-wide xrelay_max table (every client then got 5.03 "proxy busy")
 * and the observer table. It is charged as for a local device:
 * max_pending_per_client (4.29 with Max-Age beyond) and
 * max_observers_per_client (5.03); what ends gives the share back. */
/* A group member registered here whose tunnel moved to node 2 is asked
 * there (xrelay), and its answer is not cached here: requests for it pass
 * node 2's cache, so nothing would invalidate an entry here (issue 16,
 * group_cache.c). The next group request asks it again. */
static void test_group_member_elsewhere_not_cached(void **state)
{
    (void)state;
    assert_int_equal(do_register(&X.f[1], 5, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t old = dtls_peer(5, "dev1", TETHER_ROLE_DEVICE, 40005);
    tether_node_link_down(X.f[1].node, &old.link, X.f[1].now);
    tether_device_info_t info;
    assert_int_equal(tether_node_device(X.f[1].node, "dev1", &info), 0); /* still known here */
    assert_int_equal(do_register(&X.f[2], 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_node_out_clear(X.f[2].node);
    tether_node_out_clear(X.f[1].node);
    const char *mem[] = {"dev1"};
    assert_int_equal(tether_node_group_set(X.f[1].node, "grp", NULL, mem, 1), 0);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up, r;
    uint8_t t = 2;
    for (int round = 0; round < 2; round++) {
        get_msg(&m, TETHER_COAP_NON, (uint16_t)(0x4300 + round), "gk", "grp", "temp", -1);
        tether_coap_msg_add_opt(&m, 2 /* Multicast-Timeout */, &t, 1);
        clear_cap();
        input(1, &client, &m);
        /* relayed to node 2 both times (the first answer was not cached
         * here); the device is asked once, node 2 caches its answer */
        assert_int_equal(tether_node_stats(X.f[1].node)->group_members_sent, round + 1);
        if (round == 0) {
            assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
            dev_answer(&up, "21.5", -1);
        }
        assert_true(cap_find(1, TETHER_LINK_PLAIN, 0, 50000, &r, -1) >= 0);
        assert_int_equal(r.code, TETHER_COAP_CONTENT);
        assert_non_null(tether_coap_msg_find_opt(&r, 248 /* Reply-From */));
        advance_all(2100);
    }
    assert_int_equal(tether_node_stats(X.f[1].node)->group_from_cache, 0);
}

static void test_remote_requests_charged_to_the_client(void **state)
{
    (void)state;
    register_dev1_on_2();
    tether_peer_t app1 = dtls_peer(21, "app1", TETHER_ROLE_CLIENT, 50100);
    tether_peer_t other = plain_peer(50101);
    const tether_node_stats_t *s1 = tether_node_stats(X.f[1].node);
    const tether_node_stats_t *s2 = tether_node_stats(X.f[2].node); /* xrelay_served: XREQs */
    tether_coap_msg_t m, r, up, obs_up;
    /* one observer: the next one of app1 is refused, another client's is not */
    get_msg(&m, TETHER_COAP_NON, 0x500, "o1", "dev1", "temp", 0);
    clear_cap();
    input(1, &app1, &m);
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &obs_up, -1) >= 0);
    get_msg(&m, TETHER_COAP_NON, 0x501, "o2", "dev1", "hum", 0);
    clear_cap();
    input(1, &app1, &m);
    assert_true(cap_find(1, TETHER_LINK_DTLS, 21, 0, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(s1->bound_observers, 1);
    assert_int_equal(s2->xrelay_served, 1); /* not relayed */
    get_msg(&m, TETHER_COAP_NON, 0x502, "o3", "dev1", "hum", 0);
    input(1, &other, &m);
    assert_int_equal(s2->xrelay_served, 2);
    /* two pending requests: the third of app1 gets 4.29, another client's goes */
    clear_cap();
    for (int i = 0; i < 2; i++) {
        get_msg(&m, TETHER_COAP_NON, (uint16_t)(0x510 + i), i ? "p2" : "p1", "dev1", i ? "b" : "a",
                -1);
        input(1, &app1, &m);
    }
    assert_int_equal(s2->xrelay_served, 4);
    get_msg(&m, TETHER_COAP_NON, 0x512, "p3", "dev1", "c", -1);
    input(1, &app1, &m);
    assert_true(cap_find(1, TETHER_LINK_DTLS, 21, 0, &r, -1) >= 0);
    assert_int_equal(r.code, TETHER_COAP_TOO_MANY_REQUESTS);
    assert_true(tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_MAX_AGE) != NULL);
    assert_int_equal(s1->bound_pending, 1);
    assert_int_equal(s2->xrelay_served, 4);
    get_msg(&m, TETHER_COAP_NON, 0x513, "p4", "dev1", "c", -1);
    input(1, &other, &m);
    assert_int_equal(s2->xrelay_served, 5);
    /* an answer gives a pending share back, a deregistration an observer's */
    assert_true(cap_find(2, TETHER_LINK_DTLS, 7, 0, &up, -1) >= 0);
    dev_answer(&up, "1", -1);
    clear_cap();
    get_msg(&m, TETHER_COAP_NON, 0x514, "p5", "dev1", "d", -1);
    input(1, &app1, &m);
    assert_int_equal(s2->xrelay_served, 6);
    get_msg(&m, TETHER_COAP_NON, 0x515, "o1", "dev1", "temp", 1);
    input(1, &app1, &m);
    get_msg(&m, TETHER_COAP_NON, 0x516, "o4", "dev1", "hum", 0);
    clear_cap();
    input(1, &app1, &m);
    assert_int_equal(cap_find(1, TETHER_LINK_DTLS, 21, 0, &r, -1), -1); /* no 5.03 */
    assert_int_equal(s1->bound_observers, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_across_nodes, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_retransmitted_request_deduplicated, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_node_down_and_timeout, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_observe_across_nodes, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_observers_of_dead_node_removed, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_aggregate_refreshed_then_device_node_dies, xsetup,
                                        xteardown),
        cmocka_unit_test_setup_teardown(test_aggregate_follows_adopted_device, xsetup, xteardown),
        cmocka_unit_test_setup_teardown(test_adopter_continues_registration_and_observer, xsetup,
                                        xteardown),
        cmocka_unit_test_setup_teardown(test_remote_requests_charged_to_the_client, xsetup_bounded,
                                        xteardown),
        cmocka_unit_test_setup_teardown(test_group_member_elsewhere_not_cached, xsetup, xteardown),
    };
    return cmocka_run_group_tests_name("xrelay", tests, NULL, NULL);
}
