/* JSON-lines logger. Single-threaded by design (one loop per process). */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "tether/log.h"

static tether_log_level_t g_level = TETHER_LOG_INFO;
static FILE *g_out;

void tether_log_set_level(tether_log_level_t lvl) { g_level = lvl; }
tether_log_level_t tether_log_get_level(void) { return g_level; }
void tether_log_set_file(FILE *f) { g_out = f; }

static const char *const names[] = {"error", "warn", "info", "debug"};

const char *tether_log_level_name(tether_log_level_t lvl)
{
    return (unsigned)lvl < 4 ? names[lvl] : "unknown";
}

int tether_log_level_parse(const char *s, tether_log_level_t *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (tether_log_level_t)i;
            return 0;
        }
    return TETHER_EINVAL;
}

/* Writes s as a JSON string body (without quotes), escaping controls. */
static void put_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

void tether_log_kv(tether_log_level_t lvl, const char *component, const char *msg, ...)
{
    if (lvl > g_level)
        return;
    FILE *f = g_out ? g_out : stderr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[32];
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":\"", tbuf,
            ts.tv_nsec / 1000000, tether_log_level_name(lvl));
    put_escaped(f, component);
    fputs("\",\"msg\":\"", f);
    put_escaped(f, msg);
    fputc('"', f);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        fputs(",\"", f);
        put_escaped(f, k);
        fputs("\":\"", f);
        put_escaped(f, v ? v : "");
        fputc('"', f);
    }
    va_end(ap);
    fputs("}\n", f);
    fflush(f);
}
