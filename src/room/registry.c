/* registry.c: a keyed map of rooms (hmap.h) with member counts and subscription
 * states, a FIFO of rooms to subscribe and a FIFO of lingering rooms. */
#include "room/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room/room.h"

enum sub_state {
    SUB_NONE,      /* not subscribed, not asked for (standalone, or Redis away) */
    SUB_QUEUED,    /* in the queue, for the subscriber to take */
    SUB_SENT,      /* SUBSCRIBE sent, no confirmation yet */
    SUB_CONFIRMED, /* Redis confirmed it */
    SUB_REFUSED,   /* Redis refused its channel: joins do not wait, retried with backoff */
    SUB_STALLED,   /* its node cannot be reached now (cluster): joins do not wait,
                    * the subscriber tries again */
};

struct reg_entry {
    char *name;
    struct hmap_node hn; /* in the registry's map, by name */
    uint8_t state;   /* enum sub_state */
    bool waiters;    /* a join was told to wait for this room's confirmation */
    bool idle;       /* on the idle list */
    bool told;       /* its members were told Redis refuses it (until allowed) */
    uint64_t members;
    uint64_t idle_since_ms;
    struct reg_entry *q_next;            /* the queue */
    struct list_node idle_link;          /* in the idle list */
};

static struct reg_entry *E(struct hmap_node *n)
{
    return hmap_entry(n, struct reg_entry, hn);
}

static bool same_name(const struct hmap_node *n, const void *room)
{
    return strcmp(hmap_entry(n, struct reg_entry, hn)->name, room) == 0;
}

int registry_init(struct room_registry *reg)
{
    *reg = (struct room_registry){0};
    if (hmap_init(&reg->map, 64) < 0)
        return -1;
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        hmap_free(&reg->map);
        return -1;
    }
    return 0;
}

void registry_free(struct room_registry *reg)
{
    struct hmap_iter it;
    hmap_each(x, &it, &reg->map) {
        hmap_iter_unlink(&it);
        free(E(x)->name);
        free(E(x));
    }
    hmap_free(&reg->map);
    pthread_mutex_destroy(&reg->lock);
}

/* The link to room's entry, or NULL. */
static struct hmap_node **find(struct room_registry *reg, const char *room, uint32_t h)
{
    return hmap_find(&reg->map, h, same_name, room);
}

static void idle_unlink(struct room_registry *reg, struct reg_entry *e)
{
    if (!e->idle)
        return;
    list_unlink(&reg->idle, &e->idle_link);
    e->idle = false;
}

static void queue_push(struct room_registry *reg, struct reg_entry *e)
{
    bool was_empty = reg->queue_head == NULL;
    e->state = SUB_QUEUED;
    e->q_next = NULL;
    if (reg->queue_tail)
        reg->queue_tail->q_next = e;
    else
        reg->queue_head = e;
    reg->queue_tail = e;
    if (was_empty && reg->wake)
        reg->wake(reg->wake_arg);
}

/* Takes e out of the queue (a walk: only for a room that emptied before
 * the subscriber took it, which is rare). */
static void queue_unlink(struct room_registry *reg, struct reg_entry *e)
{
    struct reg_entry *prev = NULL;
    for (struct reg_entry *q = reg->queue_head; q; prev = q, q = q->q_next) {
        if (q != e)
            continue;
        if (prev)
            prev->q_next = e->q_next;
        else
            reg->queue_head = e->q_next;
        if (reg->queue_tail == e)
            reg->queue_tail = prev;
        e->q_next = NULL;
        return;
    }
}

/* Unhooks e from its chain (pp points at it) and frees it. */
/* Frees e, unlinked from the map, and counts it out. */
static void release_entry(struct room_registry *reg, struct reg_entry *e)
{
    idle_unlink(reg, e);
    if (e->state == SUB_CONFIRMED)
        reg->confirmed--;
    if (e->told)
        reg->told--;
    free(e->name);
    free(e);
}

static void forget(struct room_registry *reg, struct hmap_node **pp)
{
    struct reg_entry *e = E(*pp);
    hmap_unlink(&reg->map, pp);
    release_entry(reg, e);
}

