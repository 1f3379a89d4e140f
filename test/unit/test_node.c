/* Unit tests for lib/proxy/node.c: registration, relaying, ACLs, queue
 * mode and timeouts, the response cache, observe fan-out, driven without sockets and with a
 * stepped clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tether/log.h"
#include "tether/node.h"

typedef struct {
    tether_node_t *node;
    tether_creds_t *creds;
    tether_time_t now;
    char regid[16];
    uint16_t mid;
} fx_t;

static const char *creds_json =
    "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"00\", \"role\": \"client\","
    " \"allow\": [{\"devices\": \"dev*\", \"methods\": [\"GET\", \"POST\"]}]},"
    " {\"identity\": \"app2\", \"key_hex\": \"00\", \"role\": \"client\"}],"
    " \"psk_derived\": [{\"identity_prefix\": \"dev\", \"role\": \"device\","
    " \"master_hex\": \"00\"}]}";

static tether_peer_t dtls_peer(uint64_t id, const char *identity, tether_role_t role,
                               uint16_t port)
{
    tether_peer_t p = {.identity = identity, .role = role};
    p.link.kind = TETHER_LINK_DTLS;
    p.link.id = id;
    struct sockaddr_in *sin = (struct sockaddr_in *)&p.link.addr.ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(0x7f000001);
    p.link.addr.len = sizeof *sin;
    return p;
}

static tether_peer_t plain_peer(uint16_t port)
{
    tether_peer_t p = dtls_peer(0, NULL, TETHER_ROLE_CLIENT, port);
    p.link.kind = TETHER_LINK_PLAIN;
    return p;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char path[] = "/tmp/tether-test-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, creds_json, strlen(creds_json)), (ssize_t)strlen(creds_json));
    close(fd);
    char err[256];
    assert_int_equal(tether_creds_load(path, &f->creds, err, sizeof err), 0);
    unlink(path);
    tether_log_set_level(TETHER_LOG_WARN);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.queue_awake_ms = 500;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    f->now = 1000000;
    f->mid = 100;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_creds_free(f->creds);
    free(f);
    return 0;
}

/* Sends `m` from `p` and returns the number of datagrams the node queued. */
static size_t send_msg(fx_t *f, const tether_peer_t *p, const tether_coap_msg_t *m)
{
    uint8_t buf[1400];
    size_t len;
    tether_node_out_clear(f->node);
    assert_int_equal(tether_coap_encode(m, buf, sizeof buf, &len), 0);
    tether_node_input(f->node, p, buf, len, f->now);
    return tether_node_out_count(f->node);
}

/* Parses outbox entry i into m (pointing into the outbox). */
static const tether_out_t *out_msg(fx_t *f, size_t i, tether_coap_msg_t *m)
{
    tether_coap_perr_t perr;
    const tether_out_t *o = tether_node_out_get(f->node, i);
    assert_int_equal(tether_coap_parse(m, o->data, o->len, &perr), 0);
    return o;
}

static void advance(fx_t *f, tether_time_t ms)
{
    tether_node_out_clear(f->node);
    tether_time_t end = f->now + ms;
    for (;;) {
        tether_time_t d = tether_node_next_deadline(f->node);
        if (d > end)
            break;
        f->now = d > f->now ? d : f->now;
        tether_node_tick(f->node, f->now);
    }
    f->now = end;
}

static void add_path(tether_coap_msg_t *m, const char *seg)
{
    assert_int_equal(tether_coap_msg_add_opt(m, TETHER_COAP_OPT_URI_PATH, seg, strlen(seg)), 0);
}

static void add_query(tether_coap_msg_t *m, const char *q)
{
    assert_int_equal(tether_coap_msg_add_opt(m, TETHER_COAP_OPT_URI_QUERY, q, strlen(q)), 0);
}

