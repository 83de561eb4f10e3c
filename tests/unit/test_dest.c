/* test_dest.c: a broadcast's routing record: worked out from a room or from
 * a Redis channel to the same parts the later hops used to work out again
 * (the room's hash, the fan-out bucket, the channel and its slot), the
 * global scope apart, bad channels refused, and the record carried intact
 * (and aligned) in the frame's allocation. */
#include <stdint.h>
#include <string.h>

#include "dest.h"
#include "fanout.h"
#include "redis/cluster.h"
#include "room/room.h"
#include "suites.h"

START_TEST(a_room_and_its_channel_give_the_same_record)
{
    struct dest a, b;
    dest_of_room(&a, "lobby");
    ck_assert_str_eq(a.channel, "realtime:room:lobby");
    ck_assert_uint_eq(a.channel_len, strlen("realtime:room:lobby"));
    ck_assert_str_eq(dest_room(&a), "lobby");
    ck_assert_uint_eq(a.hash, room_hash("lobby", 5));
    ck_assert_uint_eq(a.bucket, fanout_room_bucket(a.hash));
    ck_assert_uint_eq(a.slot, redis_cluster_slot("realtime:room:lobby", a.channel_len));
    ck_assert_uint_eq(dest_room_slot("lobby"), a.slot);
    ck_assert_int_eq(dest_of_channel(&b, a.channel, a.channel_len), 0);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

START_TEST(the_global_scope_and_bad_channels)
{
    struct dest g;
    dest_of_room(&g, NULL);
    ck_assert_ptr_null(dest_room(&g));
    ck_assert_str_eq(g.channel, "realtime:global");
    ck_assert_uint_eq(g.bucket, FANOUT_GLOBAL);
    ck_assert_uint_eq(g.slot, DEST_SLOT_GLOBAL);
    struct dest d;
    ck_assert_int_eq(dest_of_channel(&d, "realtime:global", 15), 0);
    ck_assert_ptr_null(dest_room(&d));
    ck_assert_int_eq(dest_of_channel(&d, "realtime:room:", 14), -1);
    ck_assert_int_eq(dest_of_channel(&d, "realtime:room:a b", 17), -1);
    ck_assert_int_eq(dest_of_channel(&d, "elsewhere", 9), -1);
}
END_TEST

START_TEST(the_record_travels_with_the_frame)
{
    char big[WS_HS_ROOM_MAX + 1];
    memset(big, 'r', WS_HS_ROOM_MAX);
    big[WS_HS_ROOM_MAX] = '\0';
    for (size_t len = 0; len < 40; len++) {
        struct dest d;
        dest_of_room(&d, len % 2 ? big : "x");
        struct fbuf *b = dest_frame("{\"a\":1}", len % 8, &d);
        ck_assert_ptr_nonnull(b);
        const struct dest *in = dest_of_frame(b);
        ck_assert_uint_eq((uintptr_t)in % _Alignof(struct dest), 0);
        ck_assert_int_eq(memcmp(in, &d, sizeof(d)), 0);
        ck_assert_str_eq(dest_room(in), len % 2 ? big : "x");
        fbuf_unref(b);
    }
    struct fbuf *plain = fbuf_new_frame(1, "x", 1);
    ck_assert_ptr_null(plain->route);
    fbuf_unref(plain);
}
END_TEST

SUITE(dest,
      a_room_and_its_channel_give_the_same_record,
      the_global_scope_and_bad_channels,
      the_record_travels_with_the_frame)
