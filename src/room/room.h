/* room.h: a worker's own index of room name -> its member connections.
 *
 * Owned by one worker thread and touched by no other, so it has no locks.
 * Members are kept in arrays, so a fan-out walks contiguous memory; each
 * member remembers its index there, so leaving is O(1) (swap with the last). */
#ifndef CHAT_ROOM_ROOM_H
#define CHAT_ROOM_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "hmap.h"

/* Embedded in whatever joins a room; the owner recovers itself from it. */
struct room_member {
    uint32_t index; /* in its room's members array */
};

struct room {
    char *name; /* NULL for a plain member list that is not in an index */
    struct hmap_node hn; /* in the index; hn.hash is room_hash(name) */
    uint32_t n, cap;
    struct room_member **members;
    struct room *waiting; /* members not yet admitted (a plain list), or NULL */
    /* permessage-deflate (the worker's, compressor.h): the room's stream, its
     * members that take stream frames, and how many of them are not in step. */
    struct room_stream *stream;
    uint32_t stream_members, stream_waiting;
};

/* Zeroed to start with (the map is made at the first join). */
struct room_index {
    struct hmap map; /* of struct room, by name */
};

/* The hash rooms are filed under (keyed, hmap.h); fan-out buckets use it too. */
uint32_t room_hash(const char *name, size_t len);

/* The hash r is filed under (room_hash of its name). */
static inline uint32_t room_hash_of(const struct room *r)
{
    return r->hn.hash;
}

/* Adds m to a member list. Returns 0 or -ENOMEM. */
int room_add(struct room *r, struct room_member *m);

/* Removes m from the list it was added to. */
void room_remove(struct room *r, struct room_member *m);

/* Finds the room called name (hash from room_hash), or NULL. */
struct room *room_find(const struct room_index *ix, const char *name, uint32_t hash);

/* Adds m to the room called name, creating it. Returns the room, or NULL
 * when out of memory. */
struct room *room_join(struct room_index *ix, const char *name, struct room_member *m);

/* Removes m from r, and frees r when it is left empty. */
void room_leave(struct room_index *ix, struct room *r, struct room_member *m);

/* Like room_join, but m waits in the room's waiting list: it is not among
 * the members a fan-out walks until room_admit. */
struct room *room_join_waiting(struct room_index *ix, const char *name, struct room_member *m);

/* Moves m from r's waiting list to its members. Returns 0, or -ENOMEM with
 * m still waiting. */
int room_admit(struct room *r, struct room_member *m);

/* Removes a waiting m from r, and frees r when it is left empty. */
void room_leave_waiting(struct room_index *ix, struct room *r, struct room_member *m);

/* Frees the index and every room in it (members are not touched). */
void room_index_free(struct room_index *ix);

#endif