/* Registers `name` from DTLS session `id`; returns the response code. */
static uint8_t do_register(fx_t *f, uint64_t id, const char *identity, const char *ep,
                           const char *extra_query)
{
    tether_peer_t dev = dtls_peer(id, identity, TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t m, r;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)"rg", 2);
    add_path(&m, "rd");
    char q[64];
    snprintf(q, sizeof q, "ep=%s", ep);
    add_query(&m, q);
    add_query(&m, "lt=60");
    if (extra_query)
        add_query(&m, extra_query);
    uint8_t cf = 40;
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, &cf, 1);
    m.payload = (const uint8_t *)"</temp>;obs,</big>";
    m.payload_len = strlen((const char *)m.payload);
    assert_true(send_msg(f, &dev, &m) >= 1); /* then re-registered observations */
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, m.mid);
    if (r.code == TETHER_COAP_CREATED) {
        const tether_coap_opt_t *o = tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_LOCATION_PATH);
        assert_non_null(o);
        assert_memory_equal(o->val, "rd", 2);
        o = tether_coap_msg_next_opt(&r, o);
        assert_non_null(o);
        memcpy(f->regid, o->val, o->len);
        f->regid[o->len] = 0;
    }
    return r.code;
}

/* A client GET for device/path with Uri-Host; returns the outbox size. */
static size_t client_get(fx_t *f, const tether_peer_t *client, const char *device,
                         const char *path, uint8_t type, uint16_t mid)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, type, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, device, strlen(device));
    add_path(&m, path);
    return send_msg(f, client, &m);
}

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

static void test_relay_piggybacked(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x1111), 1);
    tether_coap_msg_t up, r;
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(o->link.id, 7);
    assert_int_equal(up.type, TETHER_COAP_CON);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_URI_HOST));
    assert_true(tether_coap_path_equals(&up, "temp"));
    /* the device answers piggybacked */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    uint8_t cf = 0;
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_CONTENT_FORMAT, &cf, 0);
    ack.payload = (const uint8_t *)"21.5";
    ack.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &ack), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x1111);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(r.tkl, 3);
    assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "21.5", 4);
    /* a retransmission of the client's request gets the same answer, and
     * nothing goes to the device again */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x1111), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.payload_len, 4);
    /* nothing is left waiting */
    advance(f, 20000);
    assert_int_equal(tether_node_stats(f->node)->relay_timeouts, 0);
}

static void test_relay_errors_and_acl(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t r;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "nosuch", "temp", TETHER_COAP_CON, 1), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    tether_peer_t app1 = dtls_peer(20, "app1", TETHER_ROLE_CLIENT, 40020);
    tether_peer_t app2 = dtls_peer(21, "app2", TETHER_ROLE_CLIENT, 40021);
    tether_peer_t dev2 = dtls_peer(22, "dev2", TETHER_ROLE_DEVICE, 40022);
    assert_int_equal(client_get(f, &app1, "dev1", "temp", TETHER_COAP_CON, 2), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 7); /* allowed: relayed */
    assert_int_equal(client_get(f, &app2, "dev1", "temp", TETHER_COAP_CON, 3), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    assert_int_equal(client_get(f, &dev2, "dev1", "temp", TETHER_COAP_CON, 4), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    /* app1 may GET and POST, not DELETE */
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_DELETE, 5);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    assert_int_equal(send_msg(f, &app1, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    /* an unrecognised unsafe elective option cannot be forwarded: 5.02 */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 6);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    tether_coap_msg_add_opt(&m, 2050, "x", 1); /* elective, unsafe, unknown */
    assert_int_equal(send_msg(f, &app1, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
}

static void test_proxy_uri(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 9);
    const char *uri = "coap://dev1/big?x=1";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.id, 7);
    assert_true(tether_coap_path_equals(&up, "big"));
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_PROXY_URI));
    const tether_coap_opt_t *q = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_URI_QUERY);
    assert_non_null(q);
    assert_memory_equal(q->val, "x=1", 3);
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 10);
    uri = "http://dev1/big";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    out_msg(f, 0, &up);
    assert_int_equal(up.code, TETHER_COAP_PROXYING_NOT_SUPPORTED);
}

