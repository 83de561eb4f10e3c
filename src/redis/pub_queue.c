/* pub_queue.c: a node's in-flight and parked queues (see pub_queue.h). */
#include "redis/pub_queue.h"

#include <stdlib.h>

#include "fbuf.h"

int pub_queue_init(struct pub_queue *q, uint32_t cap, uint64_t inflight_bytes_max)
{
    *q = (struct pub_queue){.inflight_bytes_max = inflight_bytes_max};
    if (outbox_init(&q->inflight, cap) < 0)
        return -1;
    if (outbox_init(&q->parked, cap) < 0) {
        outbox_free(&q->inflight);
        return -1;
    }
    return 0;
}

void pub_queue_free(struct pub_queue *q)
{
    outbox_free(&q->inflight);
    outbox_free(&q->parked);
}

bool pub_queue_full(const struct pub_queue *q)
{
    return q->inflight.n >= q->inflight.cap ||
           (q->inflight_bytes_max && q->inflight.n && q->inflight.bytes >= q->inflight_bytes_max);
}

bool pub_queue_may_send(const struct pub_queue *q)
{
    return q->parked.n == 0 && !pub_queue_full(q);
}

void pub_queue_sent(struct pub_queue *q, const struct outbox_item *it, uint64_t now)
{
    if (pub_queue_full(q))
        abort(); /* would drop an entry that an answer is still owed for */
    if (q->inflight.n == 0)
        q->progress_ms = now;
    outbox_append(&q->inflight, it);
}

void pub_queue_park(struct pub_queue *q, const struct outbox_item *it)
{
    outbox_append(&q->parked, it);
}

bool pub_queue_answered(struct pub_queue *q, struct outbox_item *it, uint64_t now)
{
    if (!outbox_take(&q->inflight, it, 1))
        return false;
    q->progress_ms = now;
    return true;
}

void pub_queue_unanswer(struct pub_queue *q, const struct outbox_item *it)
{
    outbox_requeue(&q->inflight, it, 1);
}

void pub_queue_failed(struct pub_queue *q)
{
    /* Newest first, each in front of the parked head: what does not fit is
     * the oldest of all, dropped and counted. */
    struct outbox_item it;
    while (outbox_take_newest(&q->inflight, &it))
        outbox_requeue(&q->parked, &it, 1);
}

bool pub_queue_drain(struct pub_queue *q,
                     enum pub_queue_verdict (*send)(void *ctx, struct outbox_item *it),
                     void *ctx, uint64_t now)
{
    /* Items are taken from the front and either sent or put back at the
     * end. Once one was put back, every later one must go round too, so
     * that what stays keeps its order; until then, sending can simply
     * stop, leaving the rest where they are. */
    bool ok = true, kept = false;
    uint32_t n = q->parked.n;
    if (n == 0 || pub_queue_full(q))
        return true;
    for (uint32_t k = 0; k < n; k++) {
        bool can = ok && !pub_queue_full(q);
        if (!can && !kept)
            break;
        struct outbox_item it;
        outbox_take(&q->parked, &it, 1);
        enum pub_queue_verdict v = can ? send(ctx, &it) : PUB_QUEUE_KEEP;
        if (v == PUB_QUEUE_KEEP) {
            outbox_append(&q->parked, &it);
            kept = true;
            continue;
        }
        pub_queue_sent(q, &it, now);
        ok = v == PUB_QUEUE_SENT;
    }
    return ok;
}

uint32_t pub_queue_len(const struct pub_queue *q)
{
    return q->inflight.n + q->parked.n;
}
