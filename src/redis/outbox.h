/* outbox.h: the bounded queue of messages waiting to be published to Redis.
 *
 * Holds fbuf references in order, each with the sequence number it was
 * first published with (0 until then), so that a message sent again after a
 * broken batch carries the same number and receivers can drop the repeat.
 * When it is full the oldest message is
 * dropped and counted, so an outage costs memory up to REDIS_OUTBOX messages
 * and no more. Queues may also share a bound in bytes (struct
 * outbox_budget): the owner of all of them enforces it with
 * outbox_drop_oldest. Not thread-safe by itself: the Redis broker guards
 * it with its lock. */
#ifndef CHAT_REDIS_OUTBOX_H
#define CHAT_REDIS_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

struct fbuf;

struct outbox_item {
    struct fbuf *msg; /* owns one reference */
    uint64_t seq;     /* 0: not published yet */
};

/* Bytes held by several queues together (frames' lengths), and their
 * bound. Owner: the thread that owns those queues. */
struct outbox_budget {
    uint64_t used, max;
};

struct outbox {
    struct outbox_item *items;
    uint32_t cap;  /* at most this many */
    uint32_t size; /* allocated now (grows by doubling up to cap) */
    uint32_t head, n;
    uint64_t bytes;   /* what its messages weigh */
    uint64_t dropped; /* messages dropped because the outbox was full */
    struct outbox_budget *budget; /* its bytes also count there; NULL: none */
};

/* Returns 0 or -1 when out of memory. */
int outbox_init(struct outbox *o, uint32_t cap);

/* Counts o's bytes in budget too (o is empty). */
void outbox_share_budget(struct outbox *o, struct outbox_budget *budget);

/* Drops the oldest message and counts it in o->dropped (o is not empty). */
void outbox_drop_oldest(struct outbox *o);

/* Drops every message left and frees the queue. */
void outbox_free(struct outbox *o);

/* Appends b, taking a reference; drops the oldest message when full. */
void outbox_push(struct outbox *o, struct fbuf *b);

/* Appends an item taken earlier (its reference and number with it); drops
 * the oldest message when full. */
void outbox_append(struct outbox *o, const struct outbox_item *it);

/* Moves up to max of the oldest messages into out; the caller owns their
 * references. Returns how many. */
uint32_t outbox_take(struct outbox *o, struct outbox_item *out, uint32_t max);

/* Moves the newest message to *it (the caller owns its reference).
 * Returns false when empty. */
bool outbox_take_newest(struct outbox *o, struct outbox_item *it);

/* Puts n messages taken earlier (and not published) back in front, in their
 * order, giving their references back. Messages that no longer fit are the
 * oldest of all and are dropped and counted. */
void outbox_requeue(struct outbox *o, const struct outbox_item *items, uint32_t n);

#endif