/* Unlinks and frees the entry the walk is at. */
static void forget_at(struct room_registry *reg, struct hmap_iter *it)
{
    struct reg_entry *e = E(*it->link);
    hmap_iter_unlink(it);
    release_entry(reg, e);
}

int registry_join(struct room_registry *reg, const char *room, uint64_t *gen)
{
    uint32_t h = room_hash(room, strlen(room));
    pthread_mutex_lock(&reg->lock);
    struct hmap_node **pp = find(reg, room, h);
    struct reg_entry *e = pp ? E(*pp) : NULL;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e || !(e->name = strdup(room))) {
            free(e);
            pthread_mutex_unlock(&reg->lock);
            return -1;
        }
        hmap_insert(&reg->map, &e->hn, h);
        if (reg->tracking && reg->live)
            queue_push(reg, e);
    }
    if (e->members++ == 0) {
        reg->nrooms++;
        idle_unlink(reg, e);
    }
    int ready = 1;
    if (reg->tracking && reg->live && (e->state == SUB_QUEUED || e->state == SUB_SENT)) {
        e->waiters = true;
        ready = 0;
        *gen = reg->gen;
    }
    pthread_mutex_unlock(&reg->lock);
    return ready;
}

void registry_leave(struct room_registry *reg, const char *room, uint64_t now_ms)
{
    uint32_t h = room_hash(room, strlen(room));
    pthread_mutex_lock(&reg->lock);
    struct hmap_node **pp = find(reg, room, h);
    struct reg_entry *e = pp ? E(*pp) : NULL;
    if (e && e->members > 0 && --e->members == 0) {
        reg->nrooms--;
        if (e->state == SUB_SENT || e->state == SUB_CONFIRMED) {
            /* Subscribed: stays so for the linger, in case someone comes back. */
            e->idle = true;
            e->idle_since_ms = now_ms;
            list_push_tail(&reg->idle, &e->idle_link);
        } else {
            /* Nothing to undo in Redis (never subscribed, or its node is
             * gone): forgotten at once, so rooms passed through while Redis is
             * away cost nothing afterwards. */
            if (e->state == SUB_QUEUED)
                queue_unlink(reg, e);
            forget(reg, pp);
        }
    }
    pthread_mutex_unlock(&reg->lock);
}

/* Whether x ranks before y among the largest rooms: more members, then
 * the name first in byte order. */
static bool ranks_before(uint64_t xm, const char *xn, uint64_t ym, const char *yn)
{
    return xm != ym ? xm > ym : strcmp(xn, yn) < 0;
}

static bool entry_before(const struct reg_entry *x, const struct reg_entry *y)
{
    return ranks_before(x->members, x->name, y->members, y->name);
}

/* Restores the heap below i: heap[0] is the one that ranks last. */
static void sift_down(const struct reg_entry **heap, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, last = i;
        if (l < n && entry_before(heap[last], heap[l]))
            last = l;
        if (r < n && entry_before(heap[last], heap[r]))
            last = r;
        if (last == i)
            return;
        const struct reg_entry *t = heap[i];
        heap[i] = heap[last];
        heap[last] = t;
        i = last;
    }
}

