/* tether — block-wise transfers through the proxy (internal to lib/proxy;
 * RFC 7959, RFC 9175 §3, SPEC S4).
 *
 * Block2 (responses larger than one datagram). tether fetches every block
 * of a device's representation itself ("a transfer": one upstream request
 * at a time, block NUM+1 after block NUM), reassembles it into one buffer
 * of at most conf.block_max_bytes, stores it whole in the cache
 * (Max-Age, ETag) and serves each client the block it asks for, in the
 * size it asks for (RFC 7959 §2.4 early negotiation: Block2 NUM=0 with the
 * SZX the client wants; Size2 when the request carries Size2, §4).
 * Clients asking for the same representation while a transfer runs wait
 * for it (one upstream transfer however many clients). The ETag of every
 * block must equal the first block's: a change restarts the transfer from
 * block 0 (at most BW_MAX_RESTARTS times), so no client gets blocks of two
 * versions from one transfer. What a device may send is checked at every
 * block: the block number must be the one asked for (its offset, when the
 * device chose a smaller size, §2.4), a block with M=1 carries exactly the
 * block size, the total stays within block_max_bytes (also when Size2
 * announces more), the whole transfer within conf.block_timeout_ms;
 * anything else ends the transfer and its clients get 5.02.
 * A representation that the cache does not keep (Max-Age 0, caching off)
 * stays with its transfer for conf.block_idle_ms so that clients can
 * fetch its later blocks.
 *
 * Block1 (uploads). Each block a client sends is relayed to the device
 * as it comes (tether buffers no upload), under a Request-Tag of tether's
 * own per upload (RFC 9175 §3.4: the device sees all uploads from one
 * endpoint, tether, and must keep them apart); the device's 2.31 Continue
 * goes back to the client. An upload's blocks must come in order (else
 * 4.08, §2.9.2); Size1 or the bytes sent beyond conf.upload_max_bytes get
 * 4.13 with Size1 (§2.9.3, §4); at most conf.uploads_per_device uploads
 * run per device (5.03 beyond). The cache is not touched before the
 * device's final answer (2.01/2.04 invalidate then, relay_cache.c). An
 * upload the client stops continuing is forgotten after block_idle_ms.
 *
 * tether's own resources (local.c) are served in blocks by
 * tether_bw_slice as well.
 *
 * Lifetimes: transfers and uploads are owned by the node's tether_bw_t
 * (at most conf.block_max_transfers of both together); a transfer's or an
 * upload's relayed request points back to it (relay_req_t.bw_xfer,
 * bw_upload), and whichever goes first clears the other's pointer.
 * Waiting clients count in n->npending like relayed requests.
 */
#ifndef TETHER_PROXY_BLOCKWISE_H
#define TETHER_PROXY_BLOCKWISE_H

#include "tether/addr.h"
#include "tether/coap.h"
#include "tether/list.h"

struct tether_node;
struct tether_device;
struct relay_req;

#define BW_MAX_RESTARTS 3 /* an ETag that keeps changing: give up (5.02) */

typedef struct bw_xfer bw_xfer_t;
typedef struct bw_upload bw_upload_t;

typedef struct {
    tether_list_t xfers;   /* bw_xfer_t, Block2 reassemblies (and kept representations) */
    tether_list_t uploads; /* bw_upload_t */
    size_t nxfers, nuploads;
    uint32_t next_rtag; /* Request-Tags of tether's uploads */
} tether_bw_t;

/* Frees every transfer and upload, cancelling their relayed requests
 * without answering (node teardown). */
void tether_bw_free(struct tether_node *n);

/* Cuts the representation in `resp` down to the block `req` asks for
 * (Block2; without one, the first block of conf.block_size when it does
 * not fit one datagram, else `resp` unchanged), adding Block2 (value in
 * blk[3]) and Size2 when asked (value in sz2[4]): both must outlive resp.
 * TETHER_EPROTO when the request's Block2 is malformed or beyond the
 * end (the caller answers 4.02). */
int tether_bw_slice(struct tether_node *n, const tether_coap_msg_t *req, tether_coap_msg_t *resp,
                    uint8_t blk[3], uint8_t sz2[4]);

/* A client's request for device `d` (named `host`), `up` being it as it
 * would be forwarded. Block2: answers it from a cached or kept whole
 * representation, or makes it wait for a transfer (returns true: handled).
 * Block1: checks it against its upload, answering errors (true), or
 * rewrites `up` for the device (Request-Tag; values in rtag[8], which must
 * outlive up) and returns false with *upload set, which the caller's
 * relayed request then carries. Otherwise false. */
bool tether_bw_request(struct tether_node *n, const tether_link_t *link,
                       const tether_coap_msg_t *req, struct tether_device *d, const char *host,
                       tether_coap_msg_t *up, uint8_t rtag[8], bw_upload_t **upload,
                       tether_time_t now);

/* The device's answer `resp` to a relayed request `r` of a client: a
 * first block with M=1 starts a transfer (or joins the one running) and
 * the client waits for it: returns true, and the caller frees `r`
 * without answering. */
bool tether_bw_adopt(struct tether_node *n, struct relay_req *r, const tether_coap_msg_t *resp,
                     tether_time_t now);

/* The answer (the device's, or tether's 5.02/5.04) to a transfer's
 * relayed request, which is already freed. */
void tether_bw_xfer_answer(struct tether_node *n, bw_xfer_t *x, const tether_coap_msg_t *resp,
                           tether_time_t now);
/* The answer to an upload block's relayed request, about to go to the
 * client: the upload advances (2.31), ends (anything else) or is freed. */
void tether_bw_upload_answer(struct tether_node *n, bw_upload_t *u, const tether_coap_msg_t *resp,
                             tether_time_t now);
/* Links a transfer or an upload with its relayed request `r`. */
void tether_bw_xfer_attach(bw_xfer_t *x, struct relay_req *r);
void tether_bw_upload_attach(bw_upload_t *u, struct relay_req *r);
/* A relayed request of a transfer or upload is freed: forget it. */
void tether_bw_detach(struct relay_req *r);

/* Uploads (bwupload.c): the Block1 part of tether_bw_request, answered
 * as it describes; an upload's request freed; idle uploads abandoned at
 * `now` (proxy.block_idle_ms) and the earliest such time; all freed. */
bool tether_bw_upload_request(struct tether_node *n, const tether_link_t *link,
                              const tether_coap_msg_t *req, const char *host, tether_coap_msg_t *up,
                              uint8_t rtag[8], bw_upload_t **upload, tether_time_t now);
void tether_bw_upload_detach(struct relay_req *r);
void tether_bw_uploads_tick(struct tether_node *n, tether_time_t now);
tether_time_t tether_bw_uploads_deadline(const struct tether_node *n);
void tether_bw_uploads_free(struct tether_node *n);

/* Transfer deadlines and idle uploads/representations due at `now`. */
void tether_bw_tick(struct tether_node *n, tether_time_t now);
tether_time_t tether_bw_next_deadline(const struct tether_node *n);

#endif
