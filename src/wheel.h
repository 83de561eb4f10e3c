/* wheel.h: a timer wheel for many timers of coarse precision.
 *
 * WHEEL_SPOKES spokes of tick_ms each; a timer sits on the spoke of its due
 * tick, at most WHEEL_SPOKES - 1 ticks ahead (later deadlines are put on the
 * last spoke and simply come round early: the owner looks and schedules
 * again). Scheduling and cancelling are O(1); expiring walks the spokes that
 * passed. Intrusive: a timer is a field of what it times.
 *
 * Owned by one thread (a worker, for its connections' heartbeats). */
#ifndef CHAT_WHEEL_H
#define CHAT_WHEEL_H

#include <stdint.h>

#include "list.h"

#define WHEEL_SPOKES 256

/* Zeroed: not scheduled. */
struct wheel_timer {
    struct list_node node; /* in its spoke, when scheduled */
    uint64_t due_tick;
};

struct wheel {
    struct list spoke[WHEEL_SPOKES]; /* of wheel_timer */
    uint64_t tick_ms;
    uint64_t cur_tick; /* the last tick whose spoke was expired */
};

/* How long a tick is: the precision the owner's loop wakes for. */
static inline uint64_t wheel_tick_ms(const struct wheel *wh)
{
    return wh->tick_ms;
}

/* An empty wheel of tick_ms ticks (> 0), starting at now_ms. */
void wheel_init(struct wheel *wh, uint64_t tick_ms, uint64_t now_ms);

/* Puts t (not scheduled) on the wheel for at_ms: at least one tick from
 * now, at most WHEEL_SPOKES - 1. */
void wheel_schedule(struct wheel *wh, struct wheel_timer *t, uint64_t at_ms);

/* Takes t off the wheel, if it is on it. */
void wheel_cancel(struct wheel *wh, struct wheel_timer *t);

/* One timer whose tick has come by now_ms, taken off the wheel (its owner
 * may schedule it again: it goes to a later tick), or NULL when none is
 * left. Call until NULL. */
struct wheel_timer *wheel_expire(struct wheel *wh, uint64_t now_ms);

#endif