static void test_timeout_gives_504_separately(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x2222), 1);
    /* after the ACK delay the client gets an empty ACK */
    advance(f, 1000);
    tether_coap_msg_t r;
    size_t acks = 0, retrans = 0;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &r);
        if (o->link.kind == TETHER_LINK_PLAIN && r.type == TETHER_COAP_ACK && r.code == 0 &&
            r.mid == 0x2222)
            acks++;
    }
    assert_int_equal(acks, 1);
    /* the device stays silent: CON retransmissions, then 5.04 at the
     * request timeout (10 s by default), as a CON separate response */
    tether_time_t start = f->now;
    bool got = false;
    while (!got && f->now < start + 20000) {
        advance(f, 100);
        for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
            const tether_out_t *o = out_msg(f, i, &r);
            if (o->link.kind == TETHER_LINK_DTLS)
                retrans++;
            else if (r.code == TETHER_COAP_GATEWAY_TIMEOUT) {
                assert_int_equal(r.type, TETHER_COAP_CON);
                assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
                got = true;
            }
        }
    }
    assert_true(got);
    assert_true(retrans >= 2);
    assert_true(f->now <= start + 9000 + 100);
}

static void test_separate_response_from_device(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    assert_int_equal(client_get(f, &client, "dev1", "slow", TETHER_COAP_CON, 0x3333), 1);
    tether_coap_msg_t up, m, r;
    out_msg(f, 0, &up);
    uint8_t tok[8];
    memcpy(tok, up.token, up.tkl);
    uint8_t tkl = up.tkl;
    tether_coap_msg_init(&m, TETHER_COAP_ACK, 0, up.mid); /* empty ACK */
    assert_int_equal(send_msg(f, &dev, &m), 0);
    advance(f, 1500); /* client gets its empty ACK meanwhile */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_CONTENT, 0x5151);
    tether_coap_msg_set_token(&m, tok, tkl);
    m.payload = (const uint8_t *)"slow";
    m.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &m), 2);
    bool acked_dev = false, answered = false;
    for (size_t i = 0; i < 2; i++) {
        const tether_out_t *o = out_msg(f, i, &r);
        if (o->link.kind == TETHER_LINK_DTLS) {
            acked_dev = r.type == TETHER_COAP_ACK && r.mid == 0x5151 && r.code == 0;
        } else {
            answered = r.type == TETHER_COAP_CON && r.code == TETHER_COAP_CONTENT &&
                       r.payload_len == 4;
        }
    }
    assert_true(acked_dev);
    assert_true(answered);
    /* the device's retransmission is acknowledged again, not relayed */
    assert_int_equal(send_msg(f, &dev, &m), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(r.type, TETHER_COAP_ACK);
}

static void test_queue_mode_delivers_on_wake(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", "b=UQ"), TETHER_COAP_CREATED);
    advance(f, 2000); /* past the awake window: asleep */
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x4444), 0);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 1);
    advance(f, 5000); /* still asleep: only the client's empty ACK went out */
    tether_device_info_t info;
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_int_equal(info.queued, 1);
    /* the device wakes and updates its registration */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40999);
    tether_coap_msg_t m, r, up;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, 0x0777);
    add_path(&m, "rd");
    add_path(&m, f->regid);
    assert_int_equal(send_msg(f, &dev, &m), 2);
    bool changed = false;
    size_t up_i = 9;
    for (size_t i = 0; i < 2; i++) {
        out_msg(f, i, &r);
        if (r.code == TETHER_COAP_CHANGED)
            changed = true;
        else if (r.code == TETHER_COAP_GET)
            up_i = i;
    }
    assert_true(changed);
    assert_true(up_i < 2);
    out_msg(f, up_i, &up);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    ack.payload = (const uint8_t *)"19.0";
    ack.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &ack), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_CON); /* separate: the client was ACKed long ago */
    assert_int_equal(r.payload_len, 4);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 0);
    /* NAT learning: the address changed after a ~7 s gap */
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_true(info.nat_binding_max_ms > 0 && info.nat_binding_max_ms <= 8000);
}

