/* Unit-test helper: a credential set from JSON text (tether_creds_load
 * reads a file, so the text goes through a temporary one). Include after
 * cmocka.h. */
#ifndef TETHER_TEST_CREDS_FIXTURE_H
#define TETHER_TEST_CREDS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tether/creds.h"

static inline tether_creds_t *creds_from_json(const char *json)
{
    char path[] = "/tmp/tether-test-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    dprintf(fd, "%s", json);
    close(fd);
    tether_creds_t *c;
    char err[256];
    assert_int_equal(tether_creds_load(path, &c, err, sizeof err), 0);
    unlink(path);
    return c;
}

#endif
