/* acceptor.h: the thread that owns the listening socket.
 *
 * DESIGN: the acceptor reads request heads without ever blocking (its own
 * epoll, an 8 KiB limit, a 10 s deadline per client), answers plain HTTP
 * itself, checks upgrades, writes the 101 answer and hands the socket to
 * the least-loaded worker's inbox. A slow or hostile client costs it one
 * small buffer and never holds anyone else up. */
#ifndef CHAT_ACCEPTOR_H
#define CHAT_ACCEPTOR_H

#include <pthread.h>
#include <stdatomic.h>

struct acceptor;
struct acceptor_counters;
struct broker;
struct config;
struct fanout;
struct ip_counts;
struct room_registry;
struct stats_view;
struct worker_counters;
struct ws_keyset;

/* The parts of the pod the acceptor uses, given at creation: server.c owns
 * them all and they outlive the acceptor. */
struct acceptor_env {
    const struct config *cfg;
    struct acceptor_counters *counters;     /* written by the acceptor only */
    const struct worker_counters *workers;  /* [nworkers]: their closed counts, read */
    unsigned nworkers;
    struct fanout *fanout;                  /* hands connections to the workers' lanes */
    struct ip_counts *ip_counts;            /* counts clients in (under its lock) */
    struct room_registry *rooms;            /* the largest rooms, for stats */
    struct broker *broker;                  /* status, for /readyz and stats */
    const atomic_int *shutting_down;        /* written by the main thread */
    /* The public keys: swapped whole by the main thread on SIGHUP, read
     * here while a token is checked, both under keys_lock. */
    pthread_mutex_t *keys_lock;
    struct ws_keyset *const *keys;
    /* Fills a view of the figures for /ws/stats and /metrics. */
    void (*stats_view)(void *arg, struct stats_view *v);
    void *stats_arg;
};

/* Binds and listens on BIND_ADDR:PORT. Returns NULL (after logging why)
 * when the address cannot be used. Main thread. */
struct acceptor *acceptor_create(const struct acceptor_env *env);

/* Starts the thread. Returns 0 or -errno. */
int acceptor_start(struct acceptor *a);

/* Stops the thread and waits for it; pending clients are dropped. */
void acceptor_stop(struct acceptor *a);

/* Frees the acceptor and closes the listening socket. */
void acceptor_destroy(struct acceptor *a);

#endif