static void test_queue_ttl_and_link_down(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    /* in flight when the tunnel drops: 5.02 */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_NON, 0x5555), 1);
    tether_link_t l = {.kind = TETHER_LINK_DTLS, .id = 7};
    tether_node_out_clear(f->node);
    tether_node_link_down(f->node, &l, f->now);
    tether_coap_msg_t r;
    assert_int_equal(tether_node_out_count(f->node), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    /* tunnel down: requests are queued and get 5.04 at the TTL (60 s) */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_NON, 0x5556), 0);
    advance(f, 59000);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 1);
    advance(f, 1001);
    assert_int_equal(tether_node_out_count(f->node), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_GATEWAY_TIMEOUT);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 0);
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

/* ---- response cache ---------------------------------------------------------- */

/* The device (session 7) answers the upstream request `up` piggybacked
 * with `code`, `payload`, Max-Age (< 0: none) and ETag (NULL: none);
 * returns the outbox size. */
static size_t dev_answer(fx_t *f, const tether_coap_msg_t *up, uint8_t code, const char *payload,
                         long max_age, const char *etag)
{
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t ma[4];
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, code, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    if (max_age >= 0)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_MAX_AGE, ma,
                                tether_coap_uint_encode((uint32_t)max_age, ma));
    if (etag)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    ack.payload = (const uint8_t *)payload;
    ack.payload_len = strlen(payload);
    return send_msg(f, &dev, &ack);
}

/* A client request with `code` for dev1/`path` from `client`. */
static size_t client_req(fx_t *f, const tether_peer_t *client, uint8_t type, uint8_t code,
                         const char *path, uint16_t mid, const char *etag)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, type, code, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, path);
    if (etag)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    return send_msg(f, client, &m);
}

static uint32_t max_age_of(const tether_coap_msg_t *m)
{
    uint32_t v = 0xffffffff;
    assert_int_equal(tether_coap_msg_get_uint(m, TETHER_COAP_OPT_MAX_AGE, &v), 0);
    return v;
}

static void test_cache_hit_then_expiry(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x100), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "21.5", 5, NULL), 1);
    /* within Max-Age: answered piggybacked from the cache, the device is
     * not asked, the Max-Age left is served */
    advance(f, 2000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x101), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x101);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "21.5", 4);
    assert_int_equal(max_age_of(&r), 3);
    /* a NON request gets a NON answer; a client using Proxy-Uri shares the entry */
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 0x102);
    const char *uri = "coap://dev1/temp";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(r.payload_len, 4);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->cache_hits, 2);
    assert_int_equal(st->cache_misses, 1);
    assert_int_equal(st->requests_relayed, 1);
    assert_int_equal(st->cache_entries, 1);
    assert_true(st->cache_bytes > 4);
    /* after Max-Age the device is asked again */
    advance(f, 3000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x103), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "22.0", 0, NULL), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "22.0", 4);
    assert_int_equal(st->cache_misses, 2);
    /* Max-Age 0 is not stored */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x104), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(st->cache_entries, 0);
}

static void test_cache_etag_revalidation(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 1, NULL), 1);
    out_msg(f, 0, &up);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "20.0", 1, "e1"), 1);
    advance(f, 1500);
    /* stale: relayed with the entry's ETag; the 2.03 refreshes the entry
     * and the client, which sent no ETag, gets the representation */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 2, NULL), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "e1", 2);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 30, "e1"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(r.mid, 2);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "20.0", 4);
    assert_int_equal(max_age_of(&r), 30);
    assert_int_equal(tether_node_stats(f->node)->cache_revalidated, 1);
    /* fresh again: a client holding e1 gets 2.03 from the cache */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 3, "e1"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.code, TETHER_COAP_VALID);
    assert_int_equal(r.payload_len, 0);
    et = tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "e1", 2);
    /* stale again, the client holding e1 itself: the device's 2.03 is
     * passed on as a 2.03 */
    advance(f, 31000);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 4, "e1"), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 10, "e1"), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_VALID);
    assert_int_equal(max_age_of(&r), 10);
    /* a new representation replaces the entry */
    advance(f, 11000);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 5, NULL), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "25.0", 10, "e2"), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "25.0", 4);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 6, NULL), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "25.0", 4);
    assert_int_equal(tether_node_stats(f->node)->cache_hits, 2);
}

