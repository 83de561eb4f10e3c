/* test_redis_message.c: classifying what arrives from Redis. */
#include <string.h>

#include "redis/message.h"
#include "suites.h"

/* As the subscriber does: the room from the channel, then the payload. */
static enum redis_msg_kind classify_as(const char *ch, const char *payload, const char *pod,
                                       char *room)
{
    if (redis_msg_room(ch, strlen(ch), room) < 0)
        return REDIS_MSG_INVALID;
    return redis_msg_classify(payload, strlen(payload), pod, room[0] ? room : NULL);
}

static enum redis_msg_kind classify(const char *ch, const char *payload, char *room)
{
    return classify_as(ch, payload, "pod-a", room);
}

START_TEST(channels_and_payloads)
{
    char room[WS_HS_ROOM_MAX + 1];
    ck_assert_int_eq(classify("realtime:global", "{\"type\":\"notification\"}", room),
                     REDIS_MSG_DELIVER);
    ck_assert_str_eq(room, "");
    ck_assert_int_eq(classify("realtime:room:lobby", "{}", room), REDIS_MSG_DELIVER);
    ck_assert_str_eq(room, "lobby");
    /* This pod's own messages come back and are dropped; other pods' are not. */
    ck_assert_int_eq(classify("realtime:room:lobby", "{\"pod\":\"pod-a\",\"x\":1}", room),
                     REDIS_MSG_OWN);
    ck_assert_int_eq(classify("realtime:room:lobby", "{\"pod\":\"pod-b\"}", room),
                     REDIS_MSG_DELIVER);
    ck_assert_int_eq(classify("realtime:room:lobby", "{\"pod\":\"pod-ab\"}", room),
                     REDIS_MSG_DELIVER);
    ck_assert_int_eq(classify("realtime:room:lobby", "{\"data\":{\"pod\":\"pod-a\"}}", room),
                     REDIS_MSG_DELIVER); /* only the top-level field counts */
    /* Anything but a JSON object in UTF-8 is dropped. */
    ck_assert_int_eq(classify("realtime:global", "hello", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("realtime:global", "[1,2]", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("realtime:global", "{\"a\":1", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("realtime:global", "{\"a\":\"\xff\"}", room), REDIS_MSG_INVALID);
    /* Channels that are not ours, or rooms that cannot exist. */
    ck_assert_int_eq(classify("realtime:room:", "{}", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("realtime:room:bad room", "{}", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("realtime:globalx", "{}", room), REDIS_MSG_INVALID);
    ck_assert_int_eq(classify("other", "{}", room), REDIS_MSG_INVALID);
}
END_TEST

START_TEST(channel_names)
{
    char out[200];
    ck_assert_uint_eq(redis_msg_channel("lobby", out, sizeof(out)), 19);
    ck_assert_str_eq(out, "realtime:room:lobby");
    redis_msg_channel(NULL, out, sizeof(out));
    ck_assert_str_eq(out, "realtime:global");
}
END_TEST

START_TEST(cheap_looks_before_the_checks)
{
    char room[WS_HS_ROOM_MAX + 1];
    ck_assert_int_eq(redis_msg_room("realtime:room:ops", 17, room), 0);
    ck_assert_str_eq(room, "ops");
    ck_assert_int_eq(redis_msg_room("realtime:global", 15, room), 0);
    ck_assert_str_eq(room, "");
    ck_assert_int_eq(redis_msg_room("realtime:room:a b", 17, room), -1);
    ck_assert_int_eq(redis_msg_room("elsewhere", 9, room), -1);
    /* A payload's room must be its channel's. */
    char r2[WS_HS_ROOM_MAX + 1];
    const char *ok = "{\"room\":\"ops\",\"data\":1}", *other = "{\"room\":\"dev\"}";
    ck_assert_int_eq(classify_as("realtime:room:ops", ok, "me", r2),
                     REDIS_MSG_DELIVER);
    ck_assert_int_eq(classify_as("realtime:room:ops", other, "me", r2),
                     REDIS_MSG_ROOM_MISMATCH);
    ck_assert_int_eq(classify_as("realtime:global", ok, "me", r2),
                     REDIS_MSG_ROOM_MISMATCH);
    const char *null_room = "{\"room\":null}", *no_room = "{\"type\":\"notification\"}";
    ck_assert_int_eq(classify_as("realtime:global", null_room, "me", r2),
                     REDIS_MSG_DELIVER);
    ck_assert_int_eq(classify_as("realtime:room:ops", null_room, "me", r2),
                     REDIS_MSG_ROOM_MISMATCH);
    ck_assert_int_eq(classify_as("realtime:room:ops", no_room, "me", r2),
                     REDIS_MSG_DELIVER);
}
END_TEST

SUITE(redis_message,
      channels_and_payloads,
      cheap_looks_before_the_checks,
      channel_names)
