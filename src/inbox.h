/* inbox.h: a worker's multi-producer, single-consumer queue and its eventfd.
 *
 * DESIGN: producers (the acceptor, every worker, the subscriber) append under
 * a mutex held for a few instructions; the owning worker swaps the whole
 * batch out at once, so a batch of any size costs it one lock. The eventfd
 * is written only by the producer that finds the inbox not yet signalled,
 * so a burst of pushes wakes the worker once (libuv's uv_async_send idea).
 * The inbox itself does not bound anything: fanout.h admits what goes in. */
#ifndef CHAT_INBOX_H
#define CHAT_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum inbox_kind {
    INBOX_CONN,  /* ptr: struct conn_handoff *, a new connection to adopt */
    INBOX_FRAME, /* ptr: struct fbuf *, holding one reference, to deliver */
    INBOX_READY, /* ptr: a heap room name whose subscription Redis confirmed,
                  * or NULL: subscriber connection `gen` (and earlier ones)
                  * went away; the worker frees it */
};

struct inbox_item {
    enum inbox_kind kind;
    uint16_t bucket; /* INBOX_FRAME: the fanout bucket its cost was charged to */
    void *ptr;
    union {
        uint64_t cost; /* INBOX_FRAME: the credit it holds (fanout.h), given back once delivered */
        uint64_t gen;  /* INBOX_READY with ptr NULL: the subscriber connection that ended */
    };
};

/* Owned by its worker; pushed to by any thread. */
struct inbox {
    pthread_mutex_t lock;
    struct inbox_item *items; /* appended by producers under lock */
    size_t len, cap;
    struct inbox_item *batch; /* the consumer's last batch, swapped with items */
    size_t batch_cap;
    bool signalled; /* under lock: the eventfd was written since the last take */
    int efd;        /* readable while items wait, or after inbox_wake */
};

/* Returns 0 or -errno. */
int inbox_init(struct inbox *ib);

/* Frees the queue. Items still in it are the caller's to drain first. */
void inbox_destroy(struct inbox *ib);

/* Appends one item. Any thread. Returns 0, or -ENOMEM with nothing queued
 * (the caller still owns what ptr points to). */
int inbox_push(struct inbox *ib, struct inbox_item item);

/* Wakes the owning worker without queueing anything. Any thread. */
void inbox_wake(struct inbox *ib);

/* Takes every queued item. Only the owning worker calls it. The returned
 * array stays valid until the next inbox_take. */
size_t inbox_take(struct inbox *ib, struct inbox_item **items);

#endif
