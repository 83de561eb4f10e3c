/* pub_queue.h: one Redis node's queues in the publisher.
 *
 * DESIGN: two queues of numbered messages, both oldest first:
 *   - in flight: written to the node, awaiting its answers. Redis answers a
 *     pipeline in order, so each answer belongs to the oldest entry. This
 *     queue never drops: a dropped entry would pair every later answer with
 *     the wrong message. When it holds its bound (in messages, or in bytes:
 *     a node that stops answering must not hold more than that in flight),
 *     nothing more is written to the node; new messages park instead.
 *   - parked: waiting for the node (its link is down or connecting, a slot
 *     is held, or the in-flight bound is reached). It drops its oldest when
 *     full, counted in parked.dropped.
 * A failed link puts what it had in flight back in front of what is parked,
 * in order and with their numbers, so receivers drop what they already had.
 * No sockets, no threads, no clocks: the publisher says what happened.
 *
 * Owner: the publisher thread, one per node. */
#ifndef CHAT_REDIS_PUB_QUEUE_H
#define CHAT_REDIS_PUB_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "redis/outbox.h"

struct pub_queue {
    struct outbox inflight; /* sent, awaiting answers; never drops */
    struct outbox parked;   /* waiting for the node; drops the oldest */
    uint64_t progress_ms;   /* last answer, or when inflight became non-empty */
    uint64_t inflight_bytes_max; /* 0: bounded in messages only */
};

/* Both queues hold at most cap messages; at most inflight_bytes_max bytes
 * are in flight (0: no such bound; one message always may be). Returns 0
 * or -1 (out of memory). */
int pub_queue_init(struct pub_queue *q, uint32_t cap, uint64_t inflight_bytes_max);

/* Drops what both queues hold and frees them. */
void pub_queue_free(struct pub_queue *q);

/* Whether a new message may be written now instead of parked: nothing parked
 * waits before it and the in-flight bound has room. The link's readiness and
 * holds are the caller's to check. */
bool pub_queue_may_send(const struct pub_queue *q);

/* Whether the in-flight bound is reached. */
bool pub_queue_full(const struct pub_queue *q);

/* Records it (its reference and number) as written. Aborts when the
 * in-flight bound is reached: callers check pub_queue_full first. */
void pub_queue_sent(struct pub_queue *q, const struct outbox_item *it, uint64_t now);

/* Parks it behind what waits (dropping and counting the oldest when full). */
void pub_queue_park(struct pub_queue *q, const struct outbox_item *it);

/* An answer came: moves the oldest in-flight item to *it (the caller owns
 * its reference). Returns false when nothing was in flight: the answers no
 * longer pair with what was sent, and the link must go. */
bool pub_queue_answered(struct pub_queue *q, struct outbox_item *it, uint64_t now);

/* Puts an item just taken by pub_queue_answered back at the front of the
 * in-flight queue (the node said "not now"; the link is about to fail). */
void pub_queue_unanswer(struct pub_queue *q, const struct outbox_item *it);

/* The link failed: what was in flight goes back in front of what is parked,
 * in order. Where both no longer fit, the oldest are dropped and counted. */
void pub_queue_failed(struct pub_queue *q);

/* What pub_queue_drain's callback did with one parked item. */
enum pub_queue_verdict {
    PUB_QUEUE_KEEP, /* not now (its slot is held): it stays parked, in order */
    PUB_QUEUE_SENT, /* written: it is in flight */
    PUB_QUEUE_FAIL, /* written, and the link failed: in flight, drain stops */
};

/* Offers the parked items, oldest first, to send(ctx, item) until the
 * in-flight bound is reached or the link fails; what is not sent stays
 * parked in its order. Returns false when send said PUB_QUEUE_FAIL. */
bool pub_queue_drain(struct pub_queue *q,
                     enum pub_queue_verdict (*send)(void *ctx, struct outbox_item *it),
                     void *ctx, uint64_t now);

/* Messages held in both queues. */
uint32_t pub_queue_len(const struct pub_queue *q);

#endif
