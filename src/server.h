/* server.h: the server's shared state and lifecycle.
 *
 * DESIGN: the main thread owns struct server. It builds everything, starts
 * the workers and the acceptor, waits for SIGTERM or SIGINT, and then runs
 * the graceful shutdown. Other threads read the configuration (immutable
 * after start) and use the atomics below; each atomic names its writer. */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "broker_seam.h"
#include "config.h"
#include "ipaddr.h"
#include "room/registry.h"
#include "stats.h"

struct fbuf;
struct worker;
struct acceptor;
struct fanout;

struct server {
    struct config cfg; /* immutable once threads start */
    struct worker **workers;
    unsigned nworkers;
    struct fanout *fanout; /* the workers' inboxes and their credit; built by main */
    struct worker_counters *counters; /* [nworkers]; entry i written by worker i */
    struct acceptor *acceptor;
    struct acceptor_counters acceptor_counters; /* written by the acceptor */
    struct broker broker;
    struct room_registry rooms; /* the pod's rooms and their subscriptions (room/registry.h) */
    struct ip_counts ip_counts; /* open connections per client address (ipaddr.h) */
    /* RS256/ES256 public keys: swapped whole by the main thread on SIGHUP,
     * read by the acceptor while it checks a token, both under keys_lock. */
    pthread_mutex_t keys_lock;
    struct ws_keyset *keys;
    atomic_uint_fast64_t key_reloads;         /* written by the main thread */
    atomic_uint_fast64_t key_reload_failures; /* written by the main thread */
    atomic_int shutting_down; /* written by the main thread */
    atomic_uint workers_ended; /* each worker adds 1 as its thread ends */
    uint64_t started_ms;      /* monotonic */
};

/* Runs the server until a signal stops it. Returns the exit status. */
int server_run(const struct config *cfg);

/* Fills a view of the current figures for stats_json and stats_metrics. */
void server_stats_view(struct server *srv, struct stats_view *v);

#endif
