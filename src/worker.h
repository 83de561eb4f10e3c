/* worker.h: an epoll worker thread and the connections it owns.
 *
 * DESIGN: a connection belongs to exactly one worker, which alone reads,
 * writes and frees it: socket, frame parser, send ring, heartbeat and room
 * membership. Other threads reach a worker only through its lane of the
 * fanout (fanout.h): the acceptor hands over new connections, and every
 * worker (and the Redis subscriber) posts broadcast frames, each holding
 * one fbuf reference and the credit it was admitted with. */
#ifndef CHAT_WORKER_H
#define CHAT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


#include <stdatomic.h>

struct broker;
struct config;
struct fanout;
struct ip_counts;
struct room_registry;
struct worker;
struct worker_counters;

/* The parts of the pod a worker uses, given at creation: server.c owns
 * them all and they outlive the workers. */
struct worker_env {
    const struct config *cfg;
    struct broker *broker;            /* publish (any worker) */
    struct fanout *fanout;            /* the lanes; worker id consumes lane id */
    struct room_registry *rooms;      /* join and leave (any worker, under its lock) */
    struct ip_counts *ip_counts;      /* counts out its connections (under its lock) */
    struct worker_counters *counters; /* [nworkers]; worker id writes entry id only */
    const atomic_int *shutting_down;  /* written by the main thread */
    atomic_uint *workers_ended;       /* each worker adds 1 as its thread ends */
};

/* Creates worker id (not started). Returns NULL on failure. Main thread. */
struct worker *worker_create(const struct worker_env *env, unsigned id);

/* Starts its thread. Returns 0 or -errno. Main thread. */
int worker_start(struct worker *w);

/* Waits for the thread to end: once the server is shutting down it ends
 * when its connections are closed or SHUTDOWN_TIMEOUT has passed. Main
 * thread. */
void worker_join(struct worker *w);

/* Frees a worker whose thread has ended (or never started). */
void worker_destroy(struct worker *w);

#endif
