/* libFuzzer target: DTLS record demux and the hello parsing in front of
 * wolfSSL (cookie detection, TLS 1.3 PSK suite choice, per-source rate
 * limit, CID lookup). The input is a sequence of datagrams, each
 * [source selector][length: 2 bytes][bytes]; a fresh server sees them in
 * order with the clock advancing. Nothing may crash or leak, no datagram
 * may exceed TETHER_DTLS_MAX_DGRAM, and the limits must hold. */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "tether/dtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tether_addr_t source(uint8_t sel)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    if (sel & 0x10) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)(5000 + (sel & 0x0f)));
        s->sin6_addr.s6_addr[15] = (uint8_t)(sel >> 5);
        a.len = sizeof *s;
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)(5000 + (sel & 0x0f)));
        s->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(sel >> 5));
        a.len = sizeof *s;
    }
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tether_creds_t *creds;
    tether_dtls_srv_t *srv;
    tether_dtls_conf_t conf;
    tether_time_t now = 1000;
    if (tether_creds_empty(&creds) < 0)
        return 0;
    tether_dtls_conf_defaults(&conf);
    conf.max_handshakes = 4;
    conf.max_sessions = 8;
    conf.handshake_rate_per_source = 2;
    conf.handshake_burst_per_source = 3;
    if (tether_dtls_create(&conf, creds, now, &srv) < 0) {
        tether_creds_free(creds);
        return 0;
    }
    const tether_dtls_stats_t *st = tether_dtls_stats(srv);
    size_t p = 0;
    while (p + 3 <= size) {
        tether_addr_t from = source(data[p]);
        size_t n = (size_t)data[p + 1] << 8 | data[p + 2];
        p += 3;
        if (n > size - p)
            n = size - p;
        tether_dtls_rx_t rx;
        tether_dtls_input(srv, 0, &from, data + p, n, now, &rx);
        while (rx.len > 0 && tether_dtls_input_more(srv, &rx))
            ;
        p += n;
        now += 300;
        tether_dtls_tick(srv, now);
        for (size_t i = 0; i < tether_dtls_tx_count(srv); i++)
            if (tether_dtls_tx_get(srv, i)->len > TETHER_DTLS_MAX_DGRAM)
                __builtin_trap();
        tether_dtls_tx_clear(srv);
        if (st->handshakes_inflight > conf.max_handshakes ||
            st->handshakes_inflight + st->sessions_active > conf.max_sessions)
            __builtin_trap();
    }
    tether_dtls_destroy(srv);
    tether_creds_free(creds);
    return 0;
}
