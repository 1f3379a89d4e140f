/* libFuzzer target: opening the session tickets clients offer
 * (lib/dtls/ticket.c, dtls_ticket_cb with enc = 0), the parser a peer
 * reaches before it has authenticated (a ClientHello's session_ticket or
 * pre_shared_key extension, RFC 5077 §3.3, RFC 8446 §4.2.11).
 *
 * Input: [mode][bytes]. Mode bit 0 clear: the bytes are an external
 * ticket, key_name (16) | iv (16) | mac (32) | ciphertext (the rest, at
 * most WOLFSSL_TICKET_ENC_SZ); bit 1 set first puts our magic, the
 * current (bit 2: previous) epoch and the key check into key_name, so the
 * AEAD is tried. Bit 0 set: the bytes are a plaintext, wolfSSL's
 * InternalTicket followed by tether's trailer, sealed under the epoch key
 * (bit 2: the previous epoch's) before it is opened, so the trailer and
 * InternalTicket parsers behind the tag are reached; bit 3 set first
 * writes the current key tag of the identity the trailer names (a
 * fuzzer cannot find a SHA-256 prefix by itself). Bit 4: a ticket is also
 * issued to this unauthenticated peer (enc = 1), and must never open.
 *
 * Properties: nothing crashes or reads out of bounds; a ticket that opens
 * gives an internal ticket no longer than its ciphertext and a claim of
 * an identity the credentials list with that role and key, which was
 * remembered for the handshake; one of the previous epoch asks for a new
 * ticket (RET_CREATE), one of the current does not; a refused one leaves
 * no plaintext behind (it holds a master secret); a void ticket (issued
 * to a peer nobody authenticated) never opens.
 *
 * Seeds: `FUZZ_TICKET_SEEDS=DIR build/fuzz/fuzz_ticket` writes sealed
 * DTLS 1.2 and 1.3 tickets of dev1 (PSK) and cam1 (X.509), one of a
 * foreign trailer version and an unknown identity, and a raw ticket
 * (test/fuzz/corpus/fuzz_ticket holds the result). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/internal.h>
#include <wolfssl/ssl.h>

#include "dtls/dtls_int.h"
#include "dtls/ticket.h"
#include "tether/creds.h"
#include "tether/dtls.h"
#include "util/be64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define M_SEALED 1
#define M_NAMED 2
#define M_PREVIOUS 4
#define M_TAG 8
#define M_ISSUE 16
#define FIXED (WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + WOLFSSL_TICKET_MAC_SZ)

static tether_creds_t *creds;
static tether_dtls_srv_t *srv;
static WOLFSSL *ssl;
static io_t io;

static void name_of(uint8_t name[WOLFSSL_TICKET_NAME_SZ], bool previous)
{
    memcpy(name, "TQt1", 4);
    tether_be64_put(name + 4, srv->tkt.epoch - (previous ? 1 : 0));
    memcpy(name + 12, srv->tkt.check, 4);
}

/* Bit 3: the trailer's key tag becomes the one its identity has now. */
static void patch_tag(uint8_t *pt, size_t len)
{
    if (len < 12 || pt[len - 12] == 0 || pt[len - 12] > len - 12)
        return;
    size_t n = pt[len - 12];
    char id[TETHER_IDENTITY_MAX];
    if (n >= sizeof id)
        return;
    memcpy(id, pt + len - 12 - n, n);
    id[n] = 0;
    uint64_t tag;
    if (tether_creds_key_tag(creds, id, &tag) == 0)
        tether_be64_put(pt + len - 12 + 3, tag);
}

/* Seals plaintext pt[len] in place as ticket.c does; the ticket's fixed
 * fields into name, iv, mac. */
