/* Reads the current record's number out of wolfSSL's state (see wolfrec.h).
 * Keys.curEpoch/curSeq_hi/curSeq_lo (DTLS 1.2) and Keys.curEpoch64/curSeq
 * (DTLS 1.3, already reconstructed from the encrypted partial number and
 * used as the AEAD nonce) are set while wolfSSL parses a record and stay put
 * until the next record: after wolfSSL_read() returned data they describe
 * the authenticated record that data came from. */
#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/internal.h>
#include <wolfssl/wolfcrypt/kdf.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <string.h>

#include "dtls/record.h"
#include "dtls/wolfrec.h"

#if LIBWOLFSSL_VERSION_HEX < 0x05007006
#error "tether needs wolfSSL >= 5.7.6 (deploy/deps.sh builds it)"
#endif
#if !defined(WORD64_AVAILABLE) || defined(WOLFSSL_W64_WRAPPER_TEST)
#error "expected w64wrapper to hold a word64"
#endif

uint32_t tether_wolf_hs_progress(const WOLFSSL *ssl)
{
    return ssl->keys.dtls_expected_peer_handshake_number;
}

bool tether_wolf_record_number(const WOLFSSL *ssl, uint64_t *epoch_seq, bool *dtls13)
{
    uint64_t epoch, seq;
    if (!ssl->options.dtls)
        return false;
    *dtls13 = ssl->options.tls1_3;
    if (ssl->options.tls1_3) {
        epoch = ssl->keys.curEpoch64.n;
        seq = ssl->keys.curSeq.n;
    } else {
        epoch = ssl->keys.curEpoch;
        seq = (uint64_t)ssl->keys.curSeq_hi << 32 | ssl->keys.curSeq_lo;
    }
    if (epoch > 0xffff || seq >> 48)
        return false;
    *epoch_seq = epoch << 48 | seq;
    return true;
}

/* Reads an established DTLS 1.2 AEAD session's record state (see
 * wolfrec.h). Direction: a server writes with the server keys and reads
 * with the client keys; a client (the unit tests' peer) the other way. */
int tether_wolf_export_rec(WOLFSSL *ssl, tether_rec_t *r)
{
    memset(r, 0, sizeof *r);
    if (!ssl->options.dtls || ssl->options.tls1_3 || !ssl->options.handShakeDone ||
        !ssl->keys.encryptionOn)
        return TETHER_EINVAL;
    bool server = ssl->options.side == WOLFSSL_SERVER_END;
    if (ssl->specs.key_size != 16 || ssl->specs.cipher_type != aead)
        return TETHER_EINVAL;
    if (ssl->specs.bulk_cipher_algorithm == wolfssl_aes_gcm && ssl->specs.aead_mac_size == 16)
        r->alg = TETHER_REC_AES128_GCM;
    else if (ssl->specs.bulk_cipher_algorithm == wolfssl_aes_ccm && ssl->specs.aead_mac_size == 8)
        r->alg = TETHER_REC_AES128_CCM8;
    else
        return TETHER_EINVAL;
    /* Unread records in wolfSSL's buffer would be lost. */
    if (ssl->buffers.inputBuffer.idx < ssl->buffers.inputBuffer.length ||
        ssl->buffers.clearOutputBuffer.length)
        return TETHER_EAGAIN;
    const WOLFSSL_DTLS_PEERSEQ *ps = &ssl->keys.peerSeq[0];
    if (ssl->keys.dtls_epoch == 0 || ps->nextEpoch != ssl->keys.dtls_epoch)
        return TETHER_EINVAL;
    r->epoch = ssl->keys.dtls_epoch;
    r->tx_seq =
        (uint64_t)ssl->keys.dtls_sequence_number_hi << 32 | ssl->keys.dtls_sequence_number_lo;
    r->rx_next = (uint64_t)ps->nextSeq_hi << 32 | ps->nextSeq_lo;
#if WOLFSSL_DTLS_WINDOW_WORDS < 2
#error "expected a 64-bit DTLS replay window"
#endif
    /* wolfSSL: bit k of word w stands for sequence next - 1 - (32 w + k). */
    r->rx_window = (uint64_t)ps->window[1] << 32 | ps->window[0];
    memcpy(r->tx_key, server ? ssl->keys.server_write_key : ssl->keys.client_write_key, 16);
    memcpy(r->rx_key, server ? ssl->keys.client_write_key : ssl->keys.server_write_key, 16);
    memcpy(r->tx_salt, server ? ssl->keys.server_write_IV : ssl->keys.client_write_IV, 4);
    memcpy(r->rx_salt, server ? ssl->keys.client_write_IV : ssl->keys.server_write_IV, 4);
    unsigned int txl = 0;
    if (wolfSSL_dtls_cid_is_enabled(ssl) == WOLFSSL_SUCCESS &&
        wolfSSL_dtls_cid_get_tx_size(ssl, &txl) == WOLFSSL_SUCCESS && txl) {
        if (txl > sizeof r->tx_cid ||
            wolfSSL_dtls_cid_get_tx(ssl, r->tx_cid, sizeof r->tx_cid) != WOLFSSL_SUCCESS)
            return TETHER_EINVAL;
        r->tx_cid_len = (uint8_t)txl;
    }
    return 0;
}

/* SHA-256 of a label and the secret: the binding of a ticket (ticket.h). */
static int bind_of(uint8_t kind, const uint8_t *secret, size_t len, uint8_t *bind)
{
    wc_Sha256 h;
    if (wc_InitSha256(&h) != 0)
        return TETHER_ECRYPTO;
    int rc = wc_Sha256Update(&h, &kind, 1);
    if (!rc)
        rc = wc_Sha256Update(&h, secret, (word32)len);
    if (!rc)
        rc = wc_Sha256Final(&h, bind);
    wc_Sha256Free(&h);
    return rc ? TETHER_ECRYPTO : 0;
}

