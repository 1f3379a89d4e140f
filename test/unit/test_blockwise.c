/* Unit tests for lib/proxy/blockwise.c: Block2 reassembly, caching and
 * serving in the client's block size, one transfer for many clients, ETag
 * change restarts, what a misbehaving device gets (wrong NUM, short
 * blocks, huge Size2, endless blocks, reserved SZX), tether's own
 * resources in blocks, and Block1 uploads (Request-Tag, order, Size1 and
 * 4.13, per-device bound, the cache untouched until the end, abandoned
 * uploads forgotten). */
#include "node_fixture.h"
#include "proxy/blockwise.h"

#define DEV_SESSION 7

static uint8_t rep[8192];    /* the device's representation */
static int dev_max_age = -1; /* >= 0: the device's blocks carry this Max-Age */

static void fill_rep(char seed)
{
    for (size_t i = 0; i < sizeof rep; i++)
        rep[i] = (uint8_t)(seed + i % 23);
}

static void add_block(tether_coap_msg_t *m, uint16_t opt, uint32_t num, bool more, uint8_t szx,
                      uint8_t val[3])
{
    tether_coap_block_t b = {.num = num, .more = more, .szx = szx};
    size_t len;
    assert_int_equal(tether_coap_block_encode(&b, val, &len), 0);
    assert_int_equal(tether_coap_msg_add_opt(m, opt, val, len), 0);
}

static tether_coap_block_t block_of(const tether_coap_msg_t *m, uint16_t opt)
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, opt);
    tether_coap_block_t b;
    assert_non_null(o);
    assert_int_equal(tether_coap_block_decode(o->val, o->len, &b), 0);
    return b;
}

/* A client GET for dev1/path with Block2 (szx < 0: none) and Size2. */
static size_t get_block(fx_t *f, const tether_peer_t *c, const char *path, uint16_t mid, int num,
                        int szx, bool size2)
{
    tether_coap_msg_t m;
    uint8_t bv[3];
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)&mid, 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, path);
    if (szx >= 0)
        add_block(&m, TETHER_COAP_OPT_BLOCK2, (uint32_t)num, false, (uint8_t)szx, bv);
    if (size2)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_SIZE2, NULL, 0);
    return send_msg(f, c, &m);
}

/* The device answers upstream request `up` with block `num` of
 * rep[0..total) in size 16 << szx (the payload length forced to `len`
 * when >= 0), ETag `etag`, and Size2 `size2` when > 0. */
static size_t dev_block(fx_t *f, const tether_coap_msg_t *up, uint32_t num, uint8_t szx,
                        size_t total, const char *etag, long len, uint32_t size2, bool more_force)
{
    tether_peer_t dev = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t bv[3], sz[4];
    size_t size = tether_coap_block_size(szx), off = (size_t)num * size;
    size_t n = off < total ? (total - off < size ? total - off : size) : 0;
    bool more = off + n < total || more_force;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    if (etag)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    add_block(&ack, TETHER_COAP_OPT_BLOCK2, num, more, szx, bv);
    uint8_t ma[4];
    if (dev_max_age >= 0)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_MAX_AGE, ma,
                                tether_coap_uint_encode((uint32_t)dev_max_age, ma));
    if (size2)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_SIZE2, sz,
                                tether_coap_uint_encode(size2, sz));
    ack.payload = rep + (off < total ? off : 0); /* endless blocks repeat the start */
    ack.payload_len = len >= 0 ? (size_t)len : n;
    return send_msg(f, &dev, &ack);
}

/* The request the node sent the device (the only datagram to it). */
static void upstream(fx_t *f, tether_coap_msg_t *up)
{
    assert_true(out_find(f, TETHER_LINK_DTLS, DEV_SESSION, up) >= 0);
}

/* Plays the device through a whole transfer of rep[0..total) in 1024s
 * starting with the request `up` already sent. */
static void dev_serve_all(fx_t *f, tether_coap_msg_t *up, size_t total, const char *etag)
{
    for (uint32_t num = 0;; num++) {
        tether_coap_block_t b = block_of(up, TETHER_COAP_OPT_BLOCK2);
        assert_int_equal(b.num, num);
        assert_int_equal(b.szx, 6);
        dev_block(f, up, num, 6, total, etag, -1, 0, false);
        if ((num + 1) * 1024 >= total)
            return;
        upstream(f, up);
    }
}

