/* wheel.c: the timer wheel (wheel.h). */
#include "wheel.h"

void wheel_init(struct wheel *wh, uint64_t tick_ms, uint64_t now_ms)
{
    for (unsigned i = 0; i < WHEEL_SPOKES; i++)
        wh->spoke[i] = (struct list){0};
    wh->tick_ms = tick_ms;
    wh->cur_tick = now_ms / tick_ms;
}

void wheel_schedule(struct wheel *wh, struct wheel_timer *t, uint64_t at_ms)
{
    uint64_t tick = at_ms / wh->tick_ms;
    if (tick <= wh->cur_tick)
        tick = wh->cur_tick + 1;
    if (tick - wh->cur_tick >= WHEEL_SPOKES)
        tick = wh->cur_tick + WHEEL_SPOKES - 1;
    t->due_tick = tick;
    list_push_head(&wh->spoke[tick % WHEEL_SPOKES], &t->node);
}

void wheel_cancel(struct wheel *wh, struct wheel_timer *t)
{
    struct list *spoke = &wh->spoke[t->due_tick % WHEEL_SPOKES];
    if (t->node.prev || spoke->head == &t->node) /* on it at all */
        list_unlink(spoke, &t->node);
}

/* Scheduling always lands past cur_tick and less than a turn ahead, so the
 * spoke of cur_tick only ever empties while it is expired. */
struct wheel_timer *wheel_expire(struct wheel *wh, uint64_t now_ms)
{
    uint64_t target = now_ms / wh->tick_ms;
    for (;;) {
        struct list_node *n = list_pop_head(&wh->spoke[wh->cur_tick % WHEEL_SPOKES]);
        if (n)
            return list_entry(n, struct wheel_timer, node);
        if (wh->cur_tick >= target)
            return NULL;
        wh->cur_tick++;
    }
}
