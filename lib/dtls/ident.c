/* Established sessions per identity (internal to lib/dtls; SPEC S2, S10:
 * conf.max_sessions_per_identity).
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
 * its identity has established sessions; it is keyed by a digest of the
 * identity (names are longer than a map key) and holds the name itself.
 * A session costs a list node and a flag (an idle tunnel is budgeted,
 * SPEC S9): its entry is found again by its identity when it closes.
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

/* The entry of s's identity, or NULL; its key into key. */
static ident_t *ident_find(const tether_dtls_srv_t *srv, const tether_dtls_sess_t *s,
                           uint8_t key[IDENT_KEY])
{
    if (!ident_key(s->io.identity, key))
        return NULL;
    tether_hnode_t *h = tether_hmap_find(&srv->idents, key, IDENT_KEY);
    return h ? container_of(h, ident_t, node) : NULL;
}

void dtls_ident_add(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    uint8_t key[IDENT_KEY];
    if (!srv->conf.max_sessions_per_identity || !s->io.identity[0])
        return; /* uncounted: the total cap still holds */
    ident_t *id = ident_find(srv, s, key);
    if (id && strcmp(id->name, s->io.identity) != 0)
        return; /* a digest collision: uncounted */
    if (!id) {
        if (!(id = calloc(1, sizeof *id)))
            return;
        memcpy(id->name, s->io.identity, sizeof id->name);
        tether_hmap_insert(&srv->idents, &id->node, key, sizeof key);
    }
    tether_list_push(&id->sessions, &s->ident_ln);
    id->n++;
    s->ident_counted = true;
    /* s is the newest, so never the one that goes; n stays >= 1. */
    while (id->n > srv->conf.max_sessions_per_identity) {
        tether_dtls_sess_t *old = container_of(id->sessions.head, tether_dtls_sess_t, ident_ln);
        srv->stats.sessions_identity_capped++;
        dtls_sess_close(srv, old, TETHER_DTLS_WHY_REPLACED); /* takes it off the list */
    }
}

void dtls_ident_del(tether_dtls_srv_t *srv, tether_dtls_sess_t *s)
{
    uint8_t key[IDENT_KEY];
    ident_t *id = s->ident_counted ? ident_find(srv, s, key) : NULL;
    s->ident_counted = false;
    if (!id)
        return;
    tether_list_del(&id->sessions, &s->ident_ln);
    if (--id->n == 0) {
        tether_hmap_remove(&srv->idents, &id->node);
        free(id);
    }
}