/* Sends a GET for dev1/`path`: true when the cache answered it (the
 * device was not asked); otherwise the device's request is in *up. */
static bool get_cached(fx_t *f, const tether_peer_t *client, const char *path, uint16_t mid,
                       tether_coap_msg_t *up)
{
    assert_int_equal(client_req(f, client, TETHER_COAP_CON, TETHER_COAP_GET, path, mid, NULL), 1);
    const tether_out_t *o = out_msg(f, 0, up);
    return o->link.kind == TETHER_LINK_PLAIN;
}

static void test_cache_invalidated_by_unsafe_requests(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    uint16_t mid = 10;
    const uint8_t methods[] = {TETHER_COAP_POST, TETHER_COAP_PUT, TETHER_COAP_DELETE};
    const char *paths[] = {"l0", "l1", "l2"};
    for (size_t i = 0; i < sizeof methods; i++) {
        assert_false(get_cached(f, &client, paths[i], mid++, &up));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "off", 60, NULL), 1);
        assert_true(get_cached(f, &client, paths[i], mid++, &up));
        /* the unsafe request is relayed and the entry is gone at once */
        assert_int_equal(
            client_req(f, &client, TETHER_COAP_CON, methods[i], paths[i], mid++, NULL), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
        assert_int_equal(up.code, methods[i]);
        assert_int_equal(tether_node_stats(f->node)->cache_entries, i);
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CHANGED, "", -1, NULL), 1);
        assert_false(get_cached(f, &client, paths[i], mid++, &up));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "on", -1, NULL), 1);
        assert_true(get_cached(f, &client, paths[i], mid++, &up));
    }
    assert_int_equal(tether_node_stats(f->node)->cache_invalidations, 3);
    /* a GET cached while a POST is in flight is dropped by the POST's 2.04 */
    assert_int_equal(
        client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_POST, "l0", mid++, NULL), 1);
    tether_coap_msg_t post;
    out_msg(f, 0, &post);
    uint8_t ptok[8], ptkl = post.tkl;
    uint16_t pmid = post.mid;
    memcpy(ptok, post.token, ptkl);
    tether_coap_msg_init(&post, TETHER_COAP_CON, TETHER_COAP_POST, pmid);
    tether_coap_msg_set_token(&post, ptok, ptkl);
    assert_false(get_cached(f, &client, "l0", mid++, &up));
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "dim", 60, NULL), 1);
    assert_true(get_cached(f, &client, "l0", mid++, &up));
    assert_int_equal(dev_answer(f, &post, TETHER_COAP_CHANGED, "", -1, NULL), 1);
    assert_false(get_cached(f, &client, "l0", mid++, &up));
    /* other paths were not touched */
    assert_true(get_cached(f, &client, "l1", mid++, &up));
}

static void test_cache_oscore_and_operator_bypass(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up, r;
    for (uint16_t mid = 1; mid <= 2; mid++) {
        tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, mid);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OSCORE, "\x09", 1);
        assert_int_equal(send_msg(f, &client, &m), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS); /* relayed both times */
        assert_non_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_OSCORE));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "sealed", 60, NULL), 1);
        out_msg(f, 0, &r);
        assert_int_equal(r.payload_len, 6);
    }
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->cache_entries, 0);
    assert_int_equal(st->cache_hits + st->cache_misses, 0);
    /* an operator request (internal link) reaches the device even when a
     * fresh entry exists, and refreshes it */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 3), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "1.0", 60, NULL), 1);
    tether_peer_t op = {.link = {.kind = TETHER_LINK_INTERNAL, .id = 99}};
    assert_int_equal(client_get(f, &op, "dev1", "temp", TETHER_COAP_CON, 4), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "2.0", 60, NULL), 1);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 5), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_memory_equal(r.payload, "2.0", 3);
}

