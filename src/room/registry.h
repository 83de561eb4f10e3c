/* registry.h: the pod's rooms, across workers, and their Redis subscriptions.
 *
 * DESIGN: one entry per room that has members on any worker (or had them a
 * moment ago, see linger), under one mutex: membership changes only on join
 * and leave, never per message. Workers join and leave; stats read it; in
 * Redis mode the broker's subscriber also keeps each room's subscription
 * state here, so that "is this room subscribed?" and "a member joined" are
 * decided under the same lock and no welcome can slip between them.
 *
 * Per-room subscriptions (only when tracking is on, i.e. in Redis mode):
 *   - a room's first member queues it for SUBSCRIBE and wakes the
 *     subscriber, which takes every queued room at once (one command for many
 *     channels) and marks them sent;
 *   - Redis' confirmation marks a room confirmed; members that joined while
 *     it was on its way are waiting for their welcome, and the subscriber
 *     tells their workers;
 *   - a room left without members lingers: it stays subscribed for the
 *     linger time (a reconnecting client finds it ready) and is then taken
 *     for UNSUBSCRIBE and forgotten;
 *   - while the subscriber is not connected (not live), nothing waits: joins
 *     are welcomed at once, rooms are only counted; when it connects it takes
 *     exactly the rooms that have members then;
 *   - the rooms of a node that failed stall: nothing waits for them until
 *     the subscriber has them subscribed again (where they now live);
 *   - a room whose channel Redis refused is set aside the same way and
 *     retried with backoff.
 * Entries own their name. Threads: workers (join, leave), the subscriber
 * (the registry_sub_* calls), any thread (snapshot, counts). */
#ifndef CHAT_ROOM_REGISTRY_H
#define CHAT_ROOM_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "list.h"

struct reg_entry;

struct room_registry {
    pthread_mutex_t lock; /* guards everything below */
    struct hmap map;  /* of entries, lingering ones included (map.n), by name */
    size_t nrooms;    /* rooms with at least one member */
    bool tracking;    /* per-room subscriptions are kept (Redis mode); set before threads start */
    bool live;        /* the subscriber is connected: joins wait for confirmation */
    struct reg_entry *queue_head, *queue_tail; /* rooms to subscribe, oldest first */
    struct list idle; /* of reg_entry: subscribed rooms without members, oldest first */
    uint64_t confirmed;                        /* rooms whose subscription is confirmed (gauge) */
    uint64_t gen; /* the subscriber's connection: +1 at each registry_sub_live */
    size_t refused_cursor; /* where the next retry of refused rooms starts (a bucket) */
    size_t told;           /* rooms whose members were told Redis refuses them */
    /* Called (under the lock, so it must only write an eventfd) when the
     * queue goes from empty to not empty. Set before threads start. */
    void (*wake)(void *arg);
    void *wake_arg;
};

/* Room names are 1 to 128 bytes (docs/protocol.md). */
#define REGISTRY_NAME_MAX 128

/* One room and its members, as stats show it. */
struct room_count {
    char name[REGISTRY_NAME_MAX + 1];
    uint64_t members;
};

/* The largest rooms, as stats show them: a fixed block, no allocation. */
#define REGISTRY_TOP_MAX 100
struct registry_top {
    size_t rooms;                            /* rooms with members */
    size_t n;                                /* entries in top: min(rooms, REGISTRY_TOP_MAX) */
    struct room_count top[REGISTRY_TOP_MAX]; /* largest first, then by name */
};

/* Returns 0 or -1. */
int registry_init(struct room_registry *reg);
void registry_free(struct room_registry *reg);

/* A member joins room. Returns 1 when its welcome may go now; 0 when the
 * room's subscription is on its way: the subscriber's ready callback
 * (registry_sub_confirmed) or registry_sub_gone will say when, and *gen is
 * the subscriber connection it waits on, so that the release for an earlier
 * connection does not release it; -1 when out of memory (nothing was
 * counted). Workers. */
