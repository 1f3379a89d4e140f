/* tetherd's /stats and /metrics tree (SPEC S11): the counters of the
 * pipeline's parts (node, DTLS, cluster channel), the limits they run
 * under (S10), the transmit batches and the latency histograms. */
#include "stats.h"
#include "admin.h"
#include "tether/hist.h"

int tetherd_stats_fill(json_t *st, const tetherd_stats_src_t *d)
{
    const tether_node_stats_t *ns = tether_node_stats(tether_pipeline_node(d->pipe));
    static const tether_dtls_stats_t no_dtls;
    const tether_dtls_srv_t *dtls = tether_pipeline_dtls(d->pipe);
    const tether_dtls_stats_t *ds = dtls ? tether_dtls_stats(dtls) : &no_dtls;
    const tether_rrc_stats_t *rs = tether_pipeline_rrc_stats(d->pipe);
    const struct {
        const char *path;
        uint64_t v;
    } rows[] = {
        {"devices.registered", ns->devices_registered},
        {"devices.registrations", ns->registrations},
        {"proxy.requests", ns->requests_relayed},
        {"proxy.responses_relayed", ns->relay_ok},
        {"proxy.timeouts", ns->relay_timeouts},
        {"proxy.mid_exhausted", ns->relay_mid_exhausted},
        {"proxy.device_gone", ns->relay_gone},
        {"proxy.denied", ns->relay_denied},
        {"proxy.unknown_device", ns->relay_unknown},
        {"proxy.requests_local", ns->requests_local},
        {"proxy.cache_hits", ns->cache_hits},
        {"proxy.cache_misses", ns->cache_misses},
        {"proxy.cache_revalidated", ns->cache_revalidated},
        {"proxy.cache_invalidations", ns->cache_invalidations},
        {"proxy.cache_evictions", ns->cache_evictions},
        {"proxy.cache_entries", ns->cache_entries},
        {"proxy.cache_bytes", ns->cache_bytes},
        {"proxy.block_transfers", ns->block_transfers},
        {"proxy.block_blocks_fetched", ns->block_blocks_fetched},
        {"proxy.block_restarts", ns->block_restarts},
        {"proxy.block_failed", ns->block_failed},
        {"proxy.block_served", ns->block_served},
        {"proxy.block_transfers_active", ns->block_transfers_active},
        {"proxy.uploads_completed", ns->uploads_completed},
        {"proxy.uploads_rejected", ns->uploads_rejected},
        {"proxy.uploads_abandoned", ns->uploads_abandoned},
        {"proxy.upload_blocks", ns->upload_blocks},
        {"proxy.uploads_active", ns->uploads_active},
        {"proxy.bound_pending", ns->bound_pending},
        {"proxy.bound_observers", ns->bound_observers},
        {"proxy.bound_groups", ns->bound_groups},
        {"proxy.bound_observations", ns->bound_observations},
        {"proxy.bound_nstart", ns->bound_nstart},
        {"proxy.nstart_held", ns->nstart_held},
        {"proxy.bound_dedup", ns->bound_dedup},
        {"groups.defined", ns->groups_defined},
        {"groups.requests", ns->group_requests},
        {"groups.requests_active", ns->group_requests_active},
        {"groups.members_sent", ns->group_members_sent},
        {"groups.responses", ns->group_responses},
        {"groups.members_unanswered", ns->group_members_unanswered},
        {"groups.rejected", ns->group_rejected},
        {"groups.from_cache", ns->group_from_cache},
        {"observe.device_observations", ns->observe_device_observations},
        {"observe.observers", ns->observe_observers},
        {"observe.notifications_sent", ns->observe_notifications_sent},
        {"observe.rejected", ns->observe_rejected},
        {"observe.stale_dropped", ns->observe_stale},
        {"cluster.xrelay.sent", ns->xrelay_sent},
        {"cluster.xrelay.received", ns->xrelay_received},
        {"cluster.xrelay.served", ns->xrelay_served},
        {"cluster.xrelay.duplicates", ns->xrelay_duplicates},
        {"cluster.xrelay.retransmissions", ns->xrelay_retransmissions},
        {"cluster.xrelay.node_down", ns->xrelay_node_down},
        {"cluster.xrelay.rehomed", ns->xrelay_rehomed},
        {"observe.adopted", ns->observe_adopted},
        {"queue.pending", ns->queue_pending},
        {"queue.queued_total", ns->queued},
        {"coap.rx_messages", ns->rx_datagrams},
        {"coap.rx_rejected", ns->rx_rejected},
        {"coap.duplicates", ns->duplicates},
        {"coap.retransmissions", ns->retransmissions},
        {"limits.max_devices", d->cfg->proxy_max_devices},
        {"limits.max_pending", d->cfg->proxy_max_pending},
        {"limits.queue_max", d->cfg->proxy_queue_max},
        {"limits.cache_bytes", d->cfg->proxy_cache_bytes},
        {"limits.max_observers", d->cfg->proxy_max_observers},
        {"limits.block_max_bytes", d->cfg->proxy_block_max_bytes},
        {"limits.block_max_transfers", d->cfg->proxy_block_max_transfers},
        {"limits.upload_max_bytes", d->cfg->proxy_upload_max_bytes},
        {"limits.uploads_per_device", d->cfg->proxy_uploads_per_device},
        {"limits.max_groups", d->cfg->proxy_max_groups},
        {"limits.group_max_members", d->cfg->proxy_group_max_members},
        {"limits.group_max_requests", d->cfg->proxy_group_max_requests},
        {"limits.max_observers_per_resource", d->cfg->proxy_max_observers_per_resource},
        {"limits.max_sessions", d->cfg->dtls_max_sessions},
        {"limits.max_handshakes", d->cfg->dtls_max_handshakes},
        {"sessions.active", ds->sessions_active},
        {"sessions.handshakes_full", ds->handshakes_full},
        {"sessions.handshakes_resumed", ds->handshakes_resumed},
        {"sessions.tickets_refused", ds->tickets_refused},
        {"sessions.handshakes_inflight", ds->handshakes_inflight},
        {"sessions.handshakes_failed", ds->handshakes_failed},
        {"sessions.hello_verify_sent", ds->hello_verify_sent},
        {"sessions.address_changes", ds->address_changes},
        {"sessions.unknown_cid_dropped", ds->unknown_cid_dropped},
        {"sessions.dropped_limit", ds->dropped_limit},
        {"sessions.closed", ds->sessions_closed},
        {"sessions.tx_dropped", ds->tx_dropped},
        {"sessions.dropped_rate", ds->dropped_rate},
        {"sessions.handshakes_x509", ds->handshakes_x509},
        {"sessions.x509_rejected", ds->x509_rejected},
        {"sessions.handshakes_unauthenticated", ds->handshakes_unauthenticated},
        {"sessions.hellos_refused", ds->hellos_refused},
        {"sessions.handshakes_stalled", ds->handshakes_stalled},
        {"sessions.handshakes_evicted", ds->handshakes_evicted},
        {"sessions.handshakes_prefix_limited", ds->handshakes_prefix_limited},
        {"sessions.hellos_over_budget", ds->hellos_over_budget},
        {"sessions.tx_unvalidated_dropped", ds->tx_unvalidated_dropped},
        {"sessions.rrc_probes_sent", rs->probes_sent},
        {"sessions.rrc_validated", rs->validated},
        {"sessions.rrc_gave_up", rs->gave_up},
        {"sessions.rrc_wrong_answers", rs->wrong_answers},
        {"sessions.revoked", ds->sessions_revoked},
        {"sessions.identity_capped", ds->sessions_identity_capped},
        {"sessions.records_empty", ds->records_empty},
        {"sessions.compact", ds->sessions_compact},
        {"sessions.records_rejected", ds->records_rejected},
        {"udp.tx_datagrams", d->tx->datagrams},
        {"udp.tx_calls", d->tx->calls},
        {"udp.tx_dropped", d->tx->dropped},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (tetherd_admin_stat_set(st, rows[i].path, (json_int_t)rows[i].v) < 0)
            return TETHER_ENOMEM;
    const struct {
        const char *path;
        uint64_t v;
    } lrows[] = {
        {"latency.batches", d->service->count},
        {"latency.service_p50_us", tether_hist_percentile(d->service, 50)},
        {"latency.service_p99_us", tether_hist_percentile(d->service, 99)},
        {"latency.service_p999_us", tether_hist_percentile(d->service, 99.9)},
        {"latency.service_max_us", d->service->count ? d->service->max : 0},
        {"latency.relayed", d->lat->relayed.count},
        {"latency.relayed_p50_us", tether_hist_percentile(&d->lat->relayed, 50)},
        {"latency.relayed_p99_us", tether_hist_percentile(&d->lat->relayed, 99)},
        {"latency.relayed_p999_us", tether_hist_percentile(&d->lat->relayed, 99.9)},
        {"latency.relayed_max_us", d->lat->relayed.count ? d->lat->relayed.max : 0},
        {"latency.relayed_unmatched", d->lat->unmatched},
    };
    for (size_t i = 0; i < sizeof lrows / sizeof lrows[0]; i++)
        if (tetherd_admin_stat_set(st, lrows[i].path, (json_int_t)lrows[i].v) < 0)
            return TETHER_ENOMEM;
    static const tether_channel_stats_t alone = {.nodes_configured = 1, .nodes_alive = 1};
    const tether_channel_t *ch = tether_pipeline_channel(d->pipe);
    const tether_channel_stats_t *cs = ch ? tether_channel_stats(ch) : &alone;
    const struct {
        const char *path;
        uint64_t v;
    } crows[] = {
        {"cluster.nodes_configured", cs->nodes_configured},
        {"cluster.nodes_alive", cs->nodes_alive},
        {"cluster.forwarded_records", cs->forwarded_records},
        {"cluster.forwarded_in", cs->forwarded_in},
        {"cluster.replies_out", cs->replies_out},
        {"cluster.replies_in", cs->replies_in},
        {"cluster.rejected", cs->rejected},
        {"cluster.replayed", cs->replayed},
        {"cluster.node_moves", cs->node_moves},
        {"cluster.unroutable", cs->unroutable},
    };
    for (size_t i = 0; i < sizeof crows / sizeof crows[0]; i++)
        if (tetherd_admin_stat_set(st, crows[i].path, (json_int_t)crows[i].v) < 0)
            return TETHER_ENOMEM;
    return 0;
}

bool tetherd_ready_fill(json_t *detail, size_t up, size_t want, const char *redis, bool draining)
{
    bool ok = up > 0 && up == want;
    json_object_set_new(detail, "listeners", json_integer((json_int_t)up));
    json_object_set_new(detail, "state", json_string(redis ? "redis" : "embedded"));
    json_object_set_new(detail, "redis", json_string(redis ? redis : "off"));
    if (draining)
        json_object_set_new(detail, "detail", json_string("draining"));
    else if (!ok)
        json_object_set_new(detail, "detail", json_string("listeners are not up"));
    return ok && !draining;
}
