/* stats.c: summing counters, the room registry, JSON and Prometheus text. */
#include "stats.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"
#include "json.h"
#include "room/registry.h"

struct totals {
    uint64_t connections, received, published, delivered, dropped, slow, timeouts, protocol;
    uint64_t too_large, reads_paused, paused_now, read_only, tokens_expired;
};

static struct totals sum(const struct stats_view *v)
{
    struct totals t = {0};
    for (unsigned i = 0; i < v->nworkers; i++) {
        const struct worker_counters *w = &v->workers[i];
        t.connections += atomic_load_explicit(&w->connections, memory_order_relaxed);
        t.received += atomic_load_explicit(&w->received, memory_order_relaxed);
        t.published += atomic_load_explicit(&w->published, memory_order_relaxed);
        t.delivered += atomic_load_explicit(&w->delivered, memory_order_relaxed);
        t.dropped += atomic_load_explicit(&w->dropped, memory_order_relaxed);
        t.slow += atomic_load_explicit(&w->slow_consumers_closed, memory_order_relaxed);
        t.timeouts += atomic_load_explicit(&w->heartbeat_timeouts, memory_order_relaxed);
        t.protocol += atomic_load_explicit(&w->protocol_errors, memory_order_relaxed);
        t.too_large += atomic_load_explicit(&w->too_large, memory_order_relaxed);
        t.reads_paused += atomic_load_explicit(&w->reads_paused, memory_order_relaxed);
        t.paused_now += atomic_load_explicit(&w->paused_now, memory_order_relaxed);
        t.read_only += atomic_load_explicit(&w->read_only, memory_order_relaxed);
        t.tokens_expired += atomic_load_explicit(&w->tokens_expired, memory_order_relaxed);
    }
    return t;
}

