/* CoAP <-> JSON for operator requests (POST /devices/{name}/request), and
 * CoAP <-> HTTP for HTTP-to-CoAP (RFC 8075, /coap/{device}/{path}).
 *
 * The admin endpoint turns a JSON body, or an HTTP request, into one
 * encoded CoAP CON request for a device, and the CoAP answer the node
 * produces into JSON, or into an HTTP status, header fields and the
 * payload as it is. Pure functions: no I/O, no clock. */
#ifndef TETHERD_ADMIN_COAP_BRIDGE_H
#define TETHERD_ADMIN_COAP_BRIDGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/addr.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/http.h"

#define TETHERD_REQ_TIMEOUT_MIN_MS 100
#define TETHERD_REQ_TIMEOUT_MAX_MS 600000

typedef struct {
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    uint32_t timeout_ms; /* from "timeout_ms", else the caller's default */
} tetherd_coap_req_t;

/* Builds the CON request that `body` describes for device `device`:
 *   {"method": "GET", "path": "/temp", "query": ["a=1"] or "a=1&b=2",
 *    "payload": "text" | "payload_base64": "...", "content_format": 0,
 *    "accept": 50, "timeout_ms": 5000}
 * Every member is optional (method GET, no path); unknown members are
 * errors. Uri-Host is the device name; path segments and query items are
 * taken literally (no percent-decoding). MID and token derive from `id`.
 * Returns 0; TETHER_EINVAL for a bad body and TETHER_ENOSPC for a request
 * that does not fit one datagram, both with a message in err[errcap]. */
int tetherd_coap_req_from_json(const json_t *body, const char *device, uint64_t id,
                               uint32_t default_timeout_ms, tetherd_coap_req_t *out, char *err,
                               size_t errcap);

/* The JSON form of a CoAP response: {"code": "2.05", "options": [{"number":
 * 12, "name": "Content-Format", "value": 0}, ...], "payload": "..."} with
 * "payload_base64" instead when the payload is not printable UTF-8. Option
 * values are integers (uint options), strings (string options that are
 * UTF-8), null (empty options) or "value_hex". *code gets the CoAP code.
 * NULL when the message does not parse or memory runs out. */
json_t *tetherd_coap_resp_to_json(const tether_coap_optreg_t *reg, const uint8_t *msg, size_t len,
                                  uint8_t *code);

/* Percent-decodes s[0..n) into out[cap], NUL-terminated; with plus_space
 * (query strings) '+' is a space. TETHER_EINVAL for a bad escape, an
 * encoded NUL, or output longer than cap - 1. */
int admin_pct_decode(const char *s, size_t n, bool plus_space, char *out, size_t cap);

/* --- HTTP-to-CoAP (RFC 8075) ------------------------------------------- */

/* The media type of Content-Format `cf` into buf[cap] (RFC 8075 §6.1); a
 * Content-Format without one known here becomes
 * "application/coap-payload; cf=N" (RFC 8075 §6.3). */
void tetherd_cf_to_ctype(uint16_t cf, char *buf, size_t cap);
/* The Content-Format of the HTTP media type s[0..n) (parameters ignored,
 * except charset, which must be utf-8 for text/plain, and cf of
 * application/coap-payload). TETHER_ENOTFOUND for a type CoAP has no
 * number for. */
int tetherd_ctype_to_cf(const char *s, size_t n, uint16_t *cf);
/* The HTTP status of CoAP response code `code` (RFC 8075 §7, Table 2):
 * 2.02/2.04 are 200 with a payload, 204 without; 2.03 is 304 when the
 * client validated (its If-None-Match tags were sent as ETags), else 200;
 * 4.01 -> 403, 4.05 -> 400 (405 needs an Allow list a proxy cannot know),
 * 5.05 -> 502; unlisted codes take their class (4.xx 400, 5.xx 500). */
int tetherd_coap_http_status(uint8_t code, bool has_payload, bool validating);

typedef struct {
    uint8_t buf[TETHER_MSG_MAX];
    size_t len;
    char device[TETHER_IDENTITY_MAX];
    bool stream;     /* Accept: text/event-stream on a GET: Observe 0 was added */
    bool validating; /* If-None-Match entity tags became ETag options */
    int status;      /* on failure: the HTTP status to answer */
} tetherd_http_coap_req_t;

/* Maps an HTTP request for /coap/{device}/{path}?{query} to one CoAP CON
 * (RFC 8075 §5): the method (HEAD as GET), Uri-Host = device, the
 * percent-decoded path segments and query items as Uri-Path/Uri-Query,
 * Content-Type -> Content-Format, Accept -> Accept (the first type with a
 * number), If-Match / If-None-Match (`*` -> the empty If-None-Match of
 * RFC 7252 §5.10.8.2; entity tags "hex" -> ETag for validation), the body
 * as the payload, byte for byte. MID and token derive from `id`.
 * Returns 0, or TETHER_EINVAL with out->status (400 bad path or header,
 * 413 larger than one datagram, 415 a Content-Type without a number) and
 * a message in err[errcap]. */
int tetherd_coap_req_from_http(const tether_http_request_t *r, uint64_t id,
                               tetherd_http_coap_req_t *out, char *err, size_t errcap);

typedef struct {
    int status;
    uint8_t code;
    char ctype[96];         /* "" without Content-Format */
    char headers[768];      /* complete header lines: ETag, Cache-Control, Location, Retry-After */
    const uint8_t *payload; /* into the message given */
    size_t payload_len;
    bool has_observe;
    uint32_t observe;
    bool has_block2;  /* a block of a larger representation (RFC 7959) */
    bool more_blocks; /* Block2 with M=1: more blocks follow */
    uint32_t block_num;
    uint8_t block_szx;
    uint8_t etag_len; /* the response's ETag (0: none) */
    uint8_t etag[8];
} tetherd_http_coap_resp_t;

/* Maps a CoAP response (for a request to `device`) to HTTP (RFC 8075 §7):
 * the status, Content-Type, ETag ("hex", strong), Max-Age as
 * Cache-Control: max-age (Retry-After on 5.03), Location-Path/-Query of a
 * 2.01 as a Location under /coap/{device}/. TETHER_EPROTO when the
 * message does not parse. */
int tetherd_coap_resp_to_http(const uint8_t *msg, size_t len, const char *device, bool validating,
                              tetherd_http_coap_resp_t *out);

/* The request for block `num` (size exponent `szx`) of the representation
 * `req[0..len)` asks for: the same request with MID `mid` and Block2
 * (RFC 7959 §2.4), into out[cap]. 0, TETHER_EPROTO or TETHER_ENOSPC. */
int tetherd_coap_req_block(const uint8_t *req, size_t len, uint16_t mid, uint32_t num, uint8_t szx,
                           uint8_t *out, size_t cap, size_t *out_len);

#endif
