/* message.h: what a payload received from Redis means. Pure.
 *
 * A payload on realtime:global or realtime:room:{room} is delivered verbatim
 * to the matching clients if it is a JSON object in valid UTF-8, unless its
 * top-level "pod" is this pod's id (its local delivery already happened), or
 * its top-level "room", when it has one, is not the channel's (null on
 * realtime:global, the room's name on a room's channel). */
#ifndef CHAT_REDIS_MESSAGE_H
#define CHAT_REDIS_MESSAGE_H

#include <stddef.h>

#include "ws/handshake.h"

#define REDIS_CHANNEL_GLOBAL "realtime:global"
#define REDIS_CHANNEL_ROOM_PREFIX "realtime:room:"

enum redis_msg_kind {
    REDIS_MSG_DELIVER, /* deliver to room (or to everyone when room is empty) */
    REDIS_MSG_OWN,     /* published by this pod: drop */
    REDIS_MSG_INVALID, /* not a JSON object in UTF-8, or an unknown channel: drop, count */
    REDIS_MSG_ROOM_MISMATCH, /* its "room" is not its channel's: drop, count */
};

/* The room a channel names: 0 with room filled ("" for realtime:global), or
 * -1 when the channel is not one of ours or names an impossible room. */
int redis_msg_room(const char *channel, size_t channel_len, char room[WS_HS_ROOM_MAX + 1]);

/* Classifies one message whose channel names room (NULL: realtime:global;
 * dest_of_channel works it out). Any thread. */
enum redis_msg_kind redis_msg_classify(const char *payload, size_t payload_len, const char *pod_id,
                                       const char *room);

/* Writes the channel for a room (NULL: global) into out (at least 160 bytes).
 * Returns its length. */
size_t redis_msg_channel(const char *room, char *out, size_t cap);

#endif
