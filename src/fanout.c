/* fanout.c: lanes, credit and the broadcast to every worker (see fanout.h). */
#include "fanout.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fbuf.h"

/* One worker's lane. Counters are written by producers (reserving) and by
 * the lane's worker (giving back); members only by the lane's worker. */
struct lane {
    struct inbox inbox;
    _Alignas(64) atomic_uint_fast64_t work;
    atomic_uint_fast64_t budget; /* set by the lane's worker (fanout_lane_pace) */
    atomic_int starved; /* a producer was refused since the last batch */
    /* The lane's worker's own: the window being measured. */
    uint64_t paced_work, paced_since_ms;
    atomic_uint_fast64_t bucket_work[FANOUT_BUCKETS + 1];
    atomic_uint_fast32_t members[FANOUT_BUCKETS + 1];
};

struct fanout {
    unsigned nlanes;
    struct lane *lanes;
};

struct fanout *fanout_create(unsigned nlanes)
{
    if (nlanes == 0 || nlanes > FANOUT_MAX_LANES)
        return NULL;
    struct fanout *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->lanes = aligned_alloc(64, nlanes * sizeof(*f->lanes));
    if (!f->lanes) {
        free(f);
        return NULL;
    }
    for (unsigned i = 0; i < nlanes; i++) {
        struct lane *l = &f->lanes[i];
        atomic_init(&l->work, 0);
        atomic_init(&l->budget, FANOUT_BUDGET_MIN);
        atomic_init(&l->starved, 0);
        l->paced_work = l->paced_since_ms = 0;
        for (unsigned s = 0; s <= FANOUT_BUCKETS; s++) {
            atomic_init(&l->bucket_work[s], 0);
            atomic_init(&l->members[s], 0);
        }
        if (inbox_init(&l->inbox) < 0) {
            f->nlanes = i;
            fanout_destroy(f);
            return NULL;
        }
    }
    f->nlanes = nlanes;
    return f;
}

void fanout_destroy(struct fanout *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < f->nlanes; i++) {
        struct inbox_item *items;
        size_t n = inbox_take(&f->lanes[i].inbox, &items);
        for (size_t k = 0; k < n; k++) {
            if (items[k].kind == INBOX_FRAME) {
                fbuf_unref(items[k].ptr);
            } else if (items[k].kind == INBOX_READY) {
                free(items[k].ptr);
            } else {
                struct conn_handoff *h = items[k].ptr;
                close(h->fd);
                free(h);
            }
        }
        inbox_destroy(&f->lanes[i].inbox);
    }
    free(f->lanes);
    free(f);
}

struct inbox *fanout_inbox(struct fanout *f, unsigned lane)
{
    return &f->lanes[lane].inbox;
}

int fanout_inbox_fd(struct fanout *f, unsigned lane)
{
    return fanout_inbox(f, lane)->efd;
}

unsigned fanout_room_bucket(uint32_t room_hash)
{
    return room_hash % FANOUT_BUCKETS;
}


