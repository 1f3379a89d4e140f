/* tetherd admin endpoint (SPEC S6): HTTP/1.1 + JSON on the libuv loop.
 *
 * One TCP listener on cfg->admin; keep-alive and pipelining; at most
 * cfg->admin_max_connections connections, each closed after
 * cfg->admin_idle_timeout seconds without a complete request. Every route
 * but /health and /ready needs `Authorization: Bearer <admin_token>`; with
 * no token configured those routes answer 403. The process wires in its
 * state through hooks; the module owns nothing else. The parts are in
 * server/admin/ (conn.h lists them). */
#ifndef TETHERD_ADMIN_H
#define TETHERD_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "admin/authlog.h"
#include "config.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/list.h"
#include "tether/node.h"

/* Fills `stats`, an object that already holds every S11 path (zero unless
 * known here, e.g. memory.rss_bytes): overwrite what the process knows with
 * tetherd_admin_stat_set() and add any further members. Leaves that are
 * numbers become Prometheus metrics on /metrics. Returns 0 or a TETHER_E*
 * code (the request then gets a 500). */
typedef int (*tetherd_admin_stats_fn)(json_t *stats, void *user);

/* True when this node should receive traffic. May add members to `detail`
 * (an object; e.g. "listeners": true, "redis": "down"); a string member
 * "detail" explains a false answer. */
typedef bool (*tetherd_admin_ready_fn)(json_t *detail, void *user);

/* Device directory (GET/DELETE /devices...). `info`'s strings belong to
 * the process and are read before the next hook call. 0 or
 * TETHER_ENOTFOUND. */
typedef int (*tetherd_admin_device_fn)(const char *name, tether_device_info_t *info, void *user);
/* The device registered after the one whose regid is `cursor` (NULL: the
 * first); TETHER_ENOTFOUND at the end. */
typedef int (*tetherd_admin_device_next_fn)(const char *cursor, tether_device_info_t *info,
                                            void *user);
typedef int (*tetherd_admin_device_remove_fn)(const char *name, void *user);
/* Sends an operator's encoded CoAP request, numbered `id`, down to the
 * node. Its answer comes back through tetherd_admin_coap_answer(), which
 * may be called before this returns (tether's own verdicts, e.g. 4.04 for
 * an unknown device) or later (the device's response, a 5.04). Returns 0
 * or a TETHER_E* code (the request then gets a 503). */
typedef int (*tetherd_admin_coap_send_fn)(uint64_t id, const uint8_t *msg, size_t len, void *user);

/* HTTP-to-CoAP (RFC 8075, /coap/...): sends the encoded request numbered
 * `id` as client `identity` (NULL: the operator, trusted for every
 * device); answers come back through tetherd_admin_coap_answer like an
 * operator request's. 0 or a TETHER_E* code (503). */
typedef int (*tetherd_admin_coap_send_as_fn)(uint64_t id, const char *identity, const uint8_t *msg,
                                             size_t len, void *user);
/* The HTTP client of request `id` left: its observation ends. */
typedef void (*tetherd_admin_coap_close_fn)(uint64_t id, void *user);
/* The client identity whose credentials carry HTTP bearer token
 * tok[0..len), into identity[cap]; 0 or TETHER_ENOTFOUND. */
typedef int (*tetherd_admin_http_identity_fn)(const char *tok, size_t len, char *identity,
                                              size_t cap, void *user);

/* Groups (GET/PUT/DELETE /groups...). `groups`: one group as JSON (a new
 * reference) or, for name NULL, {"groups": [...]}; NULL when there is no
 * such group. `group_put`: 0, TETHER_EINVAL with a message in err[cap]
 * (400), TETHER_ELIMIT (a bound, 409) or TETHER_ENOMEM.
 * `group_delete`: 0 or TETHER_ENOTFOUND. */
typedef json_t *(*tetherd_admin_groups_fn)(const char *name, void *user);
typedef int (*tetherd_admin_group_put_fn)(const char *name, const json_t *body, char *err,
                                          size_t cap, void *user);
typedef int (*tetherd_admin_group_delete_fn)(const char *name, void *user);

/* GET /cluster: the nodes and their state as a JSON object (a new
 * reference), NULL on failure (500). */
typedef json_t *(*tetherd_admin_cluster_fn)(void *user);
/* GET /observations: the observe registry as a JSON object (a new
 * reference; tetherd_admin_observations_json builds it), NULL on failure. */
typedef json_t *(*tetherd_admin_observations_fn)(void *user);
/* PUT /credentials/{identity} (entry non-NULL) and DELETE (entry NULL):
 * starts the write and answers later with tetherd_admin_cred_done(id).
 * Returns 0, or a TETHER_E* code at once (no answer will come). */
typedef int (*tetherd_admin_cred_fn)(const tether_creds_entry_t *entry, const char *identity,
                                     uint64_t id, void *user);