/* A node whose cache holds one small entry: the entry a revalidation is
 * for may be evicted before the device's 2.03 arrives. */
static void test_cache_entry_evicted_during_revalidation(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.cache_bytes = 300; /* one entry of ~200 bytes with its path group */
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, upb, r;
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "a", 1, NULL), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "A1", 1, "ea"), 1);
    assert_int_equal(tether_node_stats(f->node)->cache_entries, 1);
    advance(f, 1500);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "a", 2, NULL), 1);
    out_msg(f, 0, &up);
    assert_non_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    uint8_t atok[8], atkl = up.tkl;
    memcpy(atok, up.token, atkl);
    uint16_t amid = up.mid;
    /* meanwhile /b is stored and pushes /a out */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "b", 3, NULL), 1);
    out_msg(f, 0, &upb);
    assert_int_equal(dev_answer(f, &upb, TETHER_COAP_CONTENT, "B1", 60, NULL), 1);
    assert_int_equal(tether_node_stats(f->node)->cache_entries, 1);
    assert_int_equal(tether_node_stats(f->node)->cache_evictions, 1);
    /* the 2.03 for /a finds nothing to serve: the request goes again,
     * without the ETag, and the client gets the device's representation */
    tether_coap_msg_init(&up, TETHER_COAP_CON, TETHER_COAP_GET, amid);
    tether_coap_msg_set_token(&up, atok, atkl);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 60, "ea"), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_true(tether_coap_path_equals(&up, "a"));
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    assert_int_not_equal(up.mid, amid);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "A2", 60, "ea2"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.mid, 2);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.payload, "A2", 2);
    assert_int_equal(tether_node_pending(f->node), 0);
}

static void test_cache_disabled(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.cache_bytes = 0;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    for (uint16_t mid = 1; mid <= 2; mid++) {
        assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, mid), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "1", 60, NULL), 1);
    }
    assert_int_equal(tether_node_stats(f->node)->cache_hits, 0);
    assert_int_equal(tether_node_stats(f->node)->cache_misses, 0);
}

/* ---- observe ------------------------------------------------------------------ */

/* A client GET with Observe `ov` for dev/path with token tok; returns the
 * outbox size. */
static size_t obs_get(fx_t *f, const tether_peer_t *client, const char *dev, const char *path,
                      uint8_t type, uint16_t mid, const char *tok, int ov)
{
    tether_coap_msg_t m;
    uint8_t v = (uint8_t)ov;
    tether_coap_msg_init(&m, type, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)tok, strlen(tok));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, dev, strlen(dev));
    if (ov >= 0)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &v, ov ? 1 : 0);
    add_path(&m, path);
    return send_msg(f, client, &m);
}

/* Index of the outbox entry going to link (kind, id), or -1. */
static int out_find(fx_t *f, uint8_t kind, uint64_t id, tether_coap_msg_t *m)
{
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, m);
        if (o->link.kind == kind && (kind == TETHER_LINK_PLAIN || o->link.id == id))
            return (int)i;
    }
    return -1;
}

static uint32_t observe_of(const tether_coap_msg_t *m)
{
    uint32_t v = 0xffffffff;
    tether_coap_msg_get_uint(m, TETHER_COAP_OPT_OBSERVE, &v);
    return v;
}

/* The device on session `link_id` sends a notification (or any response)
 * with token tok of type `type`; Observe `ov` < 0: none. Returns the
 * outbox size. */
