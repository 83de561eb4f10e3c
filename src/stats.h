/* stats.h: the counters of /ws/stats and /metrics.
 *
 * DESIGN: every counter has one writer. Each worker owns a struct
 * worker_counters and bumps it with relaxed atomics; the acceptor owns
 * struct acceptor_counters. A stats request sums them without stopping
 * anyone. Room membership lives in the registry (room/registry.h). */
#ifndef CHAT_STATS_H
#define CHAT_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The counters, declared once each: X(field, JSON path, metric, kind, help).
 * A JSON path is where /ws/stats shows it (dots are nesting; NULL: not
 * shown); a metric is its /metrics name without the chat_ prefix (labels in
 * braces; NULL: not exported); kind is COUNTER, GAUGE or INFO (a string, boolean or list). stats.c builds the
 * JSON, the Prometheus text and `chat-api --counters` from these lists, and
 * docs/operations.md is checked against that output: a new counter is one
 * line here, then its increments. */

/* Each worker's, summed over the workers. */
#define WORKER_COUNTERS(X)                                                                         \
    X(connections, "connections.current", "connections_current", GAUGE,                           \
      "Open WebSocket connections.")                                                              \
    X(received, "messages.received", "messages_received_total", COUNTER,                          \
      "Messages received from clients.")                                                          \
    X(published, "messages.published", "messages_published_total", COUNTER,                       \
      "Messages handed to the broker.")                                                           \
    X(delivered, "messages.delivered", "messages_delivered_total", COUNTER,                       \
      "Messages queued to recipients: one per (message, recipient).")                             \
    X(dropped, "messages.dropped", "messages_dropped_total", COUNTER,                             \
      "Messages refused or lost (errors, no memory).")                                            \
    X(too_large, "messages.too_large", "messages_too_large_total", COUNTER,                       \
      "Client messages refused: their envelope would pass MAX_MESSAGE_SIZE + 1 KiB.")             \
    X(read_only, "messages.read_only", "messages_read_only_total", COUNTER,                       \
      "Messages refused because the sender's token is read-only.")                                \
    X(slow_consumers_closed, "slow_consumers_closed", "slow_consumers_closed_total", COUNTER,      \
      "Connections closed for a full queue.")                                                     \
    X(heartbeat_timeouts, "heartbeat_timeouts", "heartbeat_timeouts_total", COUNTER,              \
      "Connections closed for silence.")                                                          \
    X(protocol_errors, "protocol_errors", "protocol_errors_total", COUNTER,                       \
      "Connections closed for a protocol error (1002, 1003, 1007, 1009).")                        \
    X(tokens_expired, "tokens_expired", "tokens_expired_total", COUNTER,                          \
      "Connections closed with 1008 when their token expired.")                                   \
    X(reads_paused, "backpressure.reads_paused", "reads_paused_total", COUNTER,                   \
      "Times a client connection stopped being read because a worker's inbox was full.")          \
    X(paused_now, "backpressure.paused_now", "reads_paused", GAUGE,                               \
      "Client connections not being read right now.")                                             \
    X(closed, NULL, NULL, COUNTER,                                                                \
      "Handed-over connections that ended: the acceptor's count of open connections.")            \
    X(deflate_connections, "compression.connections", "compression_connections", GAUGE,          \
      "Open connections that agreed permessage-deflate.")                                         \
    X(deflate_messages, "compression.messages", "compression_messages_total", COUNTER,            \
      "Messages compressed (once per room stream, or alone), each counted once.")                 \
    X(deflate_bytes_in, "compression.bytes_in", "compression_bytes_in_total", COUNTER,            \
      "Payload bytes given to the compressor.")                                                   \
    X(deflate_bytes_out, "compression.bytes_out", "compression_bytes_out_total", COUNTER,         \
      "Compressed payload bytes it made of them.")                                                \
    X(deflate_saved, "compression.wire_bytes_saved", "compression_wire_bytes_saved_total",        \
      COUNTER, "Bytes not sent because recipients got compressed frames: plain minus "            \
      "compressed frame, summed over deliveries.")                                                \
    X(deflate_streams, "compression.streams", "compression_streams", GAUGE,                       \
      "Room streams alive (a deflate context each).")                                             \
    X(deflate_stream_refused, "compression.streams_refused",                                      \
      "compression_streams_refused_total", COUNTER,                                               \
      "Room messages that found no stream (COMPRESSION_STREAMS reached, or no memory) and went "  \
      "out compressed alone.")                                                                    \
    X(deflate_resets, "compression.resets_for_joiners", "compression_resets_for_joiners_total",  \
      COUNTER, "Room streams restarted so that members who joined mid-stream get its frames.")    \
    X(deflate_synced, "compression.members_synced", "compression_members_synced_total", COUNTER, \
      "Members brought into step with their room's stream at a restart.")                         \
    X(inflate_too_big, "compression.inflate_refused.too_big",                                     \
      "compression_inflate_refused_total{reason=\"too_big\"}", COUNTER,                         \
      "Compressed client messages closed with 1009: inflated past MAX_MESSAGE_SIZE.")             \
    X(inflate_bad, "compression.inflate_refused.bad_data",                                        \
      "compression_inflate_refused_total{reason=\"bad_data\"}", COUNTER,                        \
      "Compressed client messages closed with 1007: not valid DEFLATE data, or not UTF-8 text.")

