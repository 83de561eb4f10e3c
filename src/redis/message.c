/* message.c: channel names, echo suppression and payload checks. */
#include "redis/message.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "ws/utf8.h"

int redis_msg_room(const char *channel, size_t channel_len, char room[WS_HS_ROOM_MAX + 1])
{
    static const char prefix[] = REDIS_CHANNEL_ROOM_PREFIX;
    size_t plen = sizeof(prefix) - 1;
    room[0] = '\0';
    if (channel_len == strlen(REDIS_CHANNEL_GLOBAL) &&
        memcmp(channel, REDIS_CHANNEL_GLOBAL, channel_len) == 0)
        return 0;
    if (channel_len > plen && memcmp(channel, prefix, plen) == 0 &&
        ws_hs_room_valid(channel + plen, channel_len - plen)) {
        memcpy(room, channel + plen, channel_len - plen);
        room[channel_len - plen] = '\0';
        return 0;
    }
    return -1;
}

enum redis_msg_kind redis_msg_classify(const char *payload, size_t payload_len, const char *pod_id,
                                       const char *room)
{
    /* Clients get text frames, which must be UTF-8 (RFC 6455 5.6). */
    if (ws_utf8_check((const uint8_t *)payload, payload_len) < 0)
        return REDIS_MSG_INVALID;
    size_t pos = 0;
    struct json_member m;
    int rc;
    int own = 0, room_ok = 1;
    /* The last occurrence of a key counts, as in JSON.parse. */
    while ((rc = json_object_next(payload, payload_len, &pos, &m)) == 1) {
        if (json_string_eq(m.key, "pod"))
            own = m.value.type == JSON_STRING && json_string_eq(m.value, pod_id);
        else if (json_string_eq(m.key, "room"))
            room_ok = room ? m.value.type == JSON_STRING && json_string_eq(m.value, room)
                           : m.value.type == JSON_NULL;
    }
    if (rc < 0)
        return REDIS_MSG_INVALID;
    if (own)
        return REDIS_MSG_OWN;
    return room_ok ? REDIS_MSG_DELIVER : REDIS_MSG_ROOM_MISMATCH;
}

size_t redis_msg_channel(const char *room, char *out, size_t cap)
{
    int n = room ? snprintf(out, cap, "%s%s", REDIS_CHANNEL_ROOM_PREFIX, room)
                 : snprintf(out, cap, "%s", REDIS_CHANNEL_GLOBAL);
    return n < 0 ? 0 : (size_t)n;
}