enum { BIND_DTLS12 = 12, BIND_DTLS13 = 13 };

int tether_wolf_ticket_bind(const uint8_t *buf, size_t len, uint8_t bind[TETHER_WOLF_BIND_LEN])
{
    InternalTicket it;
    if (len < sizeof it)
        return TETHER_EINVAL;
    memcpy(&it, buf, sizeof it); /* the buffer has no alignment */
    int rc;
    if (it.pv.major != DTLS_MAJOR) {
        rc = TETHER_EINVAL;
    } else if (it.pv.minor == DTLSv1_2_MINOR) {
        rc = bind_of(BIND_DTLS12, it.msecret, SECRET_LEN, bind);
    } else if (it.pv.minor != DTLSv1_3_MINOR || it.suite[0] != TLS13_BYTE ||
               (it.suite[1] != TLS_AES_128_GCM_SHA256 && it.suite[1] != TLS_AES_128_CCM_8_SHA256) ||
               it.ticketNonceLen > MAX_TICKET_NONCE_STATIC_SZ) {
        rc = TETHER_EINVAL; /* not our suites (their hash is SHA-256), or not DTLS */
    } else {
        /* RFC 8446 §4.6.1, DTLS labels (RFC 9147 §5.9): the PSK that
         * resuming this ticket keys the handshake with. */
        static const uint8_t proto[] = "dtls13", label[] = "resumption";
        uint8_t psk[WC_SHA256_DIGEST_SIZE];
        rc = wc_Tls13_HKDF_Expand_Label(psk, sizeof psk, it.msecret, WC_SHA256_DIGEST_SIZE, proto,
                                        sizeof proto - 1, label, sizeof label - 1, it.ticketNonce,
                                        it.ticketNonceLen, WC_SHA256)
                 ? TETHER_ECRYPTO
                 : bind_of(BIND_DTLS13, psk, sizeof psk, bind);
        wc_ForceZero(psk, sizeof psk);
    }
    wc_ForceZero(&it, sizeof it);
    return rc;
}

/* Whether the handshake resumes a ticket, and the binding of the secret it
 * resumes. DTLS 1.2: `resuming` survives only when the ticket opened (a
 * session-ID resumption finds no cache: it is off); the master secret is
 * the ticket's. DTLS 1.3: a ticket PSK was chosen (an external one sets
 * isPSK and clears resuming), and psk_key is the PSK derived from it. */
static bool resumed(const WOLFSSL *ssl, uint8_t *bind)
{
    if (!ssl->options.resuming || !ssl->arrays)
        return false;
    if (ssl->options.tls1_3)
        return !ssl->options.isPSK && ssl->arrays->psk_keySz == WC_SHA256_DIGEST_SIZE &&
               bind_of(BIND_DTLS13, ssl->arrays->psk_key, ssl->arrays->psk_keySz, bind) == 0;
    return bind_of(BIND_DTLS12, ssl->arrays->masterSecret, SECRET_LEN, bind) == 0;
}

static enum tether_wolf_auth peer_auth(const WOLFSSL *ssl, char *identity, size_t cap,
                                       uint8_t *bind)
{
    identity[0] = 0;
    if (ssl->options.side != WOLFSSL_SERVER_END)
        return TETHER_WOLF_AUTH_NONE;
    if (ssl->options.resuming)
        return resumed(ssl, bind) ? TETHER_WOLF_AUTH_RESUMED : TETHER_WOLF_AUTH_NONE;
    /* DTLS 1.3: isPSK is set only when an external PSK was chosen in the
     * stateful ClientHello (RFC 8446 §4.2.11), and a binder that does not
     * verify is fatal before the handshake can complete. DTLS 1.2: the key
     * exchange of the negotiated suite; the PSK then keyed the Finished. */
    bool psk = ssl->options.tls1_3 ? ssl->options.isPSK
                                   : ssl->specs.kea == psk_kea || ssl->specs.kea == dhe_psk_kea ||
                                         ssl->specs.kea == ecdhe_psk_kea;
    if (psk) {
        if (!ssl->arrays)
            return TETHER_WOLF_AUTH_NONE;
        size_t n = strnlen(ssl->arrays->client_identity, sizeof ssl->arrays->client_identity);
        if (n == 0 || n >= cap)
            return TETHER_WOLF_AUTH_NONE;
        memcpy(identity, ssl->arrays->client_identity, n);
        identity[n] = 0;
        return TETHER_WOLF_AUTH_PSK;
    }
    if (ssl->options.havePeerCert && ssl->options.havePeerVerify)
        return TETHER_WOLF_AUTH_CERT;
    return TETHER_WOLF_AUTH_NONE;
}

enum tether_wolf_auth tether_wolf_peer_auth(const WOLFSSL *ssl, char *identity, size_t cap,
                                            uint8_t bind[TETHER_WOLF_BIND_LEN])
{
    if (!ssl->options.handShakeDone) {
        identity[0] = 0;
        return TETHER_WOLF_AUTH_NONE;
    }
    return peer_auth(ssl, identity, cap, bind);
}

enum tether_wolf_auth tether_wolf_ticket_peer(const WOLFSSL *ssl, char *identity, size_t cap,
                                              uint8_t bind[TETHER_WOLF_BIND_LEN])
{
    return peer_auth(ssl, identity, cap, bind);
}