static void test_reassembled_and_served_in_client_sizes(void **state)
{
    fx_t *f = *state;
    fill_rep('A');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    /* early negotiation: block 0 of 16 bytes, Size2 asked */
    assert_int_equal(get_block(f, &client, "big", 1, 0, 0, true), 1);
    upstream(f, &up);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_SIZE2));
    dev_serve_all(f, &up, 3000, "v1");
    int i = out_find(f, TETHER_LINK_PLAIN, 0, &r);
    assert_true(i >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK); /* piggybacked: the transfer was quick */
    assert_int_equal(r.mid, 1);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    tether_coap_block_t b = block_of(&r, TETHER_COAP_OPT_BLOCK2);
    assert_int_equal(b.num, 0);
    assert_true(b.more);
    assert_int_equal(b.szx, 0);
    assert_int_equal(r.payload_len, 16);
    assert_memory_equal(r.payload, rep, 16);
    uint32_t size2 = 0;
    assert_int_equal(tether_coap_msg_get_uint(&r, TETHER_COAP_OPT_SIZE2, &size2), 0);
    assert_int_equal(size2, 3000);
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "v1", 2);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->block_transfers, 1);
    assert_int_equal(st->block_blocks_fetched, 3);
    /* later blocks, any size, from the cache: the device is not asked */
    uint32_t before = (uint32_t)st->requests_relayed;
    for (uint32_t num = 1; num < 3000 / 64 + 1; num++) {
        assert_int_equal(get_block(f, &client, "big", (uint16_t)(10 + num), (int)num, 2, false), 1);
        out_msg(f, 0, &r);
        b = block_of(&r, TETHER_COAP_OPT_BLOCK2);
        assert_int_equal(b.num, num);
        size_t want = 3000 - num * 64 < 64 ? 3000 - num * 64 : 64;
        assert_int_equal(r.payload_len, want);
        assert_memory_equal(r.payload, rep + num * 64, want);
        assert_int_equal(b.more, num * 64 + want < 3000);
    }
    assert_int_equal(st->requests_relayed, before);
    /* beyond the end: 4.02 */
    assert_int_equal(get_block(f, &client, "big", 200, 3000 / 16 + 1, 0, false), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_OPTION);
    /* a client without Block2 gets the first 1024 bytes */
    assert_int_equal(get_block(f, &client, "big", 201, 0, -1, false), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.payload_len, 1024);
    assert_true(block_of(&r, TETHER_COAP_OPT_BLOCK2).more);
}

/* A representation the cache does not keep (Max-Age 0) is served from
 * the transfer for the client's later blocks, but only for
 * proxy.block_idle_ms from its reassembly: asking for later blocks does
 * not keep a stale copy alive (then it is fetched again). */
static void test_uncached_representation_not_kept_forever(void **state)
{
    fx_t *f = *state;
    fill_rep('K');
    dev_max_age = 0;
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50001);
    tether_coap_msg_t up, r;
    assert_int_equal(get_block(f, &client, "big", 1, 0, 0, false), 1);
    upstream(f, &up);
    dev_serve_all(f, &up, 3000, "k1");
    out_msg(f, 0, &r);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    uint64_t relayed = st->requests_relayed;
    for (int num = 1; num <= 4; num++) { /* every 6 s: within the idle window each time */
        advance(f, 6000);
        assert_int_equal(get_block(f, &client, "big", (uint16_t)(10 + num), num, 0, false), 1);
        out_msg(f, 0, &r);
        assert_memory_equal(r.payload, rep + num * 16, 16);
    }
    assert_int_equal(st->requests_relayed, relayed); /* from the kept copy */
    advance(f, 8000);                                /* 32 s after reassembly */
    assert_int_equal(get_block(f, &client, "big", 20, 6, 0, false), 1);
    upstream(f, &up); /* fetched again */
    dev_max_age = -1;
}

