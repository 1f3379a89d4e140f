/* Groups as JSON (see groups.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups.h"
#include "tether/common.h"

#define MEMBERS_MAX 1000000 /* a list longer than any proxy.group_max_members */

int tetherd_group_put(tether_node_t *node, const char *name, const json_t *obj, bool shared,
                      tether_time_t now, char *err, size_t cap)
{
    json_t *members = json_object_get(obj, "members"), *pattern = json_object_get(obj, "pattern");
    if (!json_is_object(obj) || json_object_size(obj) != 1 ||
        !(json_is_array(members) || json_is_string(pattern))) {
        snprintf(err, cap,
                 "group %s: expected {\"members\": [\"dev1\", ...]} or {\"pattern\": "
                 "\"GLOB\"}",
                 name);
        return TETHER_EINVAL;
    }
    size_t n = json_array_size(members);
    if (members && (n == 0 || n > MEMBERS_MAX)) {
        snprintf(err, cap, "group %s: \"members\" must list 1 to %d devices", name, MEMBERS_MAX);
        return TETHER_EINVAL;
    }
    const char **names = n ? calloc(n, sizeof *names) : NULL;
    if (n && !names)
        return TETHER_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(members, i));
        if (!names[i] || !names[i][0] || strlen(names[i]) >= TETHER_IDENTITY_MAX) {
            snprintf(err, cap, "group %s: members[%zu] must be a device name (1..%d bytes)", name,
                     i, TETHER_IDENTITY_MAX - 1);
            free(names);
            return TETHER_EINVAL;
        }
    }
    int rc = shared ? tether_node_group_put(node, name, json_string_value(pattern), names, n, now)
                    : tether_node_group_set(node, name, json_string_value(pattern), names, n);
    free(names);
    if (rc == TETHER_EINVAL)
        snprintf(err, cap, "group %s: a name and a pattern of 1..%d bytes", name,
                 TETHER_IDENTITY_MAX - 1);
    else if (rc == TETHER_ELIMIT)
        snprintf(err, cap, "group %s: beyond proxy.max_groups or proxy.group_max_members", name);
    else if (rc < 0)
        snprintf(err, cap, "group %s: %s", name, tether_strerror(rc));
    return rc;
}

json_t *tetherd_group_json(const tether_group_info_t *g)
{
    if (g->pattern)
        return json_pack("{s:s, s:s}", "name", g->name, "pattern", g->pattern);
    json_t *m = json_array();
    for (size_t i = 0; m && i < g->nmembers; i++)
        json_array_append_new(m, json_string(g->member[i]));
    return json_pack("{s:s, s:o}", "name", g->name, "members", m);
}

int tetherd_groups_load(tether_node_t *node, const char *path, char *err, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, cap, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return TETHER_ECONFIG;
    }
    json_t *groups = json_object_get(root, "groups");
    int rc = 0;
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_object(groups)) {
        snprintf(err, cap, "%s: expected {\"groups\": {\"NAME\": {...}, ...}}", path);
        rc = TETHER_ECONFIG;
    }
    const char *name;
    json_t *g;
    char why[256];
    json_object_foreach(rc == 0 ? groups : NULL, name, g)
    {
        if (tetherd_group_put(node, name, g, false, 0, why, sizeof why) < 0) {
            snprintf(err, cap, "%s: %s", path, why);
            rc = TETHER_ECONFIG;
            break;
        }
    }
    json_decref(root);
    return rc;
}

json_t *tetherd_groups_json(const tether_node_t *node, const char *name)
{
    tether_group_info_t g;
    if (name)
        return tether_node_group(node, name, &g) == 0 ? tetherd_group_json(&g) : NULL;
    json_t *list = json_array();
    const char *after = NULL;
    while (list && tether_node_group_next(node, after, &g) == 0) {
        json_array_append_new(list, tetherd_group_json(&g));
        after = g.name;
    }
    return json_pack("{s:o}", "groups", list);
}
