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


struct server;

/* Creates worker id (not started). Returns NULL on failure. Main thread. */
struct worker *worker_create(struct server *srv, unsigned id);

/* Starts its thread. Returns 0 or -errno. Main thread. */
int worker_start(struct worker *w);

/* Waits for the thread to end: once the server is shutting down it ends
 * when its connections are closed or SHUTDOWN_TIMEOUT has passed. Main
 * thread. */
void worker_join(struct worker *w);

/* Frees a worker whose thread has ended (or never started). */
void worker_destroy(struct worker *w);

#endif