static void test_many_clients_one_transfer(void **state)
{
    fx_t *f = *state;
    fill_rep('a');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_coap_msg_t up, r;
    for (uint16_t c = 0; c < 8; c++) {
        tether_peer_t client = plain_peer((uint16_t)(50000 + c));
        size_t n = get_block(f, &client, "big", (uint16_t)(100 + c), 0, (int)(c % 7), false);
        if (c == 0) {
            assert_int_equal(n, 1);
            upstream(f, &up);
        } else {
            assert_int_equal(n, 0); /* waits: no second upstream request */
        }
    }
    dev_serve_all(f, &up, 2500, NULL);
    size_t answered = 0;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &r);
        if (o->link.kind != TETHER_LINK_PLAIN)
            continue;
        uint16_t c = (uint16_t)(ntohs(((struct sockaddr_in *)&o->link.addr.ss)->sin_port) - 50000);
        assert_int_equal(r.mid, 100 + c);
        size_t size = tether_coap_block_size((uint8_t)(c % 7));
        assert_int_equal(r.payload_len, size < 2500 ? size : 2500);
        assert_memory_equal(r.payload, rep, r.payload_len);
        answered++;
    }
    assert_int_equal(answered, 8);
    assert_int_equal(tether_node_stats(f->node)->block_transfers, 1);
    assert_int_equal(tether_node_stats(f->node)->block_blocks_fetched, 3);
    assert_int_equal(tether_node_pending(f->node), 0);
}

static void test_client_without_block2_is_adopted(void **state)
{
    fx_t *f = *state;
    fill_rep('0');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(get_block(f, &client, "big", 1, 0, -1, false), 1);
    upstream(f, &up);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_BLOCK2));
    /* the device answers in 256-byte blocks of its own choosing */
    assert_int_equal(dev_block(f, &up, 0, 4, 600, NULL, -1, 0, false), 1);
    upstream(f, &up);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).num, 1);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).szx, 4);
    dev_block(f, &up, 1, 4, 600, NULL, -1, 0, false);
    upstream(f, &up);
    dev_block(f, &up, 2, 4, 600, NULL, -1, 0, false);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.payload_len, 600); /* fits 1024: whole, no Block2 asked */
    assert_memory_equal(r.payload, rep, 600);
}

static void test_etag_change_restarts(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    fill_rep('a');
    assert_int_equal(get_block(f, &client, "big", 1, 0, 6, false), 1);
    upstream(f, &up);
    dev_block(f, &up, 0, 6, 3000, "A", -1, 0, false);
    upstream(f, &up);
    /* the resource changed: block 1 comes with ETag B */
    fill_rep('x');
    dev_block(f, &up, 1, 6, 3000, "B", -1, 0, false);
    upstream(f, &up);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).num, 0); /* from the start */
    assert_int_equal(tether_node_stats(f->node)->block_restarts, 1);
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &r), -1);
    dev_serve_all(f, &up, 3000, "B");
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_memory_equal(r.payload, rep, 1024); /* version B only */
    assert_memory_equal(tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_ETAG)->val, "B", 1);
    /* a representation that never settles: 5.02 after the restarts */
    assert_int_equal(get_block(f, &client, "flappy", 2, 0, 6, false), 1);
    upstream(f, &up);
    char tag[2] = {'0', 0};
    for (int k = 0; k <= BW_MAX_RESTARTS; k++) {
        dev_block(f, &up, 0, 6, 3000, tag, -1, 0, false);
        upstream(f, &up);
        tag[0]++;
        dev_block(f, &up, 1, 6, 3000, tag, -1, 0, false);
        if (k < BW_MAX_RESTARTS)
            upstream(f, &up);
    }
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
}

/* Starts a transfer of dev1/`path` for one client; *up gets the request
 * for block 0. */
static void start(fx_t *f, const tether_peer_t *client, const char *path, uint16_t mid,
                  tether_coap_msg_t *up)
{
    assert_int_equal(get_block(f, client, path, mid, 0, 6, false), 1);
    upstream(f, up);
}

static void expect_502(fx_t *f)
{
    tether_coap_msg_t r;
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    assert_int_equal(tether_node_pending(f->node), 0);
}

