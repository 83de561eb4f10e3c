/* test_redis_url.c: REDIS_URL forms and refusals. */
#include <stdio.h>
#include <string.h>

#include "redis/url.h"
#include "suites.h"

START_TEST(forms)
{
    struct redis_url u;
    char err[128];
    ck_assert_int_eq(redis_url_parse("redis://localhost", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_uint_eq(u.port, 6379);
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(u.db, 0);

    ck_assert_int_eq(redis_url_parse("redis://127.0.0.1:6380/3", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_uint_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);

    ck_assert_int_eq(redis_url_parse("redis://:p%40ss@redis:6379/", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.host, "redis");

    ck_assert_int_eq(redis_url_parse("REDIS://app:pw@x", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "pw");

    ck_assert_int_eq(redis_url_parse("redis://:a@b@host", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.password, "a@b");
    ck_assert_str_eq(u.host, "host");

    ck_assert_int_eq(redis_url_parse("redis://[::1]:7000", &u, err, sizeof(err)), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_uint_eq(u.port, 7000);
    ck_assert_uint_eq(u.nseeds, 1);
}
END_TEST

START_TEST(cluster_seeds)
{
    struct redis_url u;
    char err[128];
    ck_assert_int_eq(redis_url_parse("redis://app:pw@h1:7000,h2:7001,[::1],h4", &u, err,
                                     sizeof(err)),
                     0);
    ck_assert_uint_eq(u.nseeds, 4);
    ck_assert_str_eq(u.host, "h1");
    ck_assert_uint_eq(u.port, 7000);
    ck_assert_str_eq(u.seeds[1].host, "h2");
    ck_assert_uint_eq(u.seeds[1].port, 7001);
    ck_assert_str_eq(u.seeds[2].host, "::1");
    ck_assert_uint_eq(u.seeds[2].port, 6379);
    ck_assert_str_eq(u.seeds[3].host, "h4");
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "pw");
    static const char *const bad[] = {"redis://h1,", "redis://,h2", "redis://h1,,h2",
                                      "redis://h1,h2:0", "redis://h1,[::1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(redis_url_parse(bad[i], &u, err, sizeof(err)) == -1, "%s accepted", bad[i]);
    char many[512] = "redis://h0";
    for (int i = 1; i < 17; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), ",h%d", i);
    ck_assert_int_eq(redis_url_parse(many, &u, err, sizeof(err)), -1);
}
END_TEST

START_TEST(tls_scheme)
{
    struct redis_url u;
    char err[128];
    ck_assert_int_eq(redis_url_parse("rediss://:pw@cache.example:6380/2", &u, err, sizeof(err)), 0);
    ck_assert(u.tls);
    ck_assert_str_eq(u.host, "cache.example");
    ck_assert_uint_eq(u.port, 6380);
    ck_assert_str_eq(u.password, "pw");
    ck_assert_int_eq(u.db, 2);
    ck_assert_int_eq(redis_url_parse("REDISS://h", &u, err, sizeof(err)), 0);
    ck_assert(u.tls);
    ck_assert_int_eq(redis_url_parse("redis://h", &u, err, sizeof(err)), 0);
    ck_assert(!u.tls);
}
END_TEST

START_TEST(refusals)
{
    static const char *const bad[] = {
        "localhost:6379", "http://localhost", "rediss://", "redis://",
        "redis://:6379",  "redis://h:0",      "redis://h:65536",    "redis://h:port",
        "redis://h/db",   "redis://h/-1",     "redis://user@h",     "redis://:@h",
        "redis://[::1",   "redis://[::1]x",   "redis://h?x=1",      "redis://:%zz@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct redis_url u;
        char err[128] = "";
        ck_assert_msg(redis_url_parse(bad[i], &u, err, sizeof(err)) == -1, "%s accepted", bad[i]);
        ck_assert_msg(err[0] != '\0', "%s: no reason", bad[i]);
    }
}
END_TEST

SUITE(redis_url,
      forms,
      refusals,
      tls_scheme,
      cluster_seeds)