static size_t dev_notify(fx_t *f, uint64_t link_id, const uint8_t *tok, uint8_t type,
                         uint16_t mid, uint8_t code, int ov, const char *payload)
{
    tether_peer_t dev = dtls_peer(link_id, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t m;
    uint8_t v = (uint8_t)ov;
    tether_coap_msg_init(&m, type, code, mid);
    tether_coap_msg_set_token(&m, tok, 4);
    if (ov >= 0)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &v, 1);
    m.payload = (const uint8_t *)payload;
    m.payload_len = strlen(payload);
    return send_msg(f, &dev, &m);
}

static void test_observe_shared_fanout(void **state)
{
    fx_t *f = *state;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_peer_t b = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t up, r;
    /* the first observer: one registration upstream, an empty ACK */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x10, "aa", 0), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    assert_int_equal(up.type, TETHER_COAP_CON);
    assert_int_equal(observe_of(&up), 0);
    assert_int_equal(up.tkl, 4);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.code, 0);
    /* the second observer (NON) shares it: nothing goes to the device */
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_NON, 0x20, "bbb", 0), 0);
    assert_int_equal(st->observe_device_observations, 1);
    assert_int_equal(st->observe_observers, 2);
    /* the device's first notification (piggybacked) reaches both, each with
     * its token and tether's Observe value */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t five = 5;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, utok, 4);
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_OBSERVE, &five, 1);
    ack.payload = (const uint8_t *)"20";
    ack.payload_len = 2;
    assert_int_equal(send_msg(f, &dev, &ack), 2);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_memory_equal(r.token, "aa", 2);
    uint32_t seq_a = observe_of(&r);
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    assert_memory_equal(r.token, "bbb", 3);
    assert_int_equal(observe_of(&r), seq_a);
    assert_memory_equal(r.payload, "20", 2);
    /* NON notifications fan out as NON with increasing Observe values */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 3, "21"),
                     2);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(observe_of(&r), seq_a + 1);
    assert_memory_equal(r.payload, "21", 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    uint16_t b_mid = r.mid;
    assert_int_equal(observe_of(&r), seq_a + 1);
    /* a CON notification: ACKed to the device, CON to the clients */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_CON, 0x501, TETHER_COAP_CONTENT, 4, "22"),
                     3);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x501);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    assert_int_equal(observe_of(&r), seq_a + 2);
    uint16_t a_mid = r.mid;
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    b_mid = r.mid;
    tether_coap_msg_t ca;
    tether_coap_msg_init(&ca, TETHER_COAP_ACK, 0, a_mid);
    assert_int_equal(send_msg(f, &a, &ca), 0);
    assert_int_equal(st->observe_notifications_sent, 6);
    /* notifications keep the cache fresh: a plain GET is a hit */
    tether_peer_t c = plain_peer(50002);
    assert_int_equal(obs_get(f, &c, "dev1", "temp", TETHER_COAP_CON, 0x30, "c", -1), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.payload, "22", 2);
    assert_int_equal(st->cache_hits, 1);
    /* b rejects its CON notification with RST: b is gone, a stays */
    tether_coap_msg_t rst;
    tether_coap_msg_init(&rst, TETHER_COAP_RST, 0, b_mid);
    assert_int_equal(send_msg(f, &b, &rst), 0);
    assert_int_equal(st->observe_observers, 1);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x502, TETHER_COAP_CONTENT, 6, "23"),
                     1);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(observe_of(&r), seq_a + 3);
    /* a deregisters (Observe: 1, same token): the device-side observation
     * is cancelled with the upstream token, a gets a plain answer */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x11, "aa", 1), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    assert_int_equal(observe_of(&up), 1);
    assert_memory_equal(up.token, utok, 4);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(observe_of(&r), 0xffffffff);
    assert_int_equal(st->observe_device_observations, 0);
    assert_int_equal(st->observe_observers, 0);
    /* a late notification is rejected */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x503, TETHER_COAP_CONTENT, 7, "24"),
                     1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_RST);
}

