/* outbox.c: a ring of fbuf pointers with drop-oldest. */
#include "redis/outbox.h"

#include <stdlib.h>

#include "fbuf.h"

int outbox_init(struct outbox *o, uint32_t cap)
{
    *o = (struct outbox){0};
    o->items = calloc(cap, sizeof(*o->items));
    if (!o->items)
        return -1;
    o->cap = cap;
    return 0;
}

void outbox_free(struct outbox *o)
{
    while (o->n > 0) {
        fbuf_unref(o->items[o->head].msg);
        o->head = (o->head + 1) % o->cap;
        o->n--;
    }
    free(o->items);
    o->items = NULL;
}

static void drop_oldest(struct outbox *o)
{
    fbuf_unref(o->items[o->head].msg);
    o->head = (o->head + 1) % o->cap;
    o->n--;
    o->dropped++;
}

void outbox_push(struct outbox *o, struct fbuf *b)
{
    if (o->n == o->cap)
        drop_oldest(o);
    fbuf_ref(b);
    o->items[(o->head + o->n) % o->cap] = (struct outbox_item){b, 0};
    o->n++;
}

void outbox_append(struct outbox *o, const struct outbox_item *it)
{
    if (o->n == o->cap)
        drop_oldest(o);
    o->items[(o->head + o->n) % o->cap] = *it;
    o->n++;
}

uint32_t outbox_take(struct outbox *o, struct outbox_item *out, uint32_t max)
{
    uint32_t k = 0;
    while (k < max && o->n > 0) {
        out[k++] = o->items[o->head];
        o->head = (o->head + 1) % o->cap;
        o->n--;
    }
    return k;
}

void outbox_requeue(struct outbox *o, const struct outbox_item *items, uint32_t n)
{
    /* Walk back from the newest of them, placing each before the head; what
     * does not fit is older than everything kept. */
    for (uint32_t i = n; i > 0; i--) {
        if (o->n == o->cap) {
            fbuf_unref(items[i - 1].msg);
            o->dropped++;
            continue;
        }
        o->head = (o->head + o->cap - 1) % o->cap;
        o->items[o->head] = items[i - 1];
        o->n++;
    }
}
