/* tetherd: groups as JSON (SPEC S11) — the groups_file and the admin API
 * (PUT/GET/DELETE /groups/{name}) define them on the node
 * (tether_node_group_set) in one format:
 *
 *   {"members": ["dev1", "dev2"]}  or  {"pattern": "floor1-*"}
 *
 * and the groups_file is {"groups": {"NAME": <group>, ...}}. The file's
 * groups are this node's; the admin API's go through the state store, so
 * with Redis every node has them (lib/proxy/group_store.c). */
#ifndef TETHERD_GROUPS_H
#define TETHERD_GROUPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tether/node.h"

/* Defines group `name` from `obj`: on this node, or `shared` through the
 * state store (tether_node_group_put: every node sharing the store, Redis,
 * gets it). 0; TETHER_EINVAL (bad object, message in err[cap]),
 * TETHER_ELIMIT (proxy.max_groups, proxy.group_max_members, a full store),
 * TETHER_EIO or TETHER_ENOMEM. */
int tetherd_group_put(tether_node_t *node, const char *name, const json_t *obj, bool shared,
                      tether_time_t now, char *err, size_t cap);
/* The JSON form of a group: {"name", "members"} or {"name", "pattern"}. */
json_t *tetherd_group_json(const tether_group_info_t *g);
/* GET /groups/{name}: group `name` as above (NULL: none); name NULL:
 * {"groups": [every group, by name]}. */
json_t *tetherd_groups_json(const tether_node_t *node, const char *name);
/* Reads `path` and defines every group in it (the file's groups replace
 * groups of the same name; others stay). 0, or TETHER_ECONFIG with the
 * file, line or group in err[cap] (groups before the bad one are defined). */
int tetherd_groups_load(tether_node_t *node, const char *path, char *err, size_t cap);

#endif
