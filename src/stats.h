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

/* Written by one worker only. Aligned so two workers never share a line. */
struct worker_counters {
    _Alignas(64) atomic_uint_fast64_t connections; /* current */
    atomic_uint_fast64_t received;                 /* messages from its clients */
    atomic_uint_fast64_t published;                /* messages handed to the broker */
    atomic_uint_fast64_t delivered;                /* (message, recipient) pairs queued */
    atomic_uint_fast64_t dropped;                  /* messages refused (errors, no memory) */
    atomic_uint_fast64_t slow_consumers_closed;
    atomic_uint_fast64_t heartbeat_timeouts;
    atomic_uint_fast64_t protocol_errors; /* connections closed 1002/1003/1007/1009 */
    atomic_uint_fast64_t closed;          /* handed-over connections that ended */
    atomic_uint_fast64_t too_large;       /* messages refused: envelope over the bound */
    atomic_uint_fast64_t reads_paused;    /* times a connection stopped being read */
    atomic_uint_fast64_t paused_now;      /* connections not read right now (gauge) */
    atomic_uint_fast64_t read_only;       /* messages refused: read-only token */
    atomic_uint_fast64_t tokens_expired;  /* connections closed 1008 at their token's exp */
};

/* Written by the acceptor thread only. */
struct acceptor_counters {
    atomic_uint_fast64_t connections_total; /* upgrades accepted */
    atomic_uint_fast64_t rejected;          /* upgrades refused with 503, for any reason: */
    atomic_uint_fast64_t rejected_shutdown; /*   shutting down */
    atomic_uint_fast64_t rejected_max;      /*   at MAX_CONNECTIONS */
    atomic_uint_fast64_t rejected_per_ip;   /*   at MAX_CONNECTIONS_PER_IP */
    atomic_uint_fast64_t http_requests;     /* every complete request head */
    atomic_uint_fast64_t bad_requests;      /* answered 4xx, or dropped half-sent */
    atomic_uint_fast64_t heads_evicted;     /* head-less clients past their grace dropped to
                                               make room */
    atomic_uint_fast64_t accept_pauses;     /* times accepting stopped (1024 heads pending, or
                                               out of descriptors): newcomers wait in the
                                               listen backlog */
    atomic_uint_fast64_t pending_heads;     /* clients whose head is being read (gauge) */
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
    uint64_t reconnects;
    uint64_t outbox;
    uint64_t outbox_dropped;
    uint64_t foreign_dropped;  /* payloads from Redis that were not JSON objects */
    uint64_t oversize_dropped; /* payloads from Redis over the outgoing bound */
    uint64_t overload_dropped; /* payloads from Redis the workers had no room for */
    uint64_t mismatch_dropped; /* payloads whose room is not their channel's */
    uint64_t forged_pod;       /* payloads with this pod's id it did not publish */
    uint64_t duplicates;       /* repeats of numbered messages, dropped */
    uint64_t seq_restarts;     /* numbers too far from the last: new streams (seq.h) */
    uint64_t untracked;        /* numbered payloads of streams past SEQ_RX_MAX, unnumbered */
    uint64_t refused;          /* room subscriptions Redis refused (an ACL), over time */
    uint64_t rooms_refused;    /* rooms whose channel Redis refuses now (gauge) */
    uint64_t publish_refused;  /* messages Redis refused to publish (NOPERM), dropped */
    uint64_t failover_holds;   /* times slots with a new master were held (failovers) */
    uint64_t lost;             /* numbered messages from other pods that never came */
    uint64_t received;         /* messages from other pods and backends, delivered */
    uint64_t taken;            /* every message Redis sent this pod, its own echoes included */
    uint64_t rooms_subscribed; /* rooms whose channel this pod is subscribed to (gauge) */
    uint64_t subscribes;       /* room channels subscribed, over time */
    uint64_t unsubscribes;     /* room channels unsubscribed after their linger */
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
    int shutting_down;
};

/* The JSON of interface.md. Returns a heap string the caller frees, or NULL. */
char *stats_json(const struct stats_view *v);

/* The Prometheus text exposition of the same figures. Heap string or NULL. */
char *stats_metrics(const struct stats_view *v);

#endif
