/* hmap.h: the one hash map behind the server's tables (the workers' room
 * indexes, the room registry, the Redis sequence tables, the counts per
 * client address).
 *
 * DESIGN: intrusive and chained: an entry embeds a struct hmap_node and
 * keeps its own key; the map holds only buckets. One growth rule (double
 * when there are more entries than buckets) and one out-of-memory rule
 * (an insert never fails: a growth that cannot allocate keeps the old
 * buckets, so chains get longer but everything stays correct, and it is
 * counted in grow_failures). Keys are hashed with SipHash-2-4 under a key
 * drawn at startup, so that names chosen by clients (rooms) or by whoever
 * publishes to Redis (sequence keys) cannot be made to collide: nobody
 * outside the process knows the key.
 *
 * Owner: each map belongs to whoever owns its table (a worker, or a mutex's
 * holder); nothing here locks. The hash key is set once by the main thread
 * before any other thread starts, read-only after. */
#ifndef CHAT_HMAP_H
#define CHAT_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct hmap_node {
    struct hmap_node *next;
    uint32_t hash;
};

struct hmap {
    struct hmap_node **buckets;
    size_t nbuckets; /* a power of two */
    size_t n;
    uint64_t grow_failures;
};

/* The entry that embeds node as member. */
#define hmap_entry(node, type, member) container_of(node, type, member)

/* Draws the hash key from the kernel (main thread, at startup). Returns 0,
 * or -1 when no randomness could be had (the key stays the fixed one). */
int hmap_random_key(void);

/* Sets the hash key (unit tests, for repeatable layouts). */
void hmap_set_key(const uint8_t key[16]);

/* SipHash-2-4 of p[0..len) under the process' key. */
uint64_t hmap_siphash(const void *p, size_t len);

/* The hash a map files len bytes of key under. */
uint32_t hmap_hash(const void *key, size_t len);

/* first: the initial number of buckets, rounded up to a power of two.
 * Returns 0 or -1 (out of memory). */
int hmap_init(struct hmap *m, size_t first);

/* Whether m has been set up (a zeroed map has not). */
static inline bool hmap_ready(const struct hmap *m)
{
    return m->buckets != NULL;
}

/* Frees the buckets; the entries are their owner's. */
void hmap_free(struct hmap *m);

/* Calls eq on the entries filed under hash; returns the link that points
 * at the first one eq accepts (so that it can be unlinked), or NULL. */
typedef bool (*hmap_eq_fn)(const struct hmap_node *node, const void *key);
struct hmap_node **hmap_find(const struct hmap *m, uint32_t hash, hmap_eq_fn eq, const void *key);

/* Files node under hash. Never fails (see above). */
void hmap_insert(struct hmap *m, struct hmap_node *node, uint32_t hash);

/* Unlinks the node *link points at (a link from hmap_find or a walk). */
void hmap_unlink(struct hmap *m, struct hmap_node **link);

/* The link that points at node (which is in m), for hmap_unlink: found by
 * address along its chain, without comparing keys. */
struct hmap_node **hmap_link_of(struct hmap *m, struct hmap_node *node);

/* A walk over every entry, bucket by bucket from bucket `from` (modulo the
 * bucket count, wrapping round), so that a walk that stops early can start
 * the next one where it left off. The entry returned last may be unlinked
 * (hmap_iter_unlink) and then freed before the next step; nothing else may
 * change the map during the walk. Owned by whoever walks. */
struct hmap_iter {
    struct hmap *m;
    struct hmap_node **link; /* the link that points at the current entry */
    size_t bucket;           /* the current entry's bucket */
    size_t left;             /* buckets still to visit after this one */
    bool unlinked;           /* the current entry was unlinked: link points past it */
};

struct hmap_node *hmap_iter_start(struct hmap_iter *it, struct hmap *m, size_t from);
struct hmap_node *hmap_iter_next(struct hmap_iter *it);
/* Unlinks the entry the walk is at. */
void hmap_iter_unlink(struct hmap_iter *it);

/* for (each x in m): the plain walk. */
#define hmap_each(x, it, map)                                                                      \
    for (struct hmap_node *x = hmap_iter_start(it, map, 0); x; x = hmap_iter_next(it))

/* The longest chain (tests: how well names spread). */
size_t hmap_longest_chain(const struct hmap *m);

#endif
