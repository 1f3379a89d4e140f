/* libFuzzer target for server/store/rkey.c: what a node reads back from
 * Redis. Redis is outside the cluster's trust (SPEC S10: an operator's
 * redis-cli, a backup restored, a writer without cluster_key), so any key
 * name, value and change-log record is parsed or refused, never a crash,
 * a leak or a half-filled record; and what decodes encodes again to a
 * value that decodes to the same record.
 *
 * Input: byte 0 picks the record kind, byte 1 the key name (0: the
 * record's own), the rest is a Redis value "VERSION JSON". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/store/rkey.h"
#include "../../server/store/wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const tether_store_rec_t *a, const tether_store_rec_t *b)
{
    if (a->kind != b->kind)
        abort();
    switch (a->kind) {
    case TETHER_STORE_DEVICE:
        if (strcmp(a->u.device.name, b->u.device.name) ||
            a->u.device.node_id != b->u.device.node_id ||
            a->u.device.links_len != b->u.device.links_len ||
            memcmp(a->u.device.links, b->u.device.links, a->u.device.links_len))
            abort();
        break;
    case TETHER_STORE_CRED:
        if (a->u.cred.key_len != b->u.cred.key_len ||
            memcmp(a->u.cred.key, b->u.cred.key, a->u.cred.key_len) ||
            a->u.cred.nallow != b->u.cred.nallow || a->u.cred.role != b->u.cred.role)
            abort();
        break;
    case TETHER_STORE_OBSERVE:
        if (a->u.observe.key_len != b->u.observe.key_len ||
            memcmp(a->u.observe.key, b->u.observe.key, a->u.observe.key_len) ||
            a->u.observe.nobservers != b->u.observe.nobservers)
            abort();
        break;
    case TETHER_STORE_SESSION:
        if (a->u.session.blob_len != b->u.session.blob_len ||
            memcmp(a->u.session.blob, b->u.session.blob, a->u.session.blob_len) ||
            a->u.session.seq_ceiling != b->u.session.seq_ceiling ||
            a->u.session.generation != b->u.session.generation ||
            a->u.session.node_id != b->u.session.node_id)
            abort();
        break;
    case TETHER_STORE_NODE:
        if (a->u.node.node_id != b->u.node.node_id || a->u.node.generation != b->u.node.generation ||
            a->u.node.adopted_by != b->u.node.adopted_by || a->u.node.handover != b->u.node.handover)
            abort();
        break;
    case TETHER_STORE_GROUP:
        if (strcmp(a->u.group.name, b->u.group.name) ||
            strcmp(a->u.group.pattern, b->u.group.pattern) ||
            a->u.group.nmembers != b->u.group.nmembers ||
            a->u.group.members_len != b->u.group.members_len ||
            memcmp(a->u.group.members, b->u.group.members, a->u.group.members_len))
            abort();
        break;
    default: abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tetherd_wrap_t w;
    if (!w.ready && tetherd_wrap_init(&w, (const uint8_t *)"fuzz-cluster-key", 16) < 0)
        abort();
    if (size < 2)
        return 0;
    tether_store_kind_t kind = (tether_store_kind_t)(1 + data[0] % (TETHER_STORE_KINDS - 1));
    const char *val = (const char *)data + 2;
    size_t len = size - 2;

    /* The value as a key name: parsed back or refused. */
    tether_store_kind_t k2;
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t kl;
    if (tetherd_rkey_parse(val, len, &k2, key, sizeof key, &kl) == 0) {
        char name[TETHERD_RKEY_MAX + 1];
        if (tetherd_rkey_name(k2, key, kl, name, sizeof name) < 0 || strlen(name) != len ||
            memcmp(name, val, len))
            abort(); /* a key name parses back to exactly one (kind, key) */
    }

    static const char *names[] = {"tether:dev:{dev7}", "tether:cred:{app9}", "tether:obs:{00}",
                                  "tether:sess:{0102}", "tether:{nodes}:node:1",
                                  "tether:grp:{floor1}"};
    const char *rkey = data[1] ? names[data[1] % 6] : names[kind - 1];
    uint64_t version;
    const char *json;
    size_t jl;
    if (tetherd_rval_split(val, len, &version, &json, &jl) < 0)
        return 0;
    tetherd_rrec_t r;
    int rc = tetherd_rrec_decode(kind, json, jl, &w, rkey, version, &r);
    if (rc == 0) {
        char *again = NULL;
        tetherd_rrec_t r2;
        if (tetherd_rrec_encode(&r.rec, &w, rkey, version, &again) < 0 ||
            tetherd_rrec_decode(kind, again, strlen(again), &w, rkey, version, &r2) < 0)
            abort();
        same(&r.rec, &r2.rec);
        tetherd_rrec_free(&r2);
        free(again);
    }
    tetherd_rrec_free(&r);
    return 0;
}
