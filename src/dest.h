/* dest.h: where a broadcast goes, worked out once.
 *
 * DESIGN: a message enters the pod in one of two places: a worker reads it
 * from its client, or the subscriber takes it from Redis. There, and only
 * there, its destination is worked out: the room (or the global scope), the
 * room's hash (the workers' room indexes are filed by it), its fan-out
 * bucket (fanout.h), its Redis channel and that channel's hash slot
 * (cluster.h). The record travels in the message's allocation
 * (fbuf_new_broadcast copies it; dest_of_frame reads it back), so no later
 * hop (delivery, the publisher's routing, a resend) parses or hashes again.
 * Pure; the record is immutable once made. */
#ifndef CHAT_DEST_H
#define CHAT_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fbuf.h"
#include "redis/message.h"

#define DEST_CHANNEL_MAX (sizeof(REDIS_CHANNEL_ROOM_PREFIX) + WS_HS_ROOM_MAX)
/* The pseudo-slot of the global scope (realtime:global is published on one
 * master, whichever slot its name has). */
#define DEST_SLOT_GLOBAL 16384u

struct dest {
    uint32_t hash;        /* room_hash of the room; 0 for the global scope */
    uint16_t bucket;      /* fanout bucket (FANOUT_GLOBAL for the global scope) */
    uint16_t slot;        /* the channel's hash slot, or DEST_SLOT_GLOBAL */
    uint16_t channel_len; /* bytes of channel */
    uint8_t room_off;     /* where the room's name starts in channel; 0: global */
    char channel[DEST_CHANNEL_MAX]; /* realtime:room:<room> or realtime:global, NUL-ended */
};

/* The record of room (a valid room name), or of the global scope (NULL). */
void dest_of_room(struct dest *d, const char *room);
/* The slot of room's channel alone (no hash): for walks over many rooms. */
unsigned dest_room_slot(const char *room);
/* The record of a Redis channel: 0, or -1 when it is neither a room's
 * channel (with a valid room name) nor realtime:global. */
int dest_of_channel(struct dest *d, const char *channel, size_t len);

/* The room's name, or NULL for the global scope. */
static inline const char *dest_room(const struct dest *d)
{
    return d->room_off ? d->channel + d->room_off : NULL;
}

/* A broadcast frame of payload bound for d (a copy of d travels with it). */
static inline struct fbuf *dest_frame(const void *payload, size_t len, const struct dest *d)
{
    return fbuf_new_broadcast(payload, len, d, sizeof(*d));
}

/* The record a broadcast frame carries. */
static inline const struct dest *dest_of_frame(const struct fbuf *b)
{
    return (const struct dest *)b->route;
}

#endif
