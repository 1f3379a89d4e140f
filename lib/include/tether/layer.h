/* tether — the pipeline contract. UDP -> DTLS -> CoAP -> proxy: each layer
 * takes an input from the one below and says what happens next, instead of
 * calling the next layer itself (no nested callbacks). */
#ifndef TETHER_LAYER_H
#define TETHER_LAYER_H

typedef enum {
    TETHER_LAYER_CONTINUE = 0, /* hand the result to the layer above */
    TETHER_LAYER_STOP = 1,     /* done here: maybe a reply to send, nothing above */
    TETHER_LAYER_DEFER = 2,    /* parked (e.g. waiting for a device); resumes later */
} tether_layer_res_t;

#endif
