/* tetherd — the admin endpoint's log of refused tokens, bounded. Every
 * wrong token is counted (admin.auth_failures), but a peer hammering the
 * port with guesses must not turn each one into a log line (disk, log
 * shipping, and the operator's attention are what it would spend): at
 * most ADMIN_AUTHLOG_BURST lines per ADMIN_AUTHLOG_WINDOW_MS, the next
 * line logged saying how many were left out meanwhile.
 *
 * Pure: `now_ms` is passed in (the caller's uv_now), tested with the clock
 * stepped (test/unit/test_authlog.c). */
#ifndef TETHERD_ADMIN_AUTHLOG_H
#define TETHERD_ADMIN_AUTHLOG_H

#include <stdbool.h>
#include <stdint.h>

#define ADMIN_AUTHLOG_BURST 10
#define ADMIN_AUTHLOG_WINDOW_MS 10000

typedef struct {
    uint64_t window_start; /* ms */
    uint32_t in_window;    /* lines logged in the window */
    uint64_t suppressed;   /* failures not logged since the last line */
    uint64_t failures;     /* every failure (admin.auth_failures) */
} admin_authlog_t;

/* Counts one failure at `now_ms`: true when it may be logged, with
 * *suppressed set to the failures left out since the previous line (then
 * forgotten); false when it is only counted. */
bool admin_authlog_failure(admin_authlog_t *l, uint64_t now_ms, uint64_t *suppressed);

#endif
