/* Established sessions per identity (internal to lib/dtls; SPEC S2, S10:
 * conf.max_sessions_per_identity), and the one copy of each identity's
 * name they share.
 *
 * Contract: established sessions are never evicted for newcomers
 * (listener.c), so without a cap one credential holder could open
 * max_sessions of them (handshakes from many ports, resumed ones for
 * almost nothing) and keep every other device out until the idle timeout.
 * Each identity's established sessions are listed oldest first; when a
 * session is established for an identity at its cap, the identity's
 * oldest one is closed (TETHER_DTLS_WHY_REPLACED, counted in
 * sessions_identity_capped): a device that reconnects loses only sessions
 * it left behind, a credential holder only its own. An entry exists while
 * its identity has established sessions (whether or not a cap is set);
 * it is keyed by a digest of the identity (names are longer than a map
 * key) and holds the name at its own length. A session costs a pointer
 * and a list node (an idle tunnel is budgeted, SPEC S9).
 */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "dtls/dtls_int.h"
#include "util/container.h"

#define IDENT_KEY 16

static bool ident_key(const char *identity, uint8_t key[IDENT_KEY])
{
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    if (wc_Sha256Hash((const byte *)identity, (word32)strlen(identity), d) != 0)
        return false;
    memcpy(key, d, IDENT_KEY);
    return true;
}

/* The entry of identity `name`, or NULL; its key into key. */
static ident_t *ident_find(const tether_dtls_srv_t *srv, const char *name, uint8_t key[IDENT_KEY])
{
    if (!ident_key(name, key))
        return NULL;
    tether_hnode_t *h = tether_hmap_find(&srv->idents, key, IDENT_KEY);
    return h ? container_of(h, ident_t, node) : NULL;
}

const char *dtls_sess_name(const tether_dtls_sess_t *s)
{
    return s->ident ? s->ident->name : "";
}

int dtls_ident_add(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, const char *name)
{
    uint8_t key[IDENT_KEY];
    size_t len = strnlen(name, TETHER_IDENTITY_MAX);
    if (!len || len == TETHER_IDENTITY_MAX)
        return TETHER_EINVAL;
    ident_t *id = ident_find(srv, name, key);
    if (id && strcmp(id->name, name) != 0)
        return TETHER_EINVAL; /* a digest collision (SHA-256 prefix): refuse, never merge */
    if (!id) {
        if (!(id = calloc(1, sizeof *id + len + 1)))
            return TETHER_ENOMEM;
        memcpy(id->name, name, len + 1);
        tether_hmap_insert(&srv->idents, &id->node, key, sizeof key);
    }
    tether_list_push(&id->sessions, &s->ident_ln);
    id->n++;
    s->ident = id;
    /* s is the newest, so never the one that goes; n stays >= 1. */
    while (srv->conf.max_sessions_per_identity && id->n > srv->conf.max_sessions_per_identity) {
        tether_dtls_sess_t *old = container_of(id->sessions.head, tether_dtls_sess_t, ident_ln);
        srv->stats.sessions_identity_capped++;
        dtls_sess_close(srv, old, TETHER_DTLS_WHY_REPLACED); /* takes it off the list */
    }
    return 0;
}

void dtls_ident_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    ident_t *id = s->ident;
    s->ident = NULL;
    if (!id)
        return;
    tether_list_del(&id->sessions, &s->ident_ln);
    if (--id->n == 0) {
        tether_hmap_remove(&srv->idents, &id->node);
        free(id);
    }
}
