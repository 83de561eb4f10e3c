/* dest.c: a broadcast's destination, worked out once (dest.h). */
#include "dest.h"

#include <string.h>

#include "fanout.h"
#include "redis/cluster.h"
#include "room/room.h"

_Static_assert(DEST_SLOT_GLOBAL == REDIS_CLUSTER_SLOTS, "the global pseudo-slot follows the slots");

static void global(struct dest *d)
{
    *d = (struct dest){.bucket = FANOUT_GLOBAL, .slot = DEST_SLOT_GLOBAL};
    d->channel_len = sizeof(REDIS_CHANNEL_GLOBAL) - 1;
    memcpy(d->channel, REDIS_CHANNEL_GLOBAL, sizeof(REDIS_CHANNEL_GLOBAL));
}

/* Room's channel and its slot (not yet its hash or bucket). */
static void channel_of(struct dest *d, const char *room)
{
    size_t plen = sizeof(REDIS_CHANNEL_ROOM_PREFIX) - 1, rlen = strlen(room);
    if (rlen > WS_HS_ROOM_MAX)
        rlen = WS_HS_ROOM_MAX;
    *d = (struct dest){.room_off = (uint8_t)plen, .channel_len = (uint16_t)(plen + rlen)};
    memcpy(d->channel, REDIS_CHANNEL_ROOM_PREFIX, plen);
    memcpy(d->channel + plen, room, rlen);
    d->channel[plen + rlen] = '\0';
    d->slot = (uint16_t)redis_cluster_slot(d->channel, d->channel_len);
}

void dest_of_room(struct dest *d, const char *room)
{
    if (!room) {
        global(d);
        return;
    }
    channel_of(d, room);
    d->hash = room_hash(dest_room(d), d->channel_len - d->room_off);
    d->bucket = (uint16_t)fanout_room_bucket(d->hash);
}

unsigned dest_room_slot(const char *room)
{
    struct dest d;
    channel_of(&d, room);
    return d.slot;
}

int dest_of_channel(struct dest *d, const char *channel, size_t len)
{
    char room[WS_HS_ROOM_MAX + 1];
    if (redis_msg_room(channel, len, room) < 0)
        return -1;
    dest_of_room(d, room[0] ? room : NULL);
    return 0;
}
