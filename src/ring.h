/* ring.h: the one growth rule of the rings (a connection's send ring, the
 * outboxes and a node's queues, a subscriber link's command FIFO).
 *
 * Each ring keeps its elements, its head, its count and its allocated
 * slots; what happens when it is full is its owner's policy, said where the
 * ring is declared: refuse (a send ring: a slow consumer), drop the oldest
 * and count it (an outbox), or grow without a bound of its own (a command
 * FIFO, bounded by the rooms a pod hosts). Growing is the same for all: the
 * size doubles from a first size up to the owner's bound, and the elements
 * are laid out again oldest first. Pure. */
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

/* Gives a ring newcap slots (>= n): *slots (the address of the ring's
 * pointer to its slots, elem bytes each) is replaced by a new allocation
 * holding its n elements oldest first, *head becomes 0 and *cap newcap.
 * False (the ring untouched) when out of memory. */
bool ring_resize(void *slots, size_t elem, uint32_t *head, uint32_t n, uint32_t *cap,
                 uint32_t newcap);

#endif
