/* tetherd: groups as JSON (SPEC S11) — the groups_file and the admin API
 * (PUT/GET/DELETE /groups/{name}) define them on the node
 * (tether_node_group_set) in one format:
 *
 *   {"members": ["dev1", "dev2"]}  or  {"pattern": "floor1-*"}
 *
 * and the groups_file is {"groups": {"NAME": <group>, ...}}. */
#ifndef TETHERD_GROUPS_H
#define TETHERD_GROUPS_H

#include <jansson.h>
#include <stddef.h>

#include "tether/node.h"

/* Defines group `name` from `obj`. 0; TETHER_EINVAL (bad object, message
 * in err[cap]), TETHER_ELIMIT (proxy.max_groups, proxy.group_max_members)
 * or TETHER_ENOMEM. */
int tetherd_group_put(tether_node_t *node, const char *name, const json_t *obj, char *err,
                      size_t cap);
/* The JSON form of a group: {"name", "members"} or {"name", "pattern"}. */
json_t *tetherd_group_json(const tether_group_info_t *g);
/* Reads `path` and defines every group in it (the file's groups replace
 * groups of the same name; others stay). 0, or TETHER_ECONFIG with the
 * file, line or group in err[cap] (groups before the bad one are defined). */
int tetherd_groups_load(tether_node_t *node, const char *path, char *err, size_t cap);

#endif