static void seal(uint8_t *pt, size_t len, bool previous, uint8_t *name, uint8_t *iv, uint8_t *mac)
{
    name_of(name, previous);
    memset(iv, 0x5c, WOLFSSL_TICKET_IV_SZ);
    uint8_t aad[34];
    memcpy(aad, name, 16);
    memcpy(aad + 16, iv, 16);
    aad[32] = (uint8_t)(len >> 8);
    aad[33] = (uint8_t)len;
    memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (wc_AesGcmEncrypt(&srv->tkt.aes[previous ? 1 : 0], pt, pt, (word32)len, iv, 12, mac, 16, aad,
                         sizeof aad) != 0)
        abort();
}

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Opens a ticket and checks what came out; returns what the callback did. */
static int open_and_check(uint8_t *name, uint8_t *iv, uint8_t *mac, uint8_t *buf, int len)
{
    dtls_io_auth_reset(&io);
    int out = len;
    int rc = dtls_ticket_cb(ssl, name, iv, mac, 0, buf, len, &out, srv);
    if (rc == WOLFSSL_TICKET_RET_REJECT) {
        if (!zero(buf, (size_t)len) || io.tickets)
            abort(); /* plaintext or a claim left behind */
        return rc;
    }
    if (rc != WOLFSSL_TICKET_RET_OK && rc != WOLFSSL_TICKET_RET_CREATE)
        abort();
    uint64_t e = tether_be64_get(name + 4);
    if ((rc == WOLFSSL_TICKET_RET_CREATE) != (e != srv->tkt.epoch))
        abort();
    if (out < (int)sizeof(InternalTicket) || out > len || !io.tickets || io.tickets->n != 1)
        abort();
    const tether_ticket_claim_t *c = &io.tickets->c[0];
    if (memchr(c->identity, 0, sizeof c->identity) == NULL || !c->identity[0] ||
        !dtls_ticket_claim_current(srv, c) || dtls_ticket_find(io.tickets, c->bind) != c)
        abort();
    dtls_io_auth_reset(&io);
    return rc;
}

