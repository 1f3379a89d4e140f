/* Config internals: writing a key's field (config/load.c is the only
 * writer; everything else reads through config.h). */
#ifndef TETHERD_CONFIG_KEYS_H
#define TETHERD_CONFIG_KEYS_H

#include "../config.h"

/* Rows in the key table at most (the getopt table is sized by it). */
#define TETHERD_CONFIG_MAX_KEYS 192

void tetherd_config_set_uint(tetherd_config_t *c, const tetherd_key_t *k, uint64_t v);
void tetherd_config_set_bool(tetherd_config_t *c, const tetherd_key_t *k, bool v);
/* The string field of a string-typed key (k->size bytes). */
char *tetherd_config_str_field(tetherd_config_t *c, const tetherd_key_t *k);
/* Sets every key whose default is the library's (k->def == NULL, k->lib
 * set) from tether_node_conf_defaults / tether_dtls_conf_defaults. */
void tetherd_config_lib_defaults(tetherd_config_t *c);

#endif
