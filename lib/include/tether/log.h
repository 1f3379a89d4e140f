/* tether — structured logging: one JSON object per line.
 * The library never chooses where logs go: the process sets a sink. */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <stdio.h>

#include "tether/common.h"

typedef enum {
    TETHER_LOG_ERROR = 0,
    TETHER_LOG_WARN = 1,
    TETHER_LOG_INFO = 2,
    TETHER_LOG_DEBUG = 3,
} tether_log_level_t;

TETHER_API void tether_log_set_level(tether_log_level_t lvl);
TETHER_API tether_log_level_t tether_log_get_level(void);
/* Where lines go (default stderr). */
TETHER_API void tether_log_set_file(FILE *f);
/* Parses "error|warn|info|debug"; TETHER_EINVAL otherwise. */
TETHER_API int tether_log_level_parse(const char *s, tether_log_level_t *out);
TETHER_API const char *tether_log_level_name(tether_log_level_t lvl);

/* Emit {"ts":..,"level":..,"component":..,"msg":..,<kv...>}. `kv` is a
 * NULL-terminated list of key, value string pairs (values JSON-escaped).
 * Callers must never pass secrets. */
TETHER_API void tether_log_kv(tether_log_level_t lvl, const char *component, const char *msg,
                              ...) __attribute__((sentinel));

#define tether_log_enabled(lvl) ((lvl) <= tether_log_get_level())

#endif