int registry_join(struct room_registry *reg, const char *room, uint64_t *gen);

/* A member leaves room; now_ms starts the linger of a room left empty. */
void registry_leave(struct room_registry *reg, const char *room, uint64_t now_ms);

/* Fills out with the REGISTRY_TOP_MAX largest rooms and the number of rooms
 * with members. The lock is held for one pass over the rooms, keeping the
 * largest in a bounded heap (no copy or sort of every room); names are
 * copied for the winners only and sorted after the lock is let go. Any
 * thread. */
void registry_top(struct room_registry *reg, struct registry_top *out);

/* Rooms with members; rooms whose subscription is confirmed. Any thread. */
size_t registry_rooms(struct room_registry *reg);
uint64_t registry_confirmed(struct room_registry *reg);

/* ---- the subscriber's side; emit is called under the lock and must only
 * buffer (e.g. append the channel to a command being built). ---- */
typedef void (*registry_emit_fn)(void *arg, const char *room);

/* The subscriber is connected: joins wait from now on. Rooms without
 * members are forgotten; every room with members is emitted and counts as
 * sent. */
void registry_sub_live(struct room_registry *reg, registry_emit_fn emit, void *arg);

/* Emits the rooms queued since the last call; they count as sent. */
void registry_sub_take_queued(struct room_registry *reg, registry_emit_fn emit, void *arg);

/* Emits (for UNSUBSCRIBE) and forgets the rooms that have had no member
 * since before cutoff_ms. */
void registry_sub_take_expired(struct room_registry *reg, uint64_t cutoff_ms,
                               registry_emit_fn emit, void *arg);

/* Redis confirmed room's subscription. Returns true when members wait for
 * their welcome (the caller tells the workers). */
bool registry_sub_confirmed(struct room_registry *reg, const char *room);

/* The node serving some rooms failed. Every subscribed room
 * for which pick says true stalls: joins stop waiting for it, those that
 * waited are passed to waiting (their workers are to be told), and
 * registry_sub_take_stalled hands them out again later. */
void registry_sub_stall(struct room_registry *reg, bool (*pick)(void *arg, const char *room),
                        void *arg, registry_emit_fn waiting, void *warg);
void registry_sub_take_stalled(struct room_registry *reg, registry_emit_fn emit, void *arg);

/* The same for one room (a node said it no longer serves it). Returns true
 * when the room was subscribed and has members; *waited says whether
 * members waited for it. */
bool registry_sub_stall_room(struct room_registry *reg, const char *room, bool *waited);

/* Redis refused room's channel (NOPERM, any error answer to its
 * subscription): joins stop waiting for it, and registry_sub_take_refused
 * hands it out again when the subscriber retries. Returns true when the room
 * was sent and has members; *waited says whether members waited for it. */
bool registry_sub_refuse_room(struct room_registry *reg, const char *room, bool *waited);
/* Hands out at most max refused rooms (give or take one bucket), going on
 * where the last call stopped, so every refused room is retried in turn, a
 * bounded number at a time. Returns how many stay refused. */
size_t registry_sub_take_refused(struct room_registry *reg, size_t max, registry_emit_fn emit,
                                 void *arg);

/* Marks room's members as told that Redis refuses its channel. Returns true
 * the first time since the room was last allowed (or created): they are
 * told once, however often the retry is refused. */
bool registry_sub_told(struct room_registry *reg, const char *room);

/* Redis allowed room's channel: returns true when its members had been told
 * of a refusal (which is forgotten). */
bool registry_sub_allowed(struct room_registry *reg, const char *room);

/* Rooms with members that were told of a refusal and not allowed since. */
size_t registry_sub_refused_rooms(struct room_registry *reg);

/* The subscriber lost its connection: nothing is subscribed any more and
 * joins no longer wait. Whoever waited is the caller's to release. Returns
 * the generation of the connection that ended. */
uint64_t registry_sub_gone(struct room_registry *reg);

#endif
