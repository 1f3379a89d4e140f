/* libFuzzer target for the node (lib/proxy/node.c over lib/coap/exchange.c
 * and lib/proxy/registry.c).
 *
 * The input is a script of datagrams: each starts with a control byte
 * (which peer sends it, and how far the clock moves first) and a length
 * byte. Peers are a device with a DTLS identity, a client with an ACL, an
 * unauthorised client and a plain loopback client, so registrations,
 * relays, responses, duplicates and timers all interleave; a control byte
 * whose low nibble is 0x0e hands the datagram to the cross-node relay as
 * a message from node 2 (XREQ, XRSP or XEND by its length), so requests
 * relayed from another node run too (lib/proxy/xrelay.c). Every message
 * the node emits must itself parse as CoAP. ASan/UBSan catch the rest;
 * the node is destroyed at the end so leaks show. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tether/cluster.h"
#include "tether/log.h"
#include "tether/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tether_creds_t *creds;

static void init_creds(void)
{
    static const char json[] =
        "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"00\", \"role\": \"client\","
        " \"allow\": [{\"devices\": \"dev*\"}]}],"
        " \"psk_derived\": [{\"identity_prefix\": \"dev\", \"role\": \"device\","
        " \"master_hex\": \"00\"}]}";
    char path[] = "/tmp/tether-fuzz-creds-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, json, sizeof json - 1) != (ssize_t)(sizeof json - 1))
        abort();
    close(fd);
    char err[256];
    if (tether_creds_load(path, &creds, err, sizeof err) < 0)
        abort();
    unlink(path);
    tether_log_set_level(TETHER_LOG_ERROR);
}

static tether_peer_t peer_of(uint8_t who)
{
    static const char *const ids[] = {"dev1", "dev2", "app1", "app9"};
    tether_peer_t p = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&p.link.addr.ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000001);
    sin->sin_port = htons((uint16_t)(40000 + (who & 7)));
    p.link.addr.len = sizeof *sin;
    if ((who & 7) == 4) {
        p.link.kind = TETHER_LINK_PLAIN;
        return p;
    }
    p.link.kind = TETHER_LINK_DTLS;
    p.link.id = 1 + (who & 3) + ((who & 8) ? 10 : 0); /* a device may re-handshake */
    p.identity = ids[who & 3];
    p.role = (who & 3) < 2 ? TETHER_ROLE_DEVICE : TETHER_ROLE_CLIENT;
    return p;
}

static bool all_alive(void *user, uint8_t id, tether_time_t now)
{
    (void)user, (void)now;
    return id == 2;
}

static void check_outbox(tether_node_t *n, tether_time_t now)
{
    while (tether_node_out_count(n)) {
        for (size_t i = 0; i < tether_node_out_count(n); i++) {
            const tether_out_t *o = tether_node_out_get(n, i);
            tether_coap_msg_t m;
            tether_coap_perr_t perr;
            if (tether_coap_parse(&m, o->data, o->len, &perr) < 0)
                __builtin_trap();
            if (o->link.kind == TETHER_LINK_CLUSTER)
                tether_node_xlink_out(n, o);
        }
        tether_node_out_clear(n);
        tether_node_xsettle(n, now);
    }
    tether_node_xout_clear(n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!creds)
        init_creds();
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.queue_max = 4;
    c.max_pending = 64;
    tether_node_t *n;
    if (tether_node_create(&c, creds, &n) < 0)
        return 0;
    tether_node_set_cluster(n, all_alive, NULL);
    tether_time_t now = 1000;
    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t ctl = data[i], len = data[i + 1];
        i += 2;
        if (len > size - i)
            len = (uint8_t)(size - i);
        now += (tether_time_t)(ctl >> 4) * (ctl & 0x80 ? 5000 : 300);
        tether_node_tick(n, now);
        check_outbox(n, now);
        tether_peer_t p = peer_of(ctl);
        if ((ctl & 0x0f) == 0x0f) {
            tether_node_link_down(n, &p.link, now);
        } else if ((ctl & 0x0f) == 0x0e) {
            tether_node_xinput(n, 2, (uint8_t)(TETHER_CLUSTER_XREQ + len % 3), data + i, len, now);
        } else {
            tether_node_input(n, &p, data + i, len, now);
        }
        check_outbox(n, now);
        i += len;
    }
    now += 600000; /* let every timer fire */
    tether_node_tick(n, now);
    check_outbox(n, now);
    tether_node_destroy(n);
    return 0;
}