/* One input; what opening its ticket returned (-1: the input is unused). */
static int one(const uint8_t *data, size_t size)
{
    static uint8_t buf[WOLFSSL_TICKET_ENC_SZ];
    if (size < 1)
        return -1;
    uint8_t mode = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    uint8_t name[WOLFSSL_TICKET_NAME_SZ], iv[WOLFSSL_TICKET_IV_SZ], mac[WOLFSSL_TICKET_MAC_SZ];
    if (mode & M_SEALED) {
        if (len > sizeof buf)
            return -1;
        memcpy(buf, in, len);
        if (mode & M_TAG)
            patch_tag(buf, len);
        seal(buf, len, mode & M_PREVIOUS, name, iv, mac);
    } else {
        if (len < FIXED || len - FIXED > sizeof buf)
            return -1;
        memcpy(name, in, sizeof name);
        memcpy(iv, in + 16, sizeof iv);
        memcpy(mac, in + 32, sizeof mac);
        len -= FIXED;
        memcpy(buf, in + FIXED, len);
        if (mode & M_NAMED)
            name_of(name, mode & M_PREVIOUS);
    }
    int rc = open_and_check(name, iv, mac, buf, (int)len);

    if (mode & M_ISSUE && len <= sizeof(InternalTicket)) {
        /* Nobody authenticated this handshake: its ticket is void. */
        memcpy(buf, in, len);
        int out = (int)sizeof buf;
        dtls_io_auth_reset(&io);
        if (dtls_ticket_cb(ssl, name, iv, mac, 1, buf, (int)len, &out, srv) ==
            WOLFSSL_TICKET_RET_OK) {
            if (out < (int)len || out > (int)sizeof buf)
                abort();
            dtls_io_auth_reset(&io);
            int back = out;
            if (dtls_ticket_cb(ssl, name, iv, mac, 0, buf, out, &back, srv) !=
                WOLFSSL_TICKET_RET_REJECT)
                abort();
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    return 0;
}

/* ---- seeds ---------------------------------------------------------------- */

/* An InternalTicket of DTLS 1.2 or 1.3 with a trailer for `id`. */
static size_t plaintext(uint8_t *out, bool dtls13, const char *id, uint8_t auth, uint8_t role,
                        uint8_t version)
{
    InternalTicket it;
    memset(&it, 0, sizeof it);
    it.pv.major = DTLS_MAJOR;
    it.pv.minor = dtls13 ? DTLSv1_3_MINOR : DTLSv1_2_MINOR;
    it.suite[0] = dtls13 ? TLS13_BYTE : ECC_BYTE;
    it.suite[1] = dtls13 ? TLS_AES_128_GCM_SHA256 : TLS_PSK_WITH_AES_128_CCM_8;
    memset(it.msecret, 0x42, sizeof it.msecret);
    it.ticketNonceLen = dtls13 ? 1 : 0;
    memcpy(out, &it, sizeof it);
    uint8_t *t = out + sizeof it;
    size_t n = strlen(id);
    memcpy(t, id, n);
    t += n;
    *t++ = (uint8_t)n;
    *t++ = auth;
    *t++ = role;
    uint64_t tag = 0;
    if (auth == AUTH_PSK)
        tether_creds_key_tag(creds, id, &tag);
    tether_be64_put(t, tag);
    t += 8;
    *t++ = version;
    return (size_t)(t - out);
}

/* Writes a seed, after checking that it opens (or not) as `expect`. */
static int seed(const char *dir, const char *file, uint8_t mode, const uint8_t *p, size_t n,
                int expect)
{
    uint8_t in[2048];
    in[0] = mode;
    memcpy(in + 1, p, n);
    if (one(in, n + 1) != expect) {
        fprintf(stderr, "fuzz_ticket: seed %s does not open as it should\n", file);
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n) {
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

static int write_seeds(const char *dir)
{
    uint8_t pt[1024];
    int rc = 0;
    size_t n = plaintext(pt, false, "dev1", AUTH_PSK, TETHER_ROLE_DEVICE, 1);
    rc |= seed(dir, "psk12_dev1", M_SEALED | M_TAG | M_ISSUE, pt, n, WOLFSSL_TICKET_RET_OK);
    n = plaintext(pt, true, "dev1", AUTH_PSK, TETHER_ROLE_DEVICE, 1);
    rc |= seed(dir, "psk13_dev1_previous", M_SEALED | M_TAG | M_PREVIOUS, pt, n,
               WOLFSSL_TICKET_RET_CREATE);
    n = plaintext(pt, false, "cam1", AUTH_X509, TETHER_ROLE_DEVICE, 1);
    rc |= seed(dir, "x509_12_cam1", M_SEALED, pt, n, WOLFSSL_TICKET_RET_OK);
    n = plaintext(pt, false, "cam1", AUTH_X509, TETHER_ROLE_CLIENT, 1);
    rc |= seed(dir, "x509_wrong_role", M_SEALED, pt, n, WOLFSSL_TICKET_RET_REJECT);
    n = plaintext(pt, true, "dev1", AUTH_PSK, TETHER_ROLE_DEVICE, 2);
    rc |= seed(dir, "trailer_v2", M_SEALED | M_TAG, pt, n, WOLFSSL_TICKET_RET_REJECT);
    n = plaintext(pt, false, "nobody", AUTH_PSK, TETHER_ROLE_DEVICE, 1);
    rc |= seed(dir, "unknown_identity", M_SEALED | M_TAG, pt, n, WOLFSSL_TICKET_RET_REJECT);
    uint8_t raw[FIXED + 200];
    memset(raw, 0xa5, sizeof raw);
    rc |= seed(dir, "raw_named", M_NAMED, raw, sizeof raw, WOLFSSL_TICKET_RET_REJECT);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[] = "/tmp/fuzz_ticket_creds.XXXXXX";
    int fd = mkstemp(path);
    static const char text[] =
        "{\"psk\": [{\"identity\": \"dev1\", \"key_hex\": \"30313233343536373839616263646566\", "
        "\"role\": \"device\"}],\n \"x509\": [{\"identity\": \"cam1\", \"role\": \"device\"}]}\n";
    char err[256];
    if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1) ||
        tether_creds_load(path, &creds, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_ticket: cannot load credentials\n");
        abort();
    }
    close(fd);
    unlink(path);
    static const uint8_t cluster_key[] = "fuzz-cluster-key-0123456789";
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.cluster_key = cluster_key;
    conf.cluster_key_len = sizeof cluster_key - 1;
    if (tether_dtls_create(&conf, creds, 1000, &srv) < 0)
        abort();
    tether_dtls_set_wall_clock(srv, 1700000000000ull);
    if (!(ssl = wolfSSL_new(srv->ctx)))
        abort();
    io.srv = srv;
    wolfSSL_SetIOReadCtx(ssl, &io);
    wolfSSL_SetIOWriteCtx(ssl, &io);
    const char *dir = getenv("FUZZ_TICKET_SEEDS");
    if (dir)
        exit(write_seeds(dir) ? 1 : 0);
    return 0;
}