void fanout_member(struct fanout *f, unsigned lane, unsigned bucket, int delta)
{
    atomic_uint_fast32_t *m = &f->lanes[lane].members[bucket];
    if (delta > 0)
        atomic_fetch_add_explicit(m, (uint_fast32_t)delta, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(m, (uint_fast32_t)-delta, memory_order_relaxed);
}

/* Adds cost to c unless that passes cap; an empty counter takes anything.
 * Concurrent producers may refuse each other for a moment (each sees the
 * other's optimistic add): that errs on the side of the bound. */
static bool take(atomic_uint_fast64_t *c, uint64_t cost, uint64_t cap)
{
    uint64_t old = atomic_fetch_add(c, cost);
    if (old == 0 || old + cost <= cap)
        return true;
    atomic_fetch_sub(c, cost);
    return false;
}

static uint64_t budget_of(const struct lane *l)
{
    return atomic_load_explicit(&l->budget, memory_order_relaxed);
}

static bool reserve(struct lane *l, unsigned bucket, uint64_t cost, uint64_t lane_cap)
{
    if (!take(&l->work, cost, lane_cap))
        return false;
    if (take(&l->bucket_work[bucket], cost, budget_of(l) / 2))
        return true;
    atomic_fetch_sub(&l->work, cost);
    return false;
}

static void release(struct lane *l, unsigned bucket, uint64_t cost)
{
    atomic_fetch_sub(&l->bucket_work[bucket], cost);
    atomic_fetch_sub(&l->work, cost);
}

static bool fits(const atomic_uint_fast64_t *c, uint64_t cost, uint64_t cap)
{
    uint64_t now = atomic_load_explicit(c, memory_order_relaxed);
    return now == 0 || now + cost <= cap;
}

static uint64_t lane_cap(const struct lane *l, enum fanout_source src)
{
    uint64_t budget = budget_of(l);
    return src == FANOUT_FROM_REDIS ? budget / 4 * 3 : budget;
}

static uint64_t cost_on(struct lane *l, unsigned bucket, size_t frame_len)
{
    uint64_t recipients = atomic_load_explicit(&l->members[bucket], memory_order_relaxed);
    return (recipients + 1) * ((uint64_t)frame_len + FANOUT_ITEM_OVERHEAD);
}

bool fanout_admits(struct fanout *f, unsigned bucket, size_t frame_len, enum fanout_source src)
{
    for (unsigned i = 0; i < f->nlanes; i++) {
        struct lane *l = &f->lanes[i];
        uint64_t cost = cost_on(l, bucket, frame_len);
        if (!fits(&l->work, cost, lane_cap(l, src)) ||
            !fits(&l->bucket_work[bucket], cost, budget_of(l) / 2))
            return false;
    }
    return true;
}

int fanout_post(struct fanout *f, struct fbuf *msg, unsigned bucket, enum fanout_source src)
{
    return fanout_post_except(f, msg, bucket, src, FANOUT_MAX_LANES);
}

uint64_t fanout_cost(struct fanout *f, unsigned lane, const struct fbuf *msg, unsigned bucket)
{
    return cost_on(&f->lanes[lane], bucket, msg->len);
}

int fanout_post_except(struct fanout *f, struct fbuf *msg, unsigned bucket, enum fanout_source src,
                       unsigned skip)
{
    uint64_t cost[FANOUT_MAX_LANES];
    for (unsigned i = 0; i < f->nlanes; i++) {
        struct lane *l = &f->lanes[i];
        cost[i] = 0;
        if (i == skip)
            continue;
        cost[i] = cost_on(l, bucket, msg->len);
        bool ok = reserve(l, bucket, cost[i], lane_cap(l, src));
        if (!ok && src == FANOUT_FROM_CLIENT) {
            /* Say that we wait, then look once more: either this second try
             * sees the credit the worker gave back, or the worker, which
             * gives credit back before it reads the flag, sees the flag and
             * kicks us (both sequentially consistent). */
            atomic_store(&l->starved, 1);
            ok = reserve(l, bucket, cost[i], lane_cap(l, src));
        }
        if (!ok) {
            while (i-- > 0)
                if (i != skip)
                    release(&f->lanes[i], bucket, cost[i]);
            return -EAGAIN;
        }
    }
    int missed = 0;
    unsigned posted = skip < f->nlanes ? f->nlanes - 1 : f->nlanes;
    fbuf_ref_n(msg, posted);
    for (unsigned i = 0; i < f->nlanes; i++) {
        if (i == skip)
            continue;
        struct inbox_item it = {.kind = INBOX_FRAME, .bucket = (uint16_t)bucket, .ptr = msg,
                                .cost = cost[i]};
        if (inbox_push(&f->lanes[i].inbox, it) < 0) {
            release(&f->lanes[i], bucket, cost[i]);
            fbuf_unref(msg);
            missed++;
        }
    }
    return missed;
}

int fanout_hand_over(struct fanout *f, unsigned lane, struct conn_handoff *h)
{
    struct inbox_item it = {.kind = INBOX_CONN, .ptr = h};
    return inbox_push(&f->lanes[lane].inbox, it);
}

unsigned fanout_room_ready(struct fanout *f, const char *room, uint64_t gen)
{
    unsigned missed = 0;
    for (unsigned i = 0; i < f->nlanes; i++) {
        char *name = room ? strdup(room) : NULL;
        struct inbox_item it = {.kind = INBOX_READY, .ptr = name, .gen = gen};
        if ((room && !name) || inbox_push(&f->lanes[i].inbox, it) < 0) {
            free(name);
            missed++;
        }
    }
    return missed;
}

void fanout_delivered(struct fanout *f, unsigned lane, const struct inbox_item *it)
{
    release(&f->lanes[lane], it->bucket, it->cost);
}

void fanout_batch_done(struct fanout *f, unsigned lane)
{
    if (atomic_load(&f->lanes[lane].starved) &&
        atomic_exchange(&f->lanes[lane].starved, 0))
        fanout_kick_all(f);
}

void fanout_kick_all(struct fanout *f)
{
    for (unsigned i = 0; i < f->nlanes; i++)
        inbox_wake(&f->lanes[i].inbox);
}

void fanout_lane_pace(struct fanout *f, unsigned lane, uint64_t work, uint64_t now_ms)
{
    struct lane *l = &f->lanes[lane];
    l->paced_work += work;
    if (l->paced_since_ms == 0) {
        l->paced_since_ms = now_ms;
        return;
    }
    uint64_t span = now_ms - l->paced_since_ms;
    if (span < FANOUT_PACE_MS)
        return;
    uint64_t want = l->paced_work * FANOUT_BUDGET_MS / span;
    uint64_t old = budget_of(l);
    uint64_t next = want < old ? want : old + (want - old) / 2;
    if (next < FANOUT_BUDGET_MIN)
        next = FANOUT_BUDGET_MIN;
    if (next > FANOUT_BUDGET_MAX)
        next = FANOUT_BUDGET_MAX;
    atomic_store_explicit(&l->budget, next, memory_order_relaxed);
    l->paced_work = 0;
    l->paced_since_ms = now_ms;
}

uint64_t fanout_lane_budget(struct fanout *f, unsigned lane)
{
    return budget_of(&f->lanes[lane]);
}

uint64_t fanout_lane_work(struct fanout *f, unsigned lane)
{
    return atomic_load_explicit(&f->lanes[lane].work, memory_order_relaxed);
}