static uint64_t load(const atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

char *stats_json(const struct stats_view *v)
{
    struct totals t = sum(v);
    const struct registry_top *top = v->rooms_top;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "pod_id", v->pod_id);
    cJSON_AddNumberToObject(o, "uptime_seconds", (double)(long)(v->uptime_seconds * 10) / 10);

    cJSON *c = cJSON_AddObjectToObject(o, "connections");
    cJSON_AddNumberToObject(c, "current", (double)t.connections);
    cJSON_AddNumberToObject(c, "total", (double)load(&v->acceptor->connections_total));
    cJSON_AddNumberToObject(c, "rejected", (double)load(&v->acceptor->rejected));
    cJSON *why = cJSON_AddObjectToObject(c, "rejected_by_reason");
    cJSON_AddNumberToObject(why, "shutting_down", (double)load(&v->acceptor->rejected_shutdown));
    cJSON_AddNumberToObject(why, "max_connections", (double)load(&v->acceptor->rejected_max));
    cJSON_AddNumberToObject(why, "per_ip", (double)load(&v->acceptor->rejected_per_ip));

    cJSON *r = cJSON_AddObjectToObject(o, "rooms");
    cJSON_AddNumberToObject(r, "count", (double)top->rooms);
    /* Room names tell strangers what is being talked about: with auth on,
     * only a request with a valid token sees them. */
    cJSON *members = cJSON_AddObjectToObject(r, "members");
    for (size_t i = 0; v->room_names && i < top->n; i++)
        cJSON_AddNumberToObject(members, top->top[i].name, (double)top->top[i].members);
    if (!v->room_names)
        cJSON_AddBoolToObject(r, "names_hidden", true);

    cJSON *m = cJSON_AddObjectToObject(o, "messages");
    cJSON_AddNumberToObject(m, "received", (double)t.received);
    cJSON_AddNumberToObject(m, "published", (double)t.published);
    cJSON_AddNumberToObject(m, "delivered", (double)t.delivered);
    cJSON_AddNumberToObject(m, "dropped", (double)t.dropped);
    cJSON_AddNumberToObject(m, "too_large", (double)t.too_large);
    cJSON_AddNumberToObject(m, "read_only", (double)t.read_only);
    cJSON_AddNumberToObject(o, "slow_consumers_closed", (double)t.slow);
    cJSON_AddNumberToObject(o, "heartbeat_timeouts", (double)t.timeouts);
    cJSON_AddNumberToObject(o, "protocol_errors", (double)t.protocol);
    cJSON_AddNumberToObject(o, "tokens_expired", (double)t.tokens_expired);
    cJSON *bp = cJSON_AddObjectToObject(o, "backpressure");
    cJSON_AddNumberToObject(bp, "reads_paused", (double)t.reads_paused);
    cJSON_AddNumberToObject(bp, "paused_now", (double)t.paused_now);

    cJSON *b = cJSON_AddObjectToObject(o, "broker");
    cJSON_AddStringToObject(b, "mode", v->broker.mode);
    cJSON_AddBoolToObject(b, "cluster", v->broker.cluster);
    cJSON_AddBoolToObject(b, "connected", v->broker.connected);
    cJSON_AddNumberToObject(b, "reconnects", (double)v->broker.reconnects);
    cJSON_AddNumberToObject(b, "outbox", (double)v->broker.outbox);
    cJSON_AddNumberToObject(b, "outbox_dropped", (double)v->broker.outbox_dropped);
    cJSON_AddNumberToObject(b, "foreign_dropped", (double)v->broker.foreign_dropped);
    cJSON_AddNumberToObject(b, "oversize_dropped", (double)v->broker.oversize_dropped);
    cJSON_AddNumberToObject(b, "overload_dropped", (double)v->broker.overload_dropped);
    cJSON_AddNumberToObject(b, "mismatch_dropped", (double)v->broker.mismatch_dropped);
    cJSON_AddNumberToObject(b, "forged_pod", (double)v->broker.forged_pod);
    cJSON_AddNumberToObject(b, "duplicates", (double)v->broker.duplicates);
    cJSON_AddNumberToObject(b, "seq_restarts", (double)v->broker.seq_restarts);
    cJSON_AddNumberToObject(b, "untracked", (double)v->broker.untracked);
    cJSON_AddNumberToObject(b, "refused", (double)v->broker.refused);
    cJSON_AddNumberToObject(b, "rooms_refused", (double)v->broker.rooms_refused);
    cJSON_AddNumberToObject(b, "publish_refused", (double)v->broker.publish_refused);
    cJSON_AddNumberToObject(b, "failover_holds", (double)v->broker.failover_holds);
    cJSON_AddNumberToObject(b, "lost", (double)v->broker.lost);
    cJSON *by = cJSON_AddObjectToObject(b, "lost_by_origin");
    for (unsigned i = 0; i < v->broker.n_origins; i++)
        cJSON_AddNumberToObject(by, v->broker.origins[i].pod,
                                (double)load(&v->broker.origins[i].lost));
    cJSON_AddNumberToObject(b, "received", (double)v->broker.received);
    cJSON_AddNumberToObject(b, "taken", (double)v->broker.taken);
    cJSON_AddNumberToObject(b, "rooms_subscribed", (double)v->broker.rooms_subscribed);
    cJSON_AddNumberToObject(b, "subscribes", (double)v->broker.subscribes);
    cJSON_AddNumberToObject(b, "unsubscribes", (double)v->broker.unsubscribes);

    cJSON *auth = cJSON_AddObjectToObject(o, "auth");
    cJSON_AddNumberToObject(auth, "public_keys", (double)v->keys);
    cJSON_AddNumberToObject(auth, "key_reloads", (double)v->key_reloads);
    cJSON_AddNumberToObject(auth, "key_reload_failures", (double)v->key_reload_failures);

    cJSON *http = cJSON_AddObjectToObject(o, "http");
    cJSON_AddNumberToObject(http, "requests", (double)load(&v->acceptor->http_requests));
    cJSON_AddNumberToObject(http, "bad_requests", (double)load(&v->acceptor->bad_requests));
    cJSON_AddNumberToObject(http, "pending_heads", (double)load(&v->acceptor->pending_heads));
    cJSON_AddNumberToObject(http, "heads_evicted", (double)load(&v->acceptor->heads_evicted));
    cJSON_AddNumberToObject(http, "accept_pauses", (double)load(&v->acceptor->accept_pauses));

    cJSON *ws = cJSON_AddArrayToObject(o, "workers");
    for (unsigned i = 0; i < v->nworkers; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddNumberToObject(w, "id", i);
        cJSON_AddNumberToObject(w, "connections", (double)load(&v->workers[i].connections));
        if (v->fanout)
            cJSON_AddNumberToObject(w, "inbox_work", (double)fanout_lane_work(v->fanout, i));
        cJSON_AddItemToArray(ws, w);
    }
    cJSON_AddBoolToObject(o, "shutting_down", v->shutting_down);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static void metric(struct json_out *o, const char *name, const char *type, const char *help,
                   double value)
{
    char line[512];
    snprintf(line, sizeof(line), "# HELP chat_%s %s\n# TYPE chat_%s %s\nchat_%s %.17g\n", name,
             help, name, type, name, value);
    json_out_lit(o, line);
}

char *stats_metrics(const struct stats_view *v)
{
    struct totals t = sum(v);
    size_t nrooms = registry_rooms(v->rooms);
    struct json_out o = {0};
    metric(&o, "uptime_seconds", "gauge", "Seconds since the server started.", v->uptime_seconds);
    metric(&o, "connections_current", "gauge", "Open WebSocket connections.",
           (double)t.connections);
    metric(&o, "connections_total", "counter", "WebSocket upgrades accepted.",
           (double)load(&v->acceptor->connections_total));
    metric(&o, "connections_rejected_total", "counter", "Upgrades refused with 503.",
           (double)load(&v->acceptor->rejected));
    json_out_lit(&o, "# HELP chat_connections_rejected_by_reason_total Upgrades refused, by reason.\n"
                     "# TYPE chat_connections_rejected_by_reason_total counter\n");
    const char *reasons[] = {"shutting_down", "max_connections", "per_ip"};
    const atomic_uint_fast64_t *counts[] = {
        &v->acceptor->rejected_shutdown, &v->acceptor->rejected_max, &v->acceptor->rejected_per_ip};
    for (size_t i = 0; i < 3; i++) {
        char line[128];
        snprintf(line, sizeof(line), "chat_connections_rejected_by_reason_total{reason=\"%s\"} %llu\n",
                 reasons[i], (unsigned long long)load(counts[i]));
        json_out_lit(&o, line);
    }
    metric(&o, "rooms", "gauge", "Rooms with at least one member.", (double)nrooms);
    metric(&o, "messages_received_total", "counter", "Messages received from clients.",
           (double)t.received);
    metric(&o, "messages_published_total", "counter", "Messages handed to the broker.",
           (double)t.published);
    metric(&o, "messages_delivered_total", "counter", "Messages queued to recipients.",
           (double)t.delivered);
    metric(&o, "messages_dropped_total", "counter", "Messages refused or lost.", (double)t.dropped);
    metric(&o, "slow_consumers_closed_total", "counter", "Connections closed for a full queue.",
           (double)t.slow);
    metric(&o, "heartbeat_timeouts_total", "counter", "Connections closed for silence.",
           (double)t.timeouts);
    metric(&o, "protocol_errors_total", "counter", "Connections closed for a protocol error.",
           (double)t.protocol);
    metric(&o, "messages_too_large_total", "counter",
           "Client messages refused: their envelope would pass MAX_MESSAGE_SIZE + 1 KiB.",
           (double)t.too_large);
    metric(&o, "messages_read_only_total", "counter",
           "Messages refused because the sender's token is read-only.", (double)t.read_only);
    metric(&o, "tokens_expired_total", "counter",
           "Connections closed with 1008 when their token expired.", (double)t.tokens_expired);
    metric(&o, "reads_paused_total", "counter",
           "Times a client connection stopped being read because a worker's inbox was full.",
           (double)t.reads_paused);
    metric(&o, "reads_paused", "gauge", "Client connections not being read right now.",
           (double)t.paused_now);
    uint64_t work = 0;
    for (unsigned i = 0; v->fanout && i < v->nworkers; i++)
        work += fanout_lane_work(v->fanout, i);
    metric(&o, "inbox_work_bytes", "gauge",
           "Work waiting in the workers' inboxes: bytes to write, summed over recipients.",
           (double)work);
    metric(&o, "broker_connected", "gauge", "1 when the broker is connected.",
           v->broker.connected ? 1 : 0);
    metric(&o, "broker_reconnects_total", "counter", "Broker reconnections.",
           (double)v->broker.reconnects);
    metric(&o, "broker_outbox", "gauge", "Messages waiting to be published to Redis.",
           (double)v->broker.outbox);
    metric(&o, "broker_outbox_dropped_total", "counter", "Messages dropped from a full outbox.",
           (double)v->broker.outbox_dropped);
    metric(&o, "broker_foreign_dropped_total", "counter",
           "Payloads from Redis dropped for not being JSON objects.",
           (double)v->broker.foreign_dropped);
    metric(&o, "broker_oversize_dropped_total", "counter",
           "Payloads from Redis dropped for being over MAX_MESSAGE_SIZE + 1 KiB.",
           (double)v->broker.oversize_dropped);
    metric(&o, "broker_overload_dropped_total", "counter",
           "Payloads from Redis dropped because the workers had no room for them.",
           (double)v->broker.overload_dropped);
    metric(&o, "broker_received_total", "counter", "Messages received from other pods.",
           (double)v->broker.received);
    metric(&o, "broker_taken_total", "counter",
           "Messages Redis sent this pod, its own echoes included.", (double)v->broker.taken);
    metric(&o, "broker_rooms_subscribed", "gauge",
           "Rooms whose Redis channel this pod is subscribed to.",
           (double)v->broker.rooms_subscribed);
    metric(&o, "broker_subscribes_total", "counter", "Room channels subscribed.",
           (double)v->broker.subscribes);
    metric(&o, "broker_unsubscribes_total", "counter",
           "Room channels unsubscribed after their linger.", (double)v->broker.unsubscribes);
    metric(&o, "broker_mismatch_dropped_total", "counter",
           "Payloads from Redis dropped because their room is not their channel's.",
           (double)v->broker.mismatch_dropped);
    metric(&o, "broker_forged_pod_total", "counter",
           "Payloads from Redis carrying this pod's id that it did not publish.",
           (double)v->broker.forged_pod);
    metric(&o, "broker_duplicates_total", "counter",
           "Repeated cross-pod messages dropped (resends after a broken batch).",
           (double)v->broker.duplicates);
    metric(&o, "broker_seq_restarts_total", "counter",
           "Cross-pod messages whose number was too far from the last: a new stream.",
           (double)v->broker.seq_restarts);
    metric(&o, "broker_untracked_total", "counter",
           "Numbered cross-pod messages of streams past the receive table's bound.",
           (double)v->broker.untracked);
    metric(&o, "broker_refused_total", "counter",
           "Room subscriptions Redis refused (an ACL without the channel).",
           (double)v->broker.refused);
    metric(&o, "broker_rooms_refused", "gauge",
           "Rooms whose channel Redis refuses now (retried with backoff).",
           (double)v->broker.rooms_refused);
    metric(&o, "broker_publish_refused_total", "counter",
           "Messages Redis refused to publish (NOPERM), dropped.",
           (double)v->broker.publish_refused);
    metric(&o, "broker_failover_holds_total", "counter",
           "Times messages of slots with a new master were held for the other pods.",
           (double)v->broker.failover_holds);
    metric(&o, "broker_lost_total", "counter",
           "Cross-pod messages known to be missing (sequence gaps).", (double)v->broker.lost);
    if (v->broker.n_origins) {
        json_out_lit(&o, "# HELP chat_broker_lost_by_origin_total Cross-pod messages known to be "
                         "missing, by the pod that published them.\n"
                         "# TYPE chat_broker_lost_by_origin_total counter\n");
        for (unsigned i = 0; i < v->broker.n_origins; i++) {
            char line[160];
            /* Pod ids are A-Z a-z 0-9 - _ . : (config.c): nothing to escape. */
            snprintf(line, sizeof(line), "chat_broker_lost_by_origin_total{origin=\"%s\"} %llu\n",
                     v->broker.origins[i].pod,
                     (unsigned long long)load(&v->broker.origins[i].lost));
            json_out_lit(&o, line);
        }
    }
    metric(&o, "auth_public_keys", "gauge", "Public keys in use for RS256 and ES256.",
           (double)v->keys);
    metric(&o, "auth_key_reloads_total", "counter", "Key files read again on SIGHUP.",
           (double)v->key_reloads);
    metric(&o, "auth_key_reload_failures_total", "counter",
           "SIGHUPs whose key file did not load (the old keys stayed).",
           (double)v->key_reload_failures);
    metric(&o, "http_requests_total", "counter", "Complete HTTP request heads.",
           (double)load(&v->acceptor->http_requests));
    metric(&o, "http_bad_requests_total", "counter", "Requests refused with a 4xx status.",
           (double)load(&v->acceptor->bad_requests));
    metric(&o, "http_pending_heads", "gauge", "Clients whose request head is being read.",
           (double)load(&v->acceptor->pending_heads));
    metric(&o, "http_heads_evicted_total", "counter",
           "Clients dropped before sending a whole head, to make room for others.",
           (double)load(&v->acceptor->heads_evicted));
    metric(&o, "http_accept_pauses_total", "counter",
           "Times accepting stopped (1024 heads pending, or out of descriptors).",
           (double)load(&v->acceptor->accept_pauses));
    json_out_raw(&o, "", 1); /* NUL-terminate */
    if (o.oom) {
        json_out_free(&o);
        return NULL;
    }
    return o.p;
}