static void test_misbehaving_device(void **state)
{
    fx_t *f = *state;
    fill_rep('m');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    /* the wrong block number */
    start(f, &client, "a", 1, &up);
    dev_block(f, &up, 0, 6, 5000, NULL, -1, 0, false);
    upstream(f, &up);
    dev_block(f, &up, 3, 6, 5000, NULL, -1, 0, false);
    expect_502(f);
    /* a short block with M=1 */
    start(f, &client, "b", 2, &up);
    dev_block(f, &up, 0, 6, 5000, NULL, 100, 0, false);
    expect_502(f);
    /* Size2 announcing more than block_max_bytes (1 MiB) */
    start(f, &client, "c", 3, &up);
    dev_block(f, &up, 0, 6, 5000, NULL, -1, 2u << 20, false);
    expect_502(f);
    /* endless blocks: M=1 for ever, 1024 bytes each, stops at 1 MiB */
    start(f, &client, "d", 4, &up);
    uint32_t num = 0;
    for (; num < 2000; num++) {
        dev_block(f, &up, num, 6, 8192, NULL, 1024, 0, true);
        if (out_find(f, TETHER_LINK_DTLS, DEV_SESSION, &up) < 0)
            break;
    }
    assert_int_equal(num, 1024); /* the 1025th block would pass 1 MiB */
    expect_502(f);
    /* a bigger block than asked for, on a client's 256-byte request */
    assert_int_equal(get_block(f, &client, "e", 5, 0, 4, false), 1);
    upstream(f, &up);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).szx, 6); /* tether asks 1024 */
    dev_block(f, &up, 0, 5, 5000, NULL, -1, 0, false);              /* 512: allowed */
    upstream(f, &up);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).num, 1);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK2).szx, 5);
    dev_block(f, &up, 0, 6, 5000, NULL, -1, 0, false); /* grows again, wrong offset too */
    expect_502(f);
    /* a reserved SZX 7 */
    start(f, &client, "g", 6, &up);
    {
        tether_peer_t dev = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000);
        tether_coap_msg_t ack;
        uint8_t bad = 0x0f; /* NUM 0, M 1, SZX 7 */
        tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
        tether_coap_msg_set_token(&ack, up.token, up.tkl);
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_BLOCK2, &bad, 1);
        ack.payload = rep;
        ack.payload_len = 1024;
        send_msg(f, &dev, &ack);
    }
    expect_502(f);
    /* an error answer to the first block is passed on as it is */
    start(f, &client, "h", 7, &up);
    {
        tether_peer_t dev = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000);
        tether_coap_msg_t ack, r;
        tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_NOT_FOUND, up.mid);
        tether_coap_msg_set_token(&ack, up.token, up.tkl);
        send_msg(f, &dev, &ack);
        assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
        assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    }
    assert_int_equal(st->block_failed, 6);
    assert_int_equal(st->block_transfers_active, 0);
    assert_int_equal(st->block_transfers, 0);
}

static void test_own_resources_in_blocks(void **state)
{
    fx_t *f = *state;
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, r;
    uint8_t bv[3];
    char whole[512];
    size_t got = 0;
    for (uint32_t num = 0;; num++) {
        tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, (uint16_t)(1 + num));
        add_path(&m, ".well-known");
        add_path(&m, "core");
        add_block(&m, TETHER_COAP_OPT_BLOCK2, num, false, 0, bv);
        assert_int_equal(send_msg(f, &client, &m), 1);
        out_msg(f, 0, &r);
        assert_int_equal(r.code, TETHER_COAP_CONTENT);
        tether_coap_block_t b = block_of(&r, TETHER_COAP_OPT_BLOCK2);
        assert_int_equal(b.num, num);
        assert_true(r.payload_len <= 16);
        assert_true(!b.more || r.payload_len == 16);
        memcpy(whole + got, r.payload, r.payload_len);
        got += r.payload_len;
        if (!b.more)
            break;
    }
    whole[got] = 0;
    assert_non_null(strstr(whole, "</.well-known/core>;ct=40"));
    assert_non_null(strstr(whole, "</node>;ct=50"));
    assert_true(got > 32);
    /* past the end: 4.02 */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 99);
    add_path(&m, "node");
    add_block(&m, TETHER_COAP_OPT_BLOCK2, 40, false, 0, bv);
    assert_int_equal(send_msg(f, &client, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_OPTION);
}

