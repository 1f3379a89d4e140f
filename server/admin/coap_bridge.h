/* CoAP <-> JSON for operator requests (POST /devices/{name}/request).
 *
 * The admin endpoint turns a JSON body into one encoded CoAP CON request
 * for a device, and the CoAP answer the node produces into JSON. Pure
 * functions: no I/O, no clock. */
#ifndef TETHERD_ADMIN_COAP_BRIDGE_H
#define TETHERD_ADMIN_COAP_BRIDGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/addr.h"
#include "tether/coap.h"

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

#endif
