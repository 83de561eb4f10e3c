/* outbox.c: a ring of fbuf pointers with drop-oldest, allocated as it
 * fills (a node's parked queue is usually empty). */
#include "redis/outbox.h"

#include <stdbool.h>
#include <stdlib.h>

#include "fbuf.h"
#include "ring.h"

#define FIRST_SIZE 64

int outbox_init(struct outbox *o, uint32_t cap)
{
    *o = (struct outbox){0};
    uint32_t size = cap < FIRST_SIZE ? cap : FIRST_SIZE;
    o->items = calloc(size ? size : 1, sizeof(*o->items));
    if (!o->items)
        return -1;
    o->cap = cap;
    o->size = size;
    return 0;
}

/* Room for one more: grows the ring up to cap (ring.h). False at cap, or
 * out of memory: an outbox drops its oldest then (RING_DROP_OLDEST), or, when
 * putting messages back in front, the one put back (it is the oldest). */
static bool room_for_one(struct outbox *o)
{
    return ring_make_room(&o->items, sizeof(*o->items), &o->head, o->n, &o->size, o->size, o->cap,
                          RING_DROP_OLDEST) == RING_ROOM;
}

static uint64_t weight(const struct outbox_item *it)
{
    return it->msg->len;
}

static void charge(struct outbox *o, const struct outbox_item *it)
{
    o->bytes += weight(it);
    if (o->budget)
        o->budget->used += weight(it);
}

static void credit(struct outbox *o, const struct outbox_item *it)
{
    o->bytes -= weight(it);
    if (o->budget)
        o->budget->used -= weight(it);
}

/* The four ways in and out of the ring; each keeps the weights. */
static void put_back(struct outbox *o, const struct outbox_item *it)
{
    o->items[(o->head + o->n) % o->size] = *it;
    o->n++;
    charge(o, it);
}

static void put_front(struct outbox *o, const struct outbox_item *it)
{
    o->head = (o->head + o->size - 1) % o->size;
    o->items[o->head] = *it;
    o->n++;
    charge(o, it);
}

static struct outbox_item take_front(struct outbox *o)
{
    struct outbox_item it = o->items[o->head];
    o->head = (o->head + 1) % o->size;
    o->n--;
    credit(o, &it);
    return it;
}

static struct outbox_item take_back(struct outbox *o)
{
    o->n--;
    struct outbox_item it = o->items[(o->head + o->n) % o->size];
    credit(o, &it);
    return it;
}

void outbox_share_budget(struct outbox *o, struct outbox_budget *budget)
{
    o->budget = budget;
    budget->used += o->bytes;
}

void outbox_free(struct outbox *o)
{
    while (o->n > 0)
        fbuf_unref(take_front(o).msg);
    free(o->items);
    o->items = NULL;
}

void outbox_drop_oldest(struct outbox *o)
{
    fbuf_unref(take_front(o).msg);
    o->dropped++;
}

void outbox_push(struct outbox *o, struct fbuf *b)
{
    if (!room_for_one(o))
        outbox_drop_oldest(o);
    fbuf_ref(b);
    put_back(o, &(struct outbox_item){b, 0});
}

void outbox_append(struct outbox *o, const struct outbox_item *it)
{
    if (!room_for_one(o))
        outbox_drop_oldest(o);
    put_back(o, it);
}

bool outbox_take_newest(struct outbox *o, struct outbox_item *it)
{
    if (o->n == 0)
        return false;
    *it = take_back(o);
    return true;
}

/* An emptied ring that grew past its first size goes back to it: what a
 * long outage parked costs memory while it waits, not afterwards. */
static void shrink_if_empty(struct outbox *o)
{
    if (o->n > 0 || o->size <= 4 * FIRST_SIZE)
        return; /* small rings stay: no churn between bursts */
    struct outbox_item *v = malloc(FIRST_SIZE * sizeof(*v));
    if (!v)
        return; /* keeps the larger ring */
    free(o->items);
    o->items = v;
    o->size = FIRST_SIZE;
    o->head = 0;
}

uint32_t outbox_take(struct outbox *o, struct outbox_item *out, uint32_t max)
{
    uint32_t k = 0;
    while (k < max && o->n > 0)
        out[k++] = take_front(o);
    shrink_if_empty(o);
    return k;
}

void outbox_requeue(struct outbox *o, const struct outbox_item *items, uint32_t n)
{
    /* Walk back from the newest of them, placing each before the head; what
     * does not fit is older than everything kept. */
    for (uint32_t i = n; i > 0; i--) {
        if (!room_for_one(o)) {
            fbuf_unref(items[i - 1].msg);
            o->dropped++;
            continue;
        }
        put_front(o, &items[i - 1]);
    }
}