typedef struct {
    tetherd_admin_stats_fn stats; /* NULL: only the defaults */
    tetherd_admin_ready_fn ready; /* NULL: ready while not draining */
    /* NULL: the /devices routes answer 501 */
    tetherd_admin_device_fn device;
    tetherd_admin_device_next_fn device_next;
    tetherd_admin_device_remove_fn device_remove;
    tetherd_admin_coap_send_fn coap_send;
    /* NULL: /coap/... answers 501 */
    tetherd_admin_coap_send_as_fn coap_send_as;
    tetherd_admin_coap_close_fn coap_close;
    tetherd_admin_http_identity_fn http_identity;
    /* NULL: /groups answers 501 */
    tetherd_admin_groups_fn groups;
    tetherd_admin_group_put_fn group_put;
    tetherd_admin_group_delete_fn group_delete;
    tetherd_admin_cluster_fn cluster;           /* NULL: GET /cluster answers 501 */
    tetherd_admin_observations_fn observations; /* NULL: GET /observations answers 501 */
    tetherd_admin_cred_fn cred;                 /* NULL: /credentials answers 501 */
    void *user;                                 /* passed to every hook */
} tetherd_admin_hooks_t;

typedef struct {
    char *p;
    size_t len, cap;
} tetherd_abuf_t;

struct tetherd_admin_conn;

typedef struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    const tetherd_config_t *cfg; /* borrowed; must outlive the admin */
    tetherd_admin_hooks_t hooks;
    tether_list_t conns;   /* open connections (admin_conn_t.ln) */
    tether_list_t waiting; /* connections waiting for a CoAP answer (admin_conn_t.wln) */
    size_t nwaiting;
    size_t nstreams;  /* of them, HTTP-to-CoAP event streams (not waited for by a drain) */
    uint64_t next_id; /* numbers operator CoAP requests */
    tether_coap_optreg_t optreg; /* option names for CoAP answers */
    size_t nconns;
    uint16_t port; /* bound port (cfg may say 0) */
    bool listening, draining, stopped;
    uint64_t requests;
    admin_authlog_t authlog; /* refused tokens: counted, logged bounded */
    tetherd_abuf_t scratch;  /* response bodies are built here */
} tetherd_admin_t;

/* Binds cfg->admin and starts serving on `loop`. Logs
 * {"component":"admin","msg":"listening","port":"N",...} once bound.
 * `hooks` is copied (may be NULL). *a must be zeroed or stopped.
 * Returns 0, TETHER_ECONFIG (bad address) or TETHER_EIO (cannot listen). */
int tetherd_admin_start(tetherd_admin_t *a, uv_loop_t *loop, const tetherd_config_t *cfg,
                        const tetherd_admin_hooks_t *hooks);

/* Closes the listener and every connection (uv_close; memory is freed in
 * the close callbacks, so the loop must run once more). Idempotent. */
void tetherd_admin_stop(tetherd_admin_t *a);

/* While draining, /ready answers 503 {"ready":false,"detail":"draining"}. */
void tetherd_admin_set_draining(tetherd_admin_t *a, bool draining);

/* Delivers the CoAP answer (encoded) to operator request `id`: the waiting
 * HTTP request gets its JSON response. Empty messages are ignored. Returns
 * 0, or TETHER_ENOTFOUND when nobody waits for `id` any more (timed out,
 * client gone): the caller just drops the answer. */
int tetherd_admin_coap_answer(tetherd_admin_t *a, uint64_t id, const uint8_t *msg, size_t len);

/* The credential write numbered `id` completed with rc (0,
 * TETHER_ENOTFOUND, TETHER_ECONFLICT, TETHER_EIO: the store is
 * unreachable) at record version `version`: the waiting request gets its
 * answer. TETHER_ENOTFOUND when nobody waits any more. */
int tetherd_admin_cred_done(tetherd_admin_t *a, uint64_t id, int rc, uint64_t version);

/* HTTP requests waiting for a CoAP answer (a draining server waits for 0). */
size_t tetherd_admin_waiting(const tetherd_admin_t *a);

/* The default stats: every S11 path with 0, memory.rss_bytes from
 * /proc/self/statm. Matches tetherd_admin_stats_fn; `user` is unused. */
int tetherd_admin_default_stats(json_t *stats, void *user);

/* Sets the integer at dotted `path` ("sessions.active"), creating objects
 * on the way. 0, TETHER_EINVAL (a non-object in the way) or TETHER_ENOMEM. */
int tetherd_admin_stat_set(json_t *stats, const char *path, json_int_t value);

/* The observe registry of `store` (server/admin/observations.c gives the
 * shape), a new reference or NULL. */
json_t *tetherd_admin_observations_json(tether_store_t *store, tether_time_t now);

#endif