/* ---- Block1 ---------------------------------------------------------------------- */

/* A client block of an upload (PUT dev1/fw) with Request-Tag `tag`
 * (NULL: none) and Size1 (0: none). */
static size_t put_block(fx_t *f, const tether_peer_t *c, uint16_t mid, uint32_t num, bool more,
                        uint8_t szx, size_t len, const char *tag, uint32_t size1)
{
    tether_coap_msg_t m;
    uint8_t bv[3], s1[4];
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_PUT, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)&mid, 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, "fw");
    add_block(&m, TETHER_COAP_OPT_BLOCK1, num, more, szx, bv);
    if (tag)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_REQUEST_TAG, tag, strlen(tag));
    if (size1)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_SIZE1, s1, tether_coap_uint_encode(size1, s1));
    m.payload = rep;
    m.payload_len = len;
    return send_msg(f, c, &m);
}

/* The device answers an upload block with `code` and Block1 as asked. */
static void dev_upload_answer(fx_t *f, const tether_coap_msg_t *up, uint8_t code)
{
    tether_peer_t dev = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK1);
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, code, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_BLOCK1, o->val, o->len);
    send_msg(f, &dev, &ack);
}

static uint8_t client_code(fx_t *f)
{
    tether_coap_msg_t r;
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    return r.code;
}

/* Caches dev1/fw (a GET answered "v0" with Max-Age 60). */
static void cache_fw(fx_t *f, const tether_peer_t *c, uint16_t mid)
{
    tether_coap_msg_t up;
    assert_int_equal(client_get(f, c, "dev1", "fw", TETHER_COAP_CON, mid), 1);
    upstream(f, &up);
    tether_peer_t dev = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    ack.payload = (const uint8_t *)"v0";
    ack.payload_len = 2;
    send_msg(f, &dev, &ack);
}

static bool fw_cached(fx_t *f, const tether_peer_t *c, uint16_t mid)
{
    size_t n = client_get(f, c, "dev1", "fw", TETHER_COAP_CON, mid);
    tether_coap_msg_t r;
    bool hit = n == 1 && out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0;
    if (!hit) { /* relayed: forget that request again */
        advance(f, 11000);
    }
    return hit;
}

static void test_upload_relayed_with_request_tag(void **state)
{
    fx_t *f = *state;
    fill_rep('u');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    cache_fw(f, &client, 1);
    uint16_t mid = 10;
    uint8_t tag0[8];
    for (uint32_t num = 0; num < 3; num++) {
        bool more = num < 2;
        assert_int_equal(put_block(f, &client, mid++, num, more, 6, more ? 1024 : 10, "ct", 0), 1);
        upstream(f, &up);
        assert_int_equal(up.code, TETHER_COAP_PUT);
        tether_coap_block_t b = block_of(&up, TETHER_COAP_OPT_BLOCK1);
        assert_int_equal(b.num, num);
        assert_int_equal(b.more, more);
        const tether_coap_opt_t *t = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_REQUEST_TAG);
        assert_non_null(t); /* tether's own tag, the same for every block */
        assert_int_equal(t->len, 4);
        assert_null(tether_coap_msg_next_opt(&up, t));
        if (num == 0)
            memcpy(tag0, t->val, 4);
        assert_memory_equal(t->val, tag0, 4);
        assert_int_equal(up.payload_len, more ? 1024 : 10);
        dev_upload_answer(f, &up, more ? TETHER_COAP_CONTINUE : TETHER_COAP_CHANGED);
        assert_int_equal(client_code(f), more ? TETHER_COAP_CONTINUE : TETHER_COAP_CHANGED);
        if (more) /* the cache is untouched until the device's final answer */
            assert_true(fw_cached(f, &client, mid++));
    }
    assert_false(fw_cached(f, &client, mid++)); /* the final 2.04 invalidated it */
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->uploads_completed, 1);
    assert_int_equal(st->upload_blocks, 3);
    assert_int_equal(st->uploads_active, 0);
    /* a second upload gets another tag */
    assert_int_equal(put_block(f, &client, mid++, 0, true, 6, 1024, NULL, 0), 1);
    upstream(f, &up);
    const tether_coap_opt_t *t = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_REQUEST_TAG);
    assert_non_null(t);
    assert_memory_not_equal(t->val, tag0, 4);
    (void)r;
}

