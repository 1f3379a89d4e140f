/* The fixture of the node's unit tests (test_relay.c, test_rd.c,
 * test_relay_cache.c, test_observe.c): a node with test credentials, a
 * stepped clock and helpers that play devices and clients, driven without
 * sockets through the public node API. */
#ifndef TETHER_TEST_NODE_FIXTURE_H
#define TETHER_TEST_NODE_FIXTURE_H

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

static inline tether_peer_t dtls_peer(uint64_t id, const char *identity, tether_role_t role,
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

static inline tether_peer_t plain_peer(uint16_t port)
{
    tether_peer_t p = dtls_peer(0, NULL, TETHER_ROLE_CLIENT, port);
    p.link.kind = TETHER_LINK_PLAIN;
    return p;
}

/* creds_json loaded as a credentials file is. */
static inline tether_creds_t *load_creds(void)
{
    char path[] = "/tmp/tether-test-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, creds_json, strlen(creds_json)), (ssize_t)strlen(creds_json));
    close(fd);
    char err[256];
    tether_creds_t *creds;
    assert_int_equal(tether_creds_load(path, &creds, err, sizeof err), 0);
    unlink(path);
    return creds;
}

static inline int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->creds = load_creds();
    tether_log_set_level(TETHER_LOG_WARN);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.queue_awake_ms = 500;
    /* Several tests have more than one request outstanding to a device;
     * NSTART (RFC 7252 §4.7) has its own tests in test_bounds.c. */
    c.nstart = 0;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    f->now = 1000000;
    f->mid = 100;
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_creds_free(f->creds);
    free(f);
    return 0;
}

/* Sends `m` from `p` and returns the number of datagrams the node queued. */
static inline size_t send_msg(fx_t *f, const tether_peer_t *p, const tether_coap_msg_t *m)
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

static inline void advance(fx_t *f, tether_time_t ms)
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

static inline void add_path(tether_coap_msg_t *m, const char *seg)
{
    assert_int_equal(tether_coap_msg_add_opt(m, TETHER_COAP_OPT_URI_PATH, seg, strlen(seg)), 0);
}

static inline void add_query(tether_coap_msg_t *m, const char *q)
{
    assert_int_equal(tether_coap_msg_add_opt(m, TETHER_COAP_OPT_URI_QUERY, q, strlen(q)), 0);
}

/* Registers `name` from DTLS session `id`; returns the response code. */
static inline uint8_t do_register(fx_t *f, uint64_t id, const char *identity, const char *ep,
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
static inline size_t client_get(fx_t *f, const tether_peer_t *client, const char *device,
                         const char *path, uint8_t type, uint16_t mid)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, type, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, device, strlen(device));
    add_path(&m, path);
    return send_msg(f, client, &m);
}

/* Index of the outbox entry going to link (kind, id), or -1. */
static inline int out_find(fx_t *f, uint8_t kind, uint64_t id, tether_coap_msg_t *m)
{
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, m);
        if (o->link.kind == kind && (kind == TETHER_LINK_PLAIN || o->link.id == id))
            return (int)i;
    }
    return -1;
}

#endif