/* The acceptor's. */
#define ACCEPTOR_COUNTERS(X)                                                                       \
    X(connections_total, "connections.total", "connections_total", COUNTER,                        \
      "WebSocket upgrades accepted.")                                                             \
    X(rejected, "connections.rejected", "connections_rejected_total", COUNTER,                     \
      "Upgrades refused with 503, for any reason.")                                               \
    X(rejected_shutdown, "connections.rejected_by_reason.shutting_down",                          \
      "connections_rejected_by_reason_total{reason=\"shutting_down\"}", COUNTER,                   \
      "Upgrades refused with 503, by reason.")                                                    \
    X(rejected_max, "connections.rejected_by_reason.max_connections",                             \
      "connections_rejected_by_reason_total{reason=\"max_connections\"}", COUNTER,                 \
      "Upgrades refused with 503, by reason.")                                                    \
    X(rejected_per_ip, "connections.rejected_by_reason.per_ip",                                   \
      "connections_rejected_by_reason_total{reason=\"per_ip\"}", COUNTER,                          \
      "Upgrades refused with 503, by reason.")                                                    \
    X(deflate_agreed, "compression.negotiated", "compression_negotiated_total", COUNTER,         \
      "Upgrades that agreed permessage-deflate.")                                                 \
    X(deflate_declined, "compression.offers_declined", "compression_offers_declined_total",      \
      COUNTER, "permessage-deflate offers declined: malformed, or parameters we cannot honour.")  \
    X(http_requests, "http.requests", "http_requests_total", COUNTER,                             \
      "Complete HTTP request heads.")                                                             \
    X(bad_requests, "http.bad_requests", "http_bad_requests_total", COUNTER,                      \
      "Requests answered 4xx, or dropped half-sent.")                                             \
    X(pending_heads, "http.pending_heads", "http_pending_heads", GAUGE,                           \
      "Clients whose request head is being read.")                                                \
    X(heads_evicted, "http.heads_evicted", "http_heads_evicted_total", COUNTER,                   \
      "Clients dropped before sending a whole head, to make room for others.")                    \
    X(accept_pauses, "http.accept_pauses", "http_accept_pauses_total", COUNTER,                   \
      "Times accepting stopped (1024 heads pending, or out of descriptors): newcomers wait in "  \
      "the listen backlog.")

/* The broker's (struct broker_status; the Redis broker keeps them as atomics,
 * redis/broker_internal.h says which of its threads writes which). */
