/* GET /config: the effective configuration, every key of the config key
 * table (config/keys.c) in its JSON place, plus "file". Secrets are "***"
 * when set and "" when not; a URL's password is "***"; log_level is the
 * level in force now (PUT /log-level changes it). */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "tether/log.h"

/* The JSON form of one key's value; NULL when out of memory. */
static json_t *key_json(const tetherd_config_t *cfg, const tetherd_key_t *k)
{
    switch (k->type) {
    case TETHERD_KEY_UINT: return json_integer((json_int_t)tetherd_config_uint(cfg, k));
    case TETHERD_KEY_BOOL: return json_boolean(tetherd_config_bool(cfg, k));
    case TETHERD_KEY_SECRET: return json_string(*tetherd_config_str(cfg, k) ? "***" : "");
    case TETHERD_KEY_LOG_LEVEL: return json_string(tether_log_level_name(tether_log_get_level()));
    case TETHERD_KEY_URL: {
        char buf[300];
        tetherd_url_redacted(tetherd_config_str(cfg, k), buf, sizeof buf);
        return admin_jstr(buf);
    }
    case TETHERD_KEY_LISTEN: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < cfg->nlisten; i++) {
            char buf[100];
            tetherd_listen_str(&cfg->listen[i], buf, sizeof buf);
            json_array_append_new(a, admin_jstr(buf));
        }
        return a;
    }
    case TETHERD_KEY_NODES: {
        json_t *o = json_object();
        for (size_t i = 0; o && i < cfg->ncluster_nodes; i++) {
            char id[8];
            snprintf(id, sizeof id, "%u", cfg->cluster_nodes[i].id);
            json_object_set_new(o, id, admin_jstr(cfg->cluster_nodes[i].addr));
        }
        return o;
    }
    default: return admin_jstr(tetherd_config_str(cfg, k));
    }
}

/* The configuration as JSON; NULL when out of memory. */
static json_t *config_json(const tetherd_config_t *cfg)
{
    json_t *j = json_object();
    if (!j || json_object_set_new(j, "file", admin_jstr(cfg->file)) < 0)
        goto fail;
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        const char *dot = strchr(k->key, '.');
        json_t *obj = j;
        if (dot) { /* the section object, made by its first key */
            char sect[64];
            snprintf(sect, sizeof sect, "%.*s", (int)(dot - k->key), k->key);
            if (!(obj = json_object_get(j, sect)) &&
                (!(obj = json_object()) || json_object_set_new(j, sect, obj) < 0))
                goto fail;
        }
        json_t *v = key_json(cfg, k);
        if (!v || json_object_set_new(obj, dot ? dot + 1 : k->key, v) < 0)
            goto fail;
    }
    return j;
fail:
    json_decref(j);
    return NULL;
}

void admin_h_config(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    json_t *j = config_json(c->a->cfg);
    if (!j) {
        admin_respond_error(c, 500, NULL, "building the configuration failed");
        return;
    }
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}
