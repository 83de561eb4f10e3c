/* test_cluster.c: hash slots against Redis' own CLUSTER KEYSLOT, the slot map
 * from a CLUSTER SLOTS reply, and redirections. */
#include <hiredis.h>
#include <string.h>

#include "redis/cluster.h"
#include "suites.h"

START_TEST(slots_as_redis_computes_them)
{
    /* Each pair was answered by redis-server 7 (cluster-enabled) to
     * CLUSTER KEYSLOT. */
    static const struct {
        const char *key;
        unsigned slot;
    } v[] = {
        {"123456789", 12739},
        {"foo", 12182},
        {"bar", 5061},
        {"somekey", 11058},
        {"{user1000}.following", 3443},
        {"{user1000}.followers", 3443},
        {"foo{}{bar}", 8363},
        {"foo{{bar}}zap", 4015},
        {"foo{bar}{zap}", 5061},
        {"{}", 15257},
        {"", 0},
        {"realtime:room:lobby", 10549},
        {"realtime:global", 13834},
        {"realtime:room:{team}", 15631},
        {"a{b", 13340},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        ck_assert_msg(redis_cluster_slot(v[i].key, strlen(v[i].key)) == v[i].slot, "%s",
                      v[i].key);
    /* The specification's check value. */
    ck_assert_uint_eq(redis_cluster_crc16("123456789", 9), 0x31C3);
}
END_TEST

START_TEST(redirections)
{
    struct redis_cluster_redirect r;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    ck_assert(redis_cluster_parse_redirect(moved, strlen(moved), &r));
    ck_assert(!r.ask);
    ck_assert_uint_eq(r.slot, 3999);
    ck_assert_str_eq(r.node.host, "127.0.0.1");
    ck_assert_uint_eq(r.node.port, 6381);
    const char *ask = "ASK 16383 [::1]:7000", *v6 = "MOVED 1 ::1:7000";
    ck_assert(redis_cluster_parse_redirect(ask, strlen(ask), &r));
    ck_assert(r.ask);
    ck_assert_str_eq(r.node.host, "[::1]");
    ck_assert(redis_cluster_parse_redirect(v6, strlen(v6), &r));
    ck_assert_str_eq(r.node.host, "::1");
    ck_assert_uint_eq(r.node.port, 7000);
    const char *bad[] = {"MOVED", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:0",
                         "MOVED 1 h:65536", "MOVED 1 :7000", "MOVED x h:1", "ERR no",
                         "MOVED 1 h:70x", "ASK 1  h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!redis_cluster_parse_redirect(bad[i], strlen(bad[i]), &r), "%s", bad[i]);
}
END_TEST

/* Parses RESP text into a reply tree, as the broker's reader would. */
static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, text, strlen(text));
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    redisReaderFree(rd);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

START_TEST(slot_map_from_cluster_slots)
{
    /* Two masters, the second with a replica, listed out of order. */
    redisReply *r = resp("*2\r\n"
                         "*4\r\n:5461\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
                         "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nrp\r\n"
                         "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n");
    struct redis_cluster_map map;
    ck_assert_int_eq(redis_cluster_parse_slots(r, &map), 0);
    ck_assert_uint_eq(map.n, 2);
    ck_assert_uint_eq(redis_cluster_owner(&map, 0)->port, 7000);
    ck_assert_uint_eq(redis_cluster_owner(&map, 5460)->port, 7000);
    ck_assert_uint_eq(redis_cluster_owner(&map, 5461)->port, 7001);
    ck_assert_uint_eq(redis_cluster_owner(&map, 16383)->port, 7001);
    redis_cluster_map_free(&map);
    freeReplyObject(r);

    /* A gap is allowed (a slot being migrated): no owner there. */
    r = resp("*1\r\n*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    ck_assert_int_eq(redis_cluster_parse_slots(r, &map), 0);
    ck_assert_ptr_null(redis_cluster_owner(&map, 9));
    ck_assert_ptr_null(redis_cluster_owner(&map, 21));
    ck_assert_str_eq(redis_cluster_owner(&map, 15)->host, "h");
    redis_cluster_map_free(&map);
    freeReplyObject(r);

    const char *bad[] = {
        ":1\r\n",
        "*1\r\n*3\r\n:20\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n",         /* last < first */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",       /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",           /* port 0 */
        "*1\r\n*2\r\n:0\r\n:1\r\n",                                  /* no master */
        "*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:1\r\n"           /* overlapping */
        "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nh\r\n:2\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        ck_assert_msg(redis_cluster_parse_slots(r, &map) == -1 && map.n == 0, "case %zu", i);
        freeReplyObject(r);
    }
}
END_TEST

SUITE(cluster,
      slots_as_redis_computes_them,
      redirections,
      slot_map_from_cluster_slots)