#define BROKER_COUNTERS(X)                                                                         \
    X(reconnects, "broker.reconnects", "broker_reconnects_total", COUNTER,                         \
      "Broker reconnections.")                                                                    \
    X(outbox, "broker.outbox", "broker_outbox", GAUGE,                                            \
      "Messages waiting to be published to Redis.")                                               \
    X(outbox_dropped, "broker.outbox_dropped", "broker_outbox_dropped_total", COUNTER,             \
      "Messages dropped from a full outbox.")                                                     \
    X(foreign_dropped, "broker.foreign_dropped", "broker_foreign_dropped_total", COUNTER,          \
      "Payloads from Redis dropped for not being JSON objects.")                                  \
    X(oversize_dropped, "broker.oversize_dropped", "broker_oversize_dropped_total", COUNTER,       \
      "Payloads from Redis dropped for being over MAX_MESSAGE_SIZE + 1 KiB.")                     \
    X(overload_dropped, "broker.overload_dropped", "broker_overload_dropped_total", COUNTER,       \
      "Payloads from Redis dropped because the workers had no room for them.")                    \
    X(mismatch_dropped, "broker.mismatch_dropped", "broker_mismatch_dropped_total", COUNTER,       \
      "Payloads from Redis dropped because their room is not their channel's.")                   \
    X(forged_pod, "broker.forged_pod", "broker_forged_pod_total", COUNTER,                        \
      "Payloads from Redis carrying this pod's id that it did not publish.")                      \
    X(duplicates, "broker.duplicates", "broker_duplicates_total", COUNTER,                        \
      "Repeated cross-pod messages dropped (resends after a broken batch).")                      \
    X(seq_restarts, "broker.seq_restarts", "broker_seq_restarts_total", COUNTER,                  \
      "Cross-pod messages whose number was too far from the last: a new stream.")                 \
    X(untracked, "broker.untracked", "broker_untracked_total", COUNTER,                           \
      "Numbered cross-pod messages of streams past the receive table's bound.")                   \
    X(refused, "broker.refused", "broker_refused_total", COUNTER,                                 \
      "Room subscriptions Redis refused (an ACL without the channel).")                           \
    X(rooms_refused, "broker.rooms_refused", "broker_rooms_refused", GAUGE,                       \
      "Rooms whose channel Redis refuses now (retried with backoff).")                            \
    X(publish_refused, "broker.publish_refused", "broker_publish_refused_total", COUNTER,          \
      "Messages Redis refused to publish (NOPERM), dropped.")                                     \
    X(failover_holds, "broker.failover_holds", "broker_failover_holds_total", COUNTER,             \
      "Times messages of slots with a new master were held for the other pods.")                  \
    X(lost, "broker.lost", "broker_lost_total", COUNTER,                                          \
      "Cross-pod messages known to be missing (sequence gaps).")                                  \
    X(received, "broker.received", "broker_received_total", COUNTER,                              \
      "Messages from other pods and backends, delivered.")                                        \
    X(taken, "broker.taken", "broker_taken_total", COUNTER,                                       \
      "Messages Redis sent this pod, its own echoes included.")                                   \
    X(rooms_subscribed, "broker.rooms_subscribed", "broker_rooms_subscribed", GAUGE,              \
      "Rooms whose Redis channel this pod is subscribed to.")                                     \
    X(subscribes, "broker.subscribes", "broker_subscribes_total", COUNTER,                        \
      "Room channels subscribed.")                                                                \
    X(unsubscribes, "broker.unsubscribes", "broker_unsubscribes_total", COUNTER,                  \
      "Room channels unsubscribed after their linger.")

/* Figures of the whole server (struct stats_view), worked out when asked. */
#define VIEW_FIGURES(X)                                                                            \
    X(rooms, NULL, "rooms", GAUGE, "Rooms with at least one member.")                              \
    X(inbox_work, NULL, "inbox_work_bytes", GAUGE,                                                 \
      "Work waiting in the workers' inboxes: bytes to write, summed over recipients.")            \
    X(inbox_budget, NULL, "inbox_budget_bytes", GAUGE,                                             \
      "How much work the workers' inboxes may hold, summed: what each writes in 100 ms.")         \
    X(connected, NULL, "broker_connected", GAUGE, "1 when the broker is connected.")               \
    X(keys, "auth.public_keys", "auth_public_keys", GAUGE,                                         \
      "Public keys in use for RS256 and ES256.")                                                  \
    X(key_reloads, "auth.key_reloads", "auth_key_reloads_total", COUNTER,                          \
      "Key files read again on SIGHUP.")                                                          \
    X(key_reload_failures, "auth.key_reload_failures", "auth_key_reload_failures_total", COUNTER, \
      "SIGHUPs whose key file did not load (the old keys stayed).")

/* Fields written by hand in stats.c (strings, booleans, per-pod and
 * per-worker lists), listed for the docs with the same columns. */
