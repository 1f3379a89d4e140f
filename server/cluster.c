/* tetherd's end of the internal channel (see cluster.h): the socket, the
 * configured nodes' addresses and the wall clock; the channel itself runs
 * inside the pipeline (tether/pipeline.h, tether/channel.h). */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "tether/log.h"
#include "tether/hostport.h"
#include "udp.h"

struct tetherd_cluster {
    uv_udp_t sock; /* first: on_closed frees the cluster from it */
};

uint64_t tetherd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Resolves HOST:PORT (a name is looked up once, at start). */
static int resolve(const char *hostport, tether_addr_t *out)
{
    char host[160], port[8];
    uint16_t p;
    if (tether_hostport_split(hostport, host, sizeof host, &p) < 0)
        return TETHER_EINVAL;
    snprintf(port, sizeof port, "%u", p);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return TETHER_ENOTFOUND;
    if (ai->ai_addrlen > sizeof out->ss) { /* not IPv4 or IPv6 */
        freeaddrinfo(ai);
        return TETHER_ENOTFOUND;
    }
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = (socklen_t)ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

void tetherd_cluster_conf(const tetherd_config_t *cfg, tether_channel_conf_t *cc)
{
    tether_channel_conf_defaults(cc);
    cc->self = (uint8_t)cfg->node_id;
    cc->key = (const uint8_t *)cfg->cluster_key;
    cc->key_len = strlen(cfg->cluster_key);
    cc->via_idle_ms = (tether_time_t)cfg->dtls_idle_timeout * 1000;
    cc->via_max = cfg->dtls_max_sessions ? cfg->dtls_max_sessions : 1;
    /* Three missed 1 s heartbeats, like the 3 s lease: failover waits for
     * both before it adopts a node's sessions (store/adopt.h). */
    cc->alive_ms = 3000;
    cc->bundle_max = cfg->cluster_bundle_bytes;
}

int tetherd_cluster_open(uv_loop_t *loop, const tetherd_config_t *cfg, tether_channel_t *ch,
                         uv_alloc_cb alloc, uv_udp_recv_cb recv, void *data,
                         tetherd_cluster_t **out, char *err, size_t errcap)
{
    int rc;
    tetherd_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return TETHER_ENOMEM;
    for (size_t i = 0; i < cfg->ncluster_nodes; i++) {
        uint8_t id = cfg->cluster_nodes[i].id;
        tether_addr_t a;
        if (id == cfg->node_id)
            continue;
        if ((rc = resolve(cfg->cluster_nodes[i].addr, &a)) < 0) {
            snprintf(err, errcap, "cluster: cannot resolve node %u at %s", id,
                     cfg->cluster_nodes[i].addr);
            goto fail;
        }
        if ((rc = tether_channel_add_node(ch, id, &a)) < 0 && rc != TETHER_EEXIST) {
            snprintf(err, errcap, "cluster: node %u: %s", id, tether_strerror(rc));
            goto fail;
        }
    }
    tether_addr_t bind_at;
    if ((rc = resolve(cfg->cluster_listen, &bind_at)) < 0) {
        snprintf(err, errcap, "cluster: cannot resolve listen address %s", cfg->cluster_listen);
        goto fail;
    }
    /* Read in batches like the listeners (recvmmsg): the records one
     * node forwards and the replies it gets back arrive in bursts, and
     * the output of a whole batch leaves bundled (cluster.h). */
    int urc = uv_udp_init_ex(loop, &c->sock, bind_at.ss.ss_family | UV_UDP_RECVMMSG);
    if (urc < 0) {
        snprintf(err, errcap, "cluster: cannot create socket: %s", uv_strerror(urc));
        free(c);
        return TETHER_EIO;
    }
    c->sock.data = data;
    urc = uv_udp_bind(&c->sock, (const struct sockaddr *)&bind_at.ss, 0);
    int rcv, snd; /* bursts of bundles: the listeners' buffer sizes */
    if (urc == 0)
        tetherd_udp_set_buffers(&c->sock, cfg->udp_recv_buffer, cfg->udp_send_buffer, &rcv, &snd);
    if (urc == 0)
        urc = uv_udp_recv_start(&c->sock, alloc, recv);
    if (urc < 0) {
        snprintf(err, errcap, "cluster: cannot listen on %s: %s", cfg->cluster_listen,
                 uv_strerror(urc));
        tetherd_cluster_close(c);
        return TETHER_EIO;
    }
    tether_log_kv(TETHER_LOG_INFO, "cluster", "internal channel up", "listen", cfg->cluster_listen,
                  NULL);
    *out = c;
    return 0;
fail:
    free(c);
    return rc < 0 ? rc : TETHER_EINVAL;
}

static void on_closed(uv_handle_t *h)
{
    free((tetherd_cluster_t *)(void *)h); /* sock is its first member */
}

void tetherd_cluster_close(tetherd_cluster_t *c)
{
    if (c)
        uv_close((uv_handle_t *)&c->sock, on_closed);
}

uv_udp_t *tetherd_cluster_sock(tetherd_cluster_t *c)
{
    return &c->sock;
}