static void sift_up(const struct reg_entry **heap, size_t i)
{
    while (i > 0 && entry_before(heap[(i - 1) / 2], heap[i])) {
        const struct reg_entry *t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int by_rank(const void *a, const void *b)
{
    const struct room_count *x = a, *y = b;
    return ranks_before(x->members, x->name, y->members, y->name) ? -1 : 1;
}

void registry_top(struct room_registry *reg, struct registry_top *out)
{
    const struct reg_entry *heap[REGISTRY_TOP_MAX];
    size_t n = 0, rooms = 0;
    pthread_mutex_lock(&reg->lock);
    struct hmap_iter it;
    hmap_each(x, &it, &reg->map) {
        const struct reg_entry *e = E(x);
        if (e->members == 0)
            continue;
        rooms++;
        if (n < REGISTRY_TOP_MAX) {
            heap[n] = e;
            sift_up(heap, n++);
        } else if (entry_before(e, heap[0])) {
            heap[0] = e;
            sift_down(heap, n, 0);
        }
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(out->top[i].name, sizeof(out->top[i].name), "%s", heap[i]->name);
        out->top[i].members = heap[i]->members;
    }
    pthread_mutex_unlock(&reg->lock);
    out->rooms = rooms;
    out->n = n;
    qsort(out->top, n, sizeof(out->top[0]), by_rank);
}

size_t registry_rooms(struct room_registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    size_t n = reg->nrooms;
    pthread_mutex_unlock(&reg->lock);
    return n;
}

uint64_t registry_confirmed(struct room_registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    uint64_t n = reg->confirmed;
    pthread_mutex_unlock(&reg->lock);
    return n;
}

/* Every entry: forgotten when it has no members, else put in state (and
 * emitted, when emit is given); nothing waits any more. Under the lock. */
static void reset_all(struct room_registry *reg, enum sub_state state, registry_emit_fn emit,
                      void *arg)
{
    reg->queue_head = reg->queue_tail = NULL;
    struct hmap_iter it;
    hmap_each(x, &it, &reg->map) {
        struct reg_entry *e = E(x);
        if (e->members == 0) {
            forget_at(reg, &it);
            continue;
        }
        if (e->state == SUB_CONFIRMED)
            reg->confirmed--;
        e->state = (uint8_t)state;
        e->waiters = false;
        e->q_next = NULL;
        if (emit)
            emit(arg, e->name);
    }
}

void registry_sub_live(struct room_registry *reg, registry_emit_fn emit, void *arg)
{
    pthread_mutex_lock(&reg->lock);
    reg->live = true;
    reg->gen++;
    reset_all(reg, SUB_SENT, emit, arg);
    pthread_mutex_unlock(&reg->lock);
}

void registry_sub_take_queued(struct room_registry *reg, registry_emit_fn emit, void *arg)
{
    pthread_mutex_lock(&reg->lock);
    struct reg_entry *e = reg->queue_head;
    reg->queue_head = reg->queue_tail = NULL;
    while (e) {
        struct reg_entry *next = e->q_next;
        e->q_next = NULL;
        e->state = SUB_SENT;
        emit(arg, e->name);
        e = next;
    }
    pthread_mutex_unlock(&reg->lock);
}

void registry_sub_take_expired(struct room_registry *reg, uint64_t cutoff_ms,
                               registry_emit_fn emit, void *arg)
{
    pthread_mutex_lock(&reg->lock);
    while (reg->idle.head) {
        struct reg_entry *e = list_entry(reg->idle.head, struct reg_entry, idle_link);
        if (e->idle_since_ms >= cutoff_ms)
            break;
        emit(arg, e->name);
        forget(reg, hmap_link_of(&reg->map, &e->hn));
    }
    pthread_mutex_unlock(&reg->lock);
}

bool registry_sub_confirmed(struct room_registry *reg, const char *room)
{
    uint32_t h = room_hash(room, strlen(room));
    bool waiters = false;
    pthread_mutex_lock(&reg->lock);
    struct hmap_node **l = find(reg, room, h);
    struct reg_entry *e = l ? E(*l) : NULL;
    /* Only a room we sent: a confirmation can also belong to a room that was
     * forgotten and joined again (its new SUBSCRIBE's answer comes later). */
    if (e && e->state == SUB_SENT) {
        e->state = SUB_CONFIRMED;
        reg->confirmed++;
        waiters = e->waiters;
        e->waiters = false;
    }
    pthread_mutex_unlock(&reg->lock);
    return waiters;
}

void registry_sub_stall(struct room_registry *reg, bool (*pick)(void *arg, const char *room),
                        void *arg, registry_emit_fn waiting, void *warg)
{
    pthread_mutex_lock(&reg->lock);
    struct hmap_iter it;
    hmap_each(x, &it, &reg->map) {
        struct reg_entry *e = E(x);
        if ((e->state != SUB_SENT && e->state != SUB_CONFIRMED) || !pick(arg, e->name))
            continue;
        if (e->members == 0) {
            forget_at(reg, &it); /* lingering: its subscription went with the node */
            continue;
        }
        if (e->state == SUB_CONFIRMED)
            reg->confirmed--;
        e->state = SUB_STALLED;
        if (e->waiters)
            waiting(warg, e->name);
        e->waiters = false;
    }
    pthread_mutex_unlock(&reg->lock);
}

/* Sets one sent or confirmed room aside in state (stalled or refused). */
static bool set_aside(struct room_registry *reg, const char *room, enum sub_state state,
                      bool *waited)
{
    uint32_t h = room_hash(room, strlen(room));
    bool aside = false;
    *waited = false;
    pthread_mutex_lock(&reg->lock);
    struct hmap_node **pp = find(reg, room, h);
    struct reg_entry *e = pp ? E(*pp) : NULL;
    if (e && (e->state == SUB_SENT || e->state == SUB_CONFIRMED)) {
        if (e->members == 0) {
            forget(reg, pp);
        } else {
            if (e->state == SUB_CONFIRMED)
                reg->confirmed--;
            e->state = (uint8_t)state;
            *waited = e->waiters;
            e->waiters = false;
            aside = true;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return aside;
}

bool registry_sub_stall_room(struct room_registry *reg, const char *room, bool *waited)
{
    return set_aside(reg, room, SUB_STALLED, waited);
}

bool registry_sub_refuse_room(struct room_registry *reg, const char *room, bool *waited)
{
    return set_aside(reg, room, SUB_REFUSED, waited);
}

static void take_state(struct room_registry *reg, enum sub_state state, registry_emit_fn emit,
                       void *arg)
{
    pthread_mutex_lock(&reg->lock);
    struct hmap_iter it;
    hmap_each(x, &it, &reg->map) {
        if (E(x)->state == state) {
            E(x)->state = SUB_SENT;
            emit(arg, E(x)->name);
        }
    }
    pthread_mutex_unlock(&reg->lock);
}

void registry_sub_take_stalled(struct room_registry *reg, registry_emit_fn emit, void *arg)
{
    take_state(reg, SUB_STALLED, emit, arg);
}

size_t registry_sub_take_refused(struct room_registry *reg, size_t max, registry_emit_fn emit,
                                 void *arg)
{
    pthread_mutex_lock(&reg->lock);
    size_t taken = 0, left = 0;
    struct hmap_iter it;
    for (struct hmap_node *x = hmap_iter_start(&it, &reg->map, reg->refused_cursor); x;
         x = hmap_iter_next(&it)) {
        if (E(x)->state != SUB_REFUSED)
            continue;
        if (taken >= max) {
            left++;
            continue;
        }
        E(x)->state = SUB_SENT;
        emit(arg, E(x)->name);
        taken++;
        reg->refused_cursor = it.bucket + 1; /* the next call starts after this bucket */
    }
    pthread_mutex_unlock(&reg->lock);
    return left;
}

/* Sets room's told mark to to; returns what it was. */
static bool mark_told(struct room_registry *reg, const char *room, bool to)
{
    uint32_t h = room_hash(room, strlen(room));
    pthread_mutex_lock(&reg->lock);
    struct hmap_node **l = find(reg, room, h);
    bool was = l && E(*l)->told;
    if (l && was != to) {
        E(*l)->told = to;
        if (to)
            reg->told++;
        else
            reg->told--;
    }
    pthread_mutex_unlock(&reg->lock);
    return was;
}

size_t registry_sub_refused_rooms(struct room_registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    size_t n = reg->told;
    pthread_mutex_unlock(&reg->lock);
    return n;
}

bool registry_sub_told(struct room_registry *reg, const char *room)
{
    return !mark_told(reg, room, true);
}

bool registry_sub_allowed(struct room_registry *reg, const char *room)
{
    return mark_told(reg, room, false);
}

uint64_t registry_sub_gone(struct room_registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    reg->live = false;
    reset_all(reg, SUB_NONE, NULL, NULL);
    uint64_t gen = reg->gen;
    pthread_mutex_unlock(&reg->lock);
    return gen;
}
