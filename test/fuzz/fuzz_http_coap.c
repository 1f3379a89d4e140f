/* libFuzzer target for server/admin/coap_bridge.c, the HTTP-to-CoAP
 * mapping (RFC 8075): an HTTP request from anyone who can reach the admin
 * port (the token is checked first, but a client's token is not much of a
 * secret) is mapped to one CoAP request, whose header fields
 * (Content-Type, Accept, If-Match, If-None-Match) and percent-encoded path
 * and query are parsed by hand. Whatever comes in is mapped to a CoAP
 * message that parses again, or refused with an HTTP status; never a
 * crash or an overrun. The same bytes are also fed as a CoAP response to
 * the CoAP-to-HTTP side.
 *
 * Input: an HTTP/1.1 request as it arrives on the socket. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/admin/coap_bridge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tetherd_http_coap_req_t q;
    static tether_coap_msg_t m;
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    size_t used = 0;
    char err[256];
    if (tether_http_feed(&p, (const char *)data, size, &used) == TETHER_HTTP_REQUEST &&
        p.req.path_len > 6 && memcmp(p.req.path, "/coap/", 6) == 0) {
        if (tetherd_coap_req_from_http(&p.req, 0x0102030405060708ull, &q, err, sizeof err) == 0) {
            tether_coap_perr_t perr;
            if (tether_coap_parse(&m, q.buf, q.len, &perr) < 0 || q.device[0] == 0)
                abort(); /* tether built a message it cannot read back */
            uint8_t next[TETHER_MSG_MAX];
            size_t nl;
            tetherd_coap_req_block(q.buf, q.len, 9, 1, 6, next, sizeof next, &nl);
        } else if (q.status != 400 && q.status != 413 && q.status != 415) {
            abort();
        }
    }
    tether_http_parser_free(&p);
    tetherd_http_coap_resp_t h;
    if (tetherd_coap_resp_to_http(data, size, "dev", size & 1, &h) == 0) {
        if (h.status < 200 || h.status > 599 || h.payload_len > size ||
            strlen(h.headers) >= sizeof h.headers || strlen(h.ctype) >= sizeof h.ctype)
            abort();
    }
    return 0;
}