#define HAND_FIGURES(X)                                                                            \
    X(pod_id, "pod_id", NULL, INFO, "This pod's POD_ID.")                                        \
    X(uptime, "uptime_seconds", "uptime_seconds", GAUGE, "Seconds since the server started.")      \
    X(room_count, "rooms.count", NULL, GAUGE,                                                     \
      "Rooms with at least one member, as of rooms.members (at most about a second old).")         \
    X(members, "rooms.members", NULL, INFO,                                                      \
      "Members of the largest rooms, by name (with auth on, only for a request with a token).")    \
    X(names_hidden, "rooms.names_hidden", NULL, INFO,                                            \
      "true when room names were left out (auth on, no valid token).")                            \
    X(mode, "broker.mode", NULL, INFO, "standalone or redis.")                                   \
    X(cluster, "broker.cluster", NULL, INFO, "true with REDIS_CLUSTER=true.")                    \
    X(broker_connected, "broker.connected", NULL, INFO, "true when the broker is connected.")     \
    X(lost_by_origin, "broker.lost_by_origin", "broker_lost_by_origin_total{origin=\"...\"}",      \
      COUNTER, "Cross-pod messages known to be missing, by the pod that published them.")         \
    X(workers, "workers", NULL, INFO,                                                            \
      "Per worker: id, connections, inbox_work (bytes of work waiting in its inbox) and "         \
      "inbox_budget (how much may wait: what it writes in 100 ms, as measured).")                 \
    X(shutting_down, "shutting_down", NULL, INFO, "true once a graceful shutdown began.")

#define STATS_U64_FIELD(f, ...) uint64_t f;
#define STATS_ATOMIC_FIELD(f, ...) atomic_uint_fast64_t f;

/* Written by one worker only (relaxed atomics). Aligned so two workers
 * never share a line. */
struct worker_counters {
    WORKER_COUNTERS(STATS_ATOMIC_FIELD)
} __attribute__((aligned(64)));

/* Written by the acceptor thread only. */
struct acceptor_counters {
    ACCEPTOR_COUNTERS(STATS_ATOMIC_FIELD)
};

struct room_registry;
struct registry_top;

/* Messages from one origin pod known to be missing. The pod name is written
 * once by the broker's subscriber before the slot is published. */
struct broker_origin_lost {
    char pod[64];
    atomic_uint_fast64_t lost;
};

/* What the broker reports about itself. */
struct broker_status {
    const char *mode; /* "standalone" or "redis" */
    bool cluster;     /* REDIS_CLUSTER: Redis is a cluster, rooms use sharded pub/sub */
    int connected;
    BROKER_COUNTERS(STATS_U64_FIELD)
    const struct broker_origin_lost *origins; /* lost, per origin pod */
    unsigned n_origins;
};

struct stats_view {
    const char *pod_id;
    double uptime_seconds;
    const struct worker_counters *workers;
    unsigned nworkers;
    const struct acceptor_counters *acceptor;
    struct room_registry *rooms;
    const struct registry_top *rooms_top; /* stats_json: the largest rooms (at most ~1 s old) */
    bool room_names; /* stats_json: name the rooms (false: counts only, auth without a token) */
    struct broker_status broker;
    struct fanout *fanout; /* for the work waiting in each worker's inbox */
    uint64_t keys;         /* public keys in use (JWT_PUBLIC_KEYS_FILE) */
    uint64_t key_reloads, key_reload_failures; /* on SIGHUP */
    /* rooms, inbox_work, inbox_budget and connected (VIEW_FIGURES) are worked out by stats.c */
    int shutting_down;
};

/* stats_json and stats_metrics run on the thread that asks (the acceptor,
 * per request): they only read the counters, with relaxed loads, and take
 * the registry's lock for the room count. */

/* The JSON of /ws/stats (docs/operations.md). Returns a heap string the caller frees, or NULL. */
char *stats_json(const struct stats_view *v);

/* The Prometheus text exposition of the same figures. Heap string or NULL. */
char *stats_metrics(const struct stats_view *v);

/* Writes every figure as a Markdown table (JSON field, metric, kind,
 * meaning), for `chat-api --counters`. */
void stats_print_table(FILE *out);

#endif
