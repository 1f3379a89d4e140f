/* tether — groups through the state store (SPEC S5: "Redis holds ...
 * group membership"): the admin API's groups are GROUP records
 * (tether/store.h), so that every node sharing the store has every group.
 *
 * A put or delete goes to the store only; the node's store watcher applies
 * GROUP changes to the group table (group.h): its own at once (both
 * stores tell a writer's watchers before the write returns), other nodes'
 * when the store hears of them (the Redis store's change log or resync).
 * Groups from the groups_file are set on the table directly and stay
 * local (each node reads the same file). A stored group beyond this
 * node's max_groups or group_max_members is not applied here (logged).
 *
 * Lifetimes: the watcher is registered by tether_group_store_init and
 * removed by tether_group_store_free, before the store goes.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/group.h"
#include "proxy/node_int.h"
#include "tether/log.h"

/* GROUP records carry no ttl: the time passed to the store does not
 * matter for them. */
#define NO_TTL_NOW 0

/* A stored group onto the table. */
static void apply(tether_node_t *n, const tether_store_group_t *sg)
{
    const char **v = sg->nmembers ? calloc(sg->nmembers, sizeof *v) : NULL;
    if (sg->nmembers && !v)
        return;
    const char *p = sg->members, *end = sg->members + sg->members_len;
    size_t k = 0;
    while (k < sg->nmembers && p < end) {
        v[k++] = p;
        p += strnlen(p, (size_t)(end - p)) + 1;
    }
    int rc = k == sg->nmembers
                 ? tether_group_set(n, sg->name, sg->pattern[0] ? sg->pattern : NULL, v, k)
                 : TETHER_EPROTO;
    free(v);
    if (rc < 0)
        tether_log_kv(TETHER_LOG_WARN, "groups", "a stored group cannot be applied here", "group",
                      sg->name, "error", tether_strerror(rc), NULL);
}

static void got(void *user, const tether_store_result_t *res)
{
    if (res->rc == 0 && res->rec && res->rec->kind == TETHER_STORE_GROUP)
        apply(user, &res->rec->u.group);
}

static void on_change(void *user, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                      uint64_t version)
{
    tether_node_t *n = user;
    char name[TETHER_IDENTITY_MAX];
    if (kind != TETHER_STORE_GROUP || !key_len || key_len >= sizeof name)
        return;
    if (version) {
        tether_store_get(n->store, TETHER_STORE_GROUP, key, key_len, NO_TTL_NOW, got, n);
        return;
    }
    memcpy(name, key, key_len);
    name[key_len] = 0;
    tether_group_remove(n, name);
}

int tether_group_store_init(tether_node_t *n)
{
    return tether_store_watch(n->store, on_change, n);
}

void tether_group_store_free(tether_node_t *n)
{
    tether_store_unwatch(n->store, on_change, n);
}

/* The result of a put or delete: both stores complete these at once (see
 * above); a late completion finds nobody waiting (op_rc NULL). */
static void done(void *user, const tether_store_result_t *res)
{
    tether_node_t *n = user;
    if (n->groups.op_rc)
        *n->groups.op_rc = res->rc;
}

/* Runs a put (rec) or delete (key) with the result in *res. */
static int store_op(tether_node_t *n, const tether_store_rec_t *rec, const char *key,
                    tether_time_t now, int *res)
{
    *res = TETHER_EIO; /* a store that does not answer at once */
    n->groups.op_rc = res;
    int rc = rec ? tether_store_put(n->store, rec, TETHER_STORE_ANY, 0, now, done, n)
                 : tether_store_del(n->store, TETHER_STORE_GROUP, (const uint8_t *)key, strlen(key),
                                    TETHER_STORE_ANY, now, done, n);
    n->groups.op_rc = NULL;
    return rc;
}

int tether_node_group_put(tether_node_t *n, const char *name, const char *pattern,
                          const char *const *members, size_t nmembers, tether_time_t now)
{
    int rc = tether_group_check(n, name, pattern, members, nmembers);
    if (rc < 0)
        return rc;
    tether_store_rec_t rec = {.kind = TETHER_STORE_GROUP};
    tether_store_group_t *sg = &rec.u.group;
    /* the table's spelling of a group defined before: names compare
     * without case, store keys do not */
    const tether_group_t *old = tether_group_find(&n->groups, name);
    strcpy(sg->name, old ? old->name : name); /* checked: < TETHER_IDENTITY_MAX */
    if (pattern)
        strcpy(sg->pattern, pattern);
    /* stored without duplicates (group.h), as every node applies it */
    const char **uniq = tether_group_unique(&n->groups, members, nmembers, &nmembers);
    if (!uniq)
        return TETHER_ENOMEM;
    members = uniq;
    size_t bytes = 0;
    for (size_t i = 0; i < nmembers; i++)
        bytes += strlen(members[i]) + 1;
    char *blob = bytes ? malloc(bytes) : NULL, *p = blob;
    if (bytes && !blob) {
        free(uniq);
        return TETHER_ENOMEM;
    }
    for (size_t i = 0; i < nmembers; i++) {
        size_t l = strlen(members[i]) + 1;
        memcpy(p, members[i], l);
        p += l;
    }
    sg->members = blob;
    sg->members_len = bytes;
    sg->nmembers = nmembers;
    int res;
    rc = store_op(n, &rec, NULL, now, &res);
    free(blob);
    free(uniq);
    return rc < 0 ? rc : res;
}

int tether_node_group_del(tether_node_t *n, const char *name, tether_time_t now)
{
    const tether_group_t *old = tether_group_find(&n->groups, name);
    const char *key = old ? old->name : name;
    int res;
    int rc = store_op(n, NULL, key, now, &res);
    if (rc == 0 && res == TETHER_ENOTFOUND) /* not stored: a groups_file group, this node's */
        return tether_group_remove(n, name);
    return rc < 0 ? rc : res;
}