static void test_upload_bounds(void **state)
{
    fx_t *f = *state;
    fill_rep('b');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    uint16_t mid = 1;
    /* Size1 beyond upload_max_bytes (16 MiB): 4.13 with Size1, nothing relayed */
    assert_int_equal(put_block(f, &client, mid++, 0, true, 6, 1024, "x", 17u << 20), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_REQUEST_TOO_LARGE);
    uint32_t s1;
    assert_int_equal(tether_coap_msg_get_uint(&r, TETHER_COAP_OPT_SIZE1, &s1), 0);
    assert_int_equal(s1, 16u << 20);
    /* a block out of order: 4.08 */
    assert_int_equal(put_block(f, &client, mid++, 5, true, 6, 1024, "y", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_REQUEST_INCOMPLETE);
    /* two uploads per device; a third gets 5.03 */
    assert_int_equal(put_block(f, &client, mid++, 0, true, 6, 1024, "u1", 0), 1);
    upstream(f, &up);
    dev_upload_answer(f, &up, TETHER_COAP_CONTINUE);
    tether_peer_t other = plain_peer(50001);
    assert_int_equal(put_block(f, &other, mid++, 0, true, 6, 1024, "u2", 0), 1);
    upstream(f, &up);
    dev_upload_answer(f, &up, TETHER_COAP_CONTINUE);
    assert_int_equal(put_block(f, &client, mid++, 0, true, 6, 1024, "u3", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(st->uploads_active, 2);
    /* u1 skips a block: 4.08; a short middle block: 4.00 */
    assert_int_equal(put_block(f, &client, mid++, 2, true, 6, 1024, "u1", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_REQUEST_INCOMPLETE);
    assert_int_equal(put_block(f, &client, mid++, 1, true, 6, 100, "u1", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_REQUEST);
    /* u1 continues correctly */
    assert_int_equal(put_block(f, &client, mid++, 1, true, 6, 1024, "u1", 0), 1);
    upstream(f, &up);
    assert_int_equal(block_of(&up, TETHER_COAP_OPT_BLOCK1).num, 1);
    dev_upload_answer(f, &up, TETHER_COAP_CONTINUE);
    assert_int_equal(client_code(f), TETHER_COAP_CONTINUE);
    /* both clients stop: after block_idle_ms nothing is left */
    advance(f, 31000);
    assert_int_equal(st->uploads_active, 0);
    assert_int_equal(st->uploads_abandoned, 2);
    assert_int_equal(st->uploads_rejected, 5);
    /* and u1's next block is now out of order */
    assert_int_equal(put_block(f, &client, mid++, 2, true, 6, 1024, "u1", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_REQUEST_INCOMPLETE);
}

static void test_upload_device_gone(void **state)
{
    fx_t *f = *state;
    fill_rep('g');
    assert_int_equal(do_register(f, DEV_SESSION, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    assert_int_equal(put_block(f, &client, 1, 0, true, 6, 1024, NULL, 0), 1);
    upstream(f, &up);
    /* the device's tunnel goes down with the block in flight: 5.02 and
     * the upload is over */
    tether_link_t l = dtls_peer(DEV_SESSION, "dev1", TETHER_ROLE_DEVICE, 40000).link;
    tether_node_out_clear(f->node);
    tether_node_link_down(f->node, &l, f->now);
    advance(f, 20000);
    assert_int_equal(tether_node_stats(f->node)->uploads_active, 0);
    assert_int_equal(tether_node_pending(f->node), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reassembled_and_served_in_client_sizes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_clients_one_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncached_representation_not_kept_forever, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_without_block2_is_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etag_change_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misbehaving_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_resources_in_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_relayed_with_request_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_device_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
