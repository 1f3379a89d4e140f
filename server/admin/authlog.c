/* The admin endpoint's bounded log of refused tokens (authlog.h). */
#include "authlog.h"

bool admin_authlog_failure(admin_authlog_t *l, uint64_t now_ms, uint64_t *suppressed)
{
    l->failures++;
    /* A fixed window: simple, and its worst case (2 x burst lines around
     * a window's edge) is as bounded as a sliding one. A clock that went
     * back starts a window too. */
    if (now_ms < l->window_start || now_ms - l->window_start >= ADMIN_AUTHLOG_WINDOW_MS) {
        l->window_start = now_ms;
        l->in_window = 0;
    }
    if (l->in_window >= ADMIN_AUTHLOG_BURST) {
        l->suppressed++;
        return false;
    }
    l->in_window++;
    *suppressed = l->suppressed;
    l->suppressed = 0;
    return true;
}
