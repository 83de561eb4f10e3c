/* ring.h: the one ring rule (a connection's send ring, the outboxes and a
 * node's queues, a subscriber link's command FIFO).
 *
 * Each ring keeps its elements, its head, its count and its allocated
 * slots. Growing is the same for all: the size doubles from a first size
 * up to the owner's bound, and the elements are laid out again oldest
 * first. What happens at the bound is a policy the owner names when it
 * asks for room (enum ring_policy): refuse (a send ring: its connection is
 * a slow consumer), drop the oldest and count it (an outbox), or grow
 * without a bound of its own (a command FIFO, bounded by the rooms a pod
 * hosts). Pure. */
#ifndef CHAT_RING_H
#define CHAT_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The size after cap (0: none yet): first, then double, never past max. */
static inline uint32_t ring_next_cap(uint32_t cap, uint32_t first, uint32_t max)
{
    uint64_t next = cap ? (uint64_t)cap * 2 : first;
    return next > max ? max : (uint32_t)next;
}

/* What a full ring does. */
enum ring_policy {
    RING_REFUSE,      /* at the bound, the new element is refused */
    RING_DROP_OLDEST, /* at the bound, the oldest makes way (the owner drops and counts it) */
    RING_GROW,        /* no bound of its own (max: what a uint32_t holds) */
};

/* What ring_make_room found. */
enum ring_room {
    RING_ROOM, /* there is a slot for one more at the tail */
    RING_FULL, /* none: RING_REFUSE at the bound, or out of memory */
    RING_DROP, /* RING_DROP_OLDEST at the bound (or out of memory): the owner takes its
                * oldest out, and then there is */
};

/* Makes room for one more in a ring of n elements (elem bytes each) in
 * *cap slots from *head: grows it (ring_next_cap from first, up to max)
 * when full, else says what policy does at max. */
enum ring_room ring_make_room(void *slots, size_t elem, uint32_t *head, uint32_t n, uint32_t *cap,
                              uint32_t first, uint32_t max, enum ring_policy policy);

/* Gives a ring newcap slots (>= n): *slots (the address of the ring's
 * pointer to its slots, elem bytes each) is replaced by a new allocation
 * holding its n elements oldest first, *head becomes 0 and *cap newcap.
 * False (the ring untouched) when out of memory. */
bool ring_resize(void *slots, size_t elem, uint32_t *head, uint32_t n, uint32_t *cap,
                 uint32_t newcap);

#endif