static void test_observe_late_joiner_and_nonnotification(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000), b = plain_peer(50001);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 9, "20"),
                     1);
    out_msg(f, 0, &r);
    uint32_t seq = observe_of(&r);
    /* a later observer is answered at once with the latest notification */
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_CON, 0x20, "bb", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x20);
    assert_memory_equal(r.token, "bb", 2);
    assert_int_equal(observe_of(&r), seq);
    assert_memory_equal(r.payload, "20", 2);
    /* an error from the device ends the observation for everyone */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x501, TETHER_COAP_NOT_FOUND, -1, ""),
                     2);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    assert_int_equal(observe_of(&r), 0xffffffff);
    out_msg(f, 1, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
    /* a response without Observe (resource not observable) ends it too */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x12, "aa", 0), 1);
    out_msg(f, 0, &up);
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x502, TETHER_COAP_CONTENT, -1, "x"),
                     1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(observe_of(&r), 0xffffffff);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

static void test_observe_device_relink(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 40, "1"),
                     1);
    out_msg(f, 0, &r);
    uint32_t seq = observe_of(&r);
    /* the device's session ends and it comes back on a new one
     * (re-handshake): tether registers the observation there by itself */
    tether_peer_t old = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_node_link_down(f->node, &old.link, f->now);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 1);
    assert_int_equal(do_register(f, 8, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    assert_int_equal(tether_node_out_count(f->node), 2);
    /* the 2.01, then the registration of the observation */
    assert_int_equal(out_msg(f, 1, &up)->link.id, 8);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_int_equal(observe_of(&up), 0);
    assert_memory_equal(up.token, utok, 4);
    /* the device restarted its own counter: the client's keeps growing */
    assert_int_equal(dev_notify(f, 8, utok, TETHER_COAP_NON, 0x10, TETHER_COAP_CONTENT, 2, "2"), 1);
    out_msg(f, 0, &r);
    assert_int_equal(observe_of(&r), seq + 1);
    assert_memory_equal(r.payload, "2", 1);
    /* the device going away ends it with 5.02 */
    tether_node_out_clear(f->node);
    assert_int_equal(tether_node_device_remove(f->node, "dev1", f->now), 0);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
}

static void test_observe_client_gone(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_peer_t b = dtls_peer(10, "app1", TETHER_ROLE_CLIENT, 40002);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_NON, 0x10, "bb", 0), 0);
    /* a's DTLS session ends: a stops observing, the observation stays */
    tether_node_link_down(f->node, &a.link, f->now);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 1);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 1);
    /* b never acknowledges a CON notification: removed at the CON timeout,
     * the last observer leaving cancels the device side */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_CON, 0x500, TETHER_COAP_CONTENT, 2, "1"), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 10, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    advance(f, 120000);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

static void test_observe_limits(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.max_observers = 3;
    c.max_observers_per_resource = 2;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_coap_msg_t r;
    tether_peer_t p[4] = {plain_peer(50000), plain_peer(50001), plain_peer(50002),
                          plain_peer(50003)};
    assert_int_equal(obs_get(f, &p[0], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 2);
    assert_int_equal(obs_get(f, &p[1], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, 0);
    /* per resource */
    assert_int_equal(obs_get(f, &p[2], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    /* another resource (its own observation), then the node-wide bound */
    assert_int_equal(obs_get(f, &p[2], "dev1", "hum", TETHER_COAP_CON, 2, "a", 0), 2);
    assert_int_equal(obs_get(f, &p[3], "dev1", "hum", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(tether_node_stats(f->node)->observe_rejected, 2);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 2);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_and_ep_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_piggybacked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_errors_and_acl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_gives_504_separately, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separate_response_from_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_mode_delivers_on_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_ttl_and_link_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rd_update_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hit_then_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_etag_revalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_invalidated_by_unsafe_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_oscore_and_operator_bypass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_entry_evicted_during_revalidation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_shared_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_late_joiner_and_nonnotification, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_observe_device_relink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
