/* broker_internal.h: what the Redis engine's threads share (broker.c,
 * publisher.c, subscriber.c). Not for the rest of the server.
 *
 * DESIGN: one struct redis_broker per pod, built by the main thread. The
 * publisher thread and the subscriber thread each own their epoll, their
 * links (link.h) and their slot map (route.h); what they share is under
 * lock or atomic, each field says whose it is. Both modes (single Redis,
 * Sentinel, Redis Cluster) run the same two loops: a mode is only what the
 * slot map says and which commands a channel takes (PUBLISH/SUBSCRIBE, or
 * SPUBLISH/SSUBSCRIBE for a cluster's rooms). */
#ifndef CHAT_REDIS_BROKER_INTERNAL_H
#define CHAT_REDIS_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/outbox.h"
#include "stats.h"
#include "thread.h"

struct config;
struct fanout;
struct room_registry;
struct ssl_ctx_st;

/* At most this many nodes are linked (a cluster's masters, a Sentinel
 * setup's successive masters). */
#define REDIS_NODES_MAX 64
/* How often each broker thread frees the nodes that left the map. */
#define NODES_FORGET_MS 1000
/* Messages sent per pass of the publisher. */
#define REDIS_BATCH_MAX 512
/* How often the sequence tables forget quiet entries. */
#define REDIS_SEQ_SWEEP_MS 60000
/* Origin pods whose losses are counted one by one; more share one line. */
#define REDIS_LOST_ORIGINS_MAX 32

struct redis_broker {
    /* The narrow handles the broker uses, given at start (server.c owns
     * them and outlives the broker). */
    const struct config *cfg;
    struct room_registry *rooms; /* subscription states (subscriber), counts (status) */
    struct fanout *fanout;       /* to the workers (subscriber) */
    uint64_t epoch; /* random, drawn at start: tells restarts of one POD_ID apart (seq.h) */
    /* rediss://: the TLS settings, one context per thread (OpenSSL caches
     * what it learns of certificates inside a context, and two threads
     * handshaking on one raced there under ThreadSanitizer). Made at start;
     * each used by its thread only; NULL without TLS. */
    struct ssl_ctx_st *tls_pub, *tls_sub;

    /* Guards outbox, stopping, stop_deadline_ms and pub_asleep. */
    pthread_mutex_t lock;
    struct outbox outbox; /* filled by workers (publish), emptied by the publisher */
    bool stopping;
    uint64_t stop_deadline_ms; /* the publisher gives up on Redis then */
    bool pub_asleep;           /* the publisher waits in epoll: wake it through pub_efd */

    int stop_efd; /* written once by stop: wakes both threads */
    int pub_efd;  /* written by workers when the publisher sleeps: messages to send */
    int wake_efd; /* written by workers (through the registry): rooms to subscribe */
    struct thread pub_thread, sub_thread; /* started and joined by the main thread */

    /* Counts links that became ready after failing: a node is reachable
     * again. Either thread adds and wakes the other (pub_efd, wake_efd),
     * which then tries its own links that are down at once instead of
     * waiting out a backoff grown during the outage. */
    atomic_uint back_gen;
    atomic_int pub_connected;              /* written by the publisher */
    atomic_int sub_ready;                  /* written by the subscriber */
    /* The figures of struct broker_status (stats.h), as atomics. One writer
     * each: outbox (messages parked for nodes that are down), outbox_dropped,
     * publish_refused (NOPERM) and failover_holds by the publisher; the rest
     * by the subscriber (rooms_subscribed is read from the registry instead). */
    struct {
        BROKER_COUNTERS(STATS_ATOMIC_FIELD)
    } counters;
    /* Losses per origin pod, for /metrics: slots are claimed by the
     * subscriber (name first, then the count of slots, released). */
    struct broker_origin_lost origins[REDIS_LOST_ORIGINS_MAX];
    atomic_uint n_origins;
};

bool redis_broker_stopping(struct redis_broker *rb);

/* A link of the calling thread became ready after failing: bumps back_gen
 * and wakes the other thread (the publisher when the subscriber calls, and
 * the other way round). */
void redis_broker_node_back(struct redis_broker *rb, bool from_publisher);

/* Whether back_gen moved since *seen (updated): some node answered again,
 * so the caller's links that are down should be tried at once. */
bool redis_broker_back_news(struct redis_broker *rb, unsigned *seen);

/* The threads (publisher.c, subscriber.c). */
void *redis_pub_main(void *arg);
void *redis_sub_main(void *arg);

#endif
