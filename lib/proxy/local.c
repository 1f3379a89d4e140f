/* The node's own resources: discovery (RFC 6690 /.well-known/core) and a
 * small JSON description of the node. */
#include <stdio.h>
#include <string.h>

#include "tether/linkformat.h"
#include "tether/local.h"

bool tether_local_is_for_node(const tether_coap_msg_t *req)
{
    return !tether_coap_msg_find_opt(req, TETHER_COAP_OPT_URI_HOST) &&
           !tether_coap_msg_find_opt(req, TETHER_COAP_OPT_PROXY_URI) &&
           !tether_coap_msg_find_opt(req, TETHER_COAP_OPT_PROXY_SCHEME);
}

typedef struct {
    const char *path;
    uint16_t ct;
    const char *rt;
} resource_t;

static const resource_t resources[] = {
    {".well-known/core", TETHER_COAP_CF_LINK_FORMAT, NULL},
    {"node", TETHER_COAP_CF_JSON, "tether.node"},
};
#define NRES (sizeof resources / sizeof resources[0])

/* Serialises the resource table as link-format into buf. */
static int well_known_core(char *buf, size_t cap, size_t *len)
{
    tether_lf_link_t links[NRES];
    char targets[NRES][64], cts[NRES][8];
    for (size_t i = 0; i < NRES; i++) {
        tether_lf_link_t *l = &links[i];
        memset(l, 0, sizeof *l);
        int n = snprintf(targets[i], sizeof targets[i], "/%s", resources[i].path);
        l->target = targets[i];
        l->target_len = (size_t)n;
        n = snprintf(cts[i], sizeof cts[i], "%u", resources[i].ct);
        l->attrs[l->nattrs++] = (tether_lf_attr_t){"ct", 2, cts[i], (size_t)n, false};
        if (resources[i].rt)
            l->attrs[l->nattrs++] =
                (tether_lf_attr_t){"rt", 2, resources[i].rt, strlen(resources[i].rt), true};
    }
    return tether_lf_serialize(links, NRES, buf, cap, len);
}

int tether_local_handle(const tether_local_t *node, tether_coap_ep_t *ep,
                        const tether_coap_msg_t *req, tether_coap_msg_t *resp, uint8_t *scratch,
                        size_t cap)
{
    const resource_t *res = NULL;
    for (size_t i = 0; i < NRES && !res; i++)
        if (tether_coap_path_equals(req, resources[i].path))
            res = &resources[i];
    if (!res) {
        tether_coap_ep_response(ep, req, TETHER_COAP_NOT_FOUND, resp);
        return 0;
    }
    if (req->code != TETHER_COAP_GET) {
        tether_coap_ep_response(ep, req, TETHER_COAP_METHOD_NOT_ALLOWED, resp);
        return 0;
    }
    /* Content-Format value is stored after the payload in scratch. */
    if (cap < 8)
        return TETHER_ENOSPC;
    size_t len = 0;
    int rc;
    if (res->ct == TETHER_COAP_CF_LINK_FORMAT) {
        rc = well_known_core((char *)scratch, cap - 4, &len);
    } else {
        int n = snprintf((char *)scratch, cap - 4, "{\"node_id\":%u,\"version\":\"%s\"}",
                         node->node_id, node->version);
        rc = n < 0 || (size_t)n >= cap - 4 ? TETHER_ENOSPC : 0;
        len = (size_t)n;
    }
    if (rc < 0) {
        tether_coap_ep_response(ep, req, TETHER_COAP_INTERNAL_ERROR, resp);
        return 0;
    }
    tether_coap_ep_response(ep, req, TETHER_COAP_CONTENT, resp);
    uint8_t *ctval = scratch + cap - 4;
    size_t ctlen = tether_coap_uint_encode(res->ct, ctval);
    tether_coap_msg_add_opt(resp, TETHER_COAP_OPT_CONTENT_FORMAT, ctval, ctlen);
    resp->payload = scratch;
    resp->payload_len = len;
    return 0;
}
